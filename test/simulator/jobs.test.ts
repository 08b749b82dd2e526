import t from 'tap'
import type { JobDetail } from '../../src/simulator/app.js'
import { conforms, defaultPrompt, KEY, startSim, submit, waitForStatus, type Sim } from './fixtures/helpers.js'

const T0 = 1763900000000

/** Six jobs with known times: create_time T0 + i s; durations differ; two carry a workflow_id. */
function seedSix (sim: Sim): JobDetail[] {
  const control = sim.app.simulator
  const finished = (i: number, status: 'completed' | 'failed' | 'cancelled', duration: number, extra: Partial<JobDetail> = {}): JobDetail => control.seedJob(KEY, {
    status,
    create_time: T0 + i * 1000,
    update_time: T0 + i * 1000 + duration + 10,
    execution_start_time: T0 + i * 1000 + 5,
    execution_end_time: T0 + i * 1000 + 5 + duration,
    outputs: status === 'completed' ? { 9: { images: [{ filename: `${i}.png`, subfolder: '', type: 'output' }] } } : {},
    outputs_count: status === 'completed' ? 1 : 0,
    execution_status: { status_str: status === 'completed' ? 'success' : 'error', completed: status === 'completed', messages: [] },
    execution_meta: {},
    workflow: { prompt: defaultPrompt({ seed: i }), extra_data: { client_id: `c${i}` } },
    ...extra
  })
  return [
    finished(0, 'completed', 300, { workflow_id: 'wf-a' }),
    finished(1, 'failed', 100),
    finished(2, 'completed', 500, { workflow_id: 'wf-a' }),
    finished(3, 'cancelled', 200),
    control.seedJob(KEY, { status: 'in_progress', create_time: T0 + 4000, execution_start_time: T0 + 4005, workflow: { prompt: defaultPrompt({ seed: 4 }), extra_data: {} } }),
    control.seedJob(KEY, { status: 'pending', create_time: T0 + 5000, workflow: { prompt: defaultPrompt({ seed: 5 }), extra_data: {} } })
  ]
}

async function ids (sim: Sim, query: string): Promise<string[]> {
  const { status, body } = await sim.json(`/api/jobs${query}`)
  if (status !== 200) throw new Error(`${query} answered ${status}`)
  return body.jobs.map((job: any) => job.id)
}

t.test('GET /api/jobs: compact entries, newest first by default', async t => {
  const sim = await startSim(t)
  const jobs = seedSix(sim)
  const { status, body } = await sim.json('/api/jobs')
  t.equal(status, 200)
  conforms(t, 'JobsListResponse', body)
  t.same(body.jobs.map((job: any) => job.id), jobs.map(job => job.id).reverse())
  t.same(body.pagination, { offset: 0, limit: 100, total: 6, has_more: false })
  const completed = body.jobs.find((job: any) => job.id === jobs[2].id)
  t.same(completed, {
    id: jobs[2].id, status: 'completed', create_time: T0 + 2000, execution_start_time: T0 + 2005, execution_end_time: T0 + 2505, outputs_count: 1, workflow_id: 'wf-a'
  }, 'no outputs, workflow, execution_status or update_time in a list entry')
  t.same(body.jobs.find((job: any) => job.id === jobs[5].id), { id: jobs[5].id, status: 'pending', create_time: T0 + 5000 })
})

t.test('GET /api/jobs: status, workflow_id and output_type filters', async t => {
  const sim = await startSim(t)
  const jobs = seedSix(sim)
  const id = (...indexes: number[]): string[] => indexes.map(i => jobs[i].id)
  t.same(await ids(sim, '?status=completed'), id(2, 0))
  t.same(await ids(sim, '?status=completed,failed,cancelled'), id(3, 2, 1, 0))
  t.same(await ids(sim, '?status=pending, in_progress'), id(5, 4), 'spaces are tolerated')
  t.same(await ids(sim, '?workflow_id=wf-a'), id(2, 0))
  t.same(await ids(sim, '?workflow_id=wf-b'), [])
  t.same(await ids(sim, '?output_type=image'), id(2, 0))
  t.same(await ids(sim, '?output_type=audio'), [])
  const { body } = await sim.json('/api/jobs?status=failed,cancelled&workflow_id=wf-a')
  t.same(body, { jobs: [], pagination: { offset: 0, limit: 100, total: 0, has_more: false } })
})

t.test('GET /api/jobs: sort_by and sort_order', async t => {
  const sim = await startSim(t)
  const jobs = seedSix(sim)
  const id = (...indexes: number[]): string[] => indexes.map(i => jobs[i].id)
  t.same(await ids(sim, '?sort_order=asc'), id(0, 1, 2, 3, 4, 5))
  t.same(await ids(sim, '?sort_by=create_time&sort_order=desc'), id(5, 4, 3, 2, 1, 0))
  t.same(await ids(sim, '?sort_by=execution_time'), id(2, 0, 3, 1, 5, 4), 'longest run first, jobs without a duration last')
  t.same(await ids(sim, '?sort_by=execution_time&sort_order=asc'), id(1, 3, 0, 2, 4, 5))
})

t.test('GET /api/jobs: offset, limit, total and has_more', async t => {
  const sim = await startSim(t)
  const jobs = seedSix(sim)
  const page1 = await sim.json('/api/jobs?limit=4')
  t.same(page1.body.pagination, { offset: 0, limit: 4, total: 6, has_more: true })
  t.same(page1.body.jobs.map((j: any) => j.id), jobs.slice(2).map(j => j.id).reverse())
  const page2 = await sim.json('/api/jobs?limit=4&offset=4')
  t.same(page2.body.pagination, { offset: 4, limit: 4, total: 6, has_more: false })
  t.same(page2.body.jobs.map((j: any) => j.id), [jobs[1].id, jobs[0].id])
  const beyond = await sim.json('/api/jobs?offset=10')
  t.same(beyond.body, { jobs: [], pagination: { offset: 10, limit: 100, total: 6, has_more: false } })
  const exact = await sim.json('/api/jobs?limit=6')
  t.equal(exact.body.pagination.has_more, false)
  t.equal((await sim.json('/api/jobs?limit=1000')).status, 200)
  t.equal((await sim.json('/api/jobs?limit=1')).body.jobs.length, 1)
})

t.test('GET /api/jobs: invalid parameters are 400 ErrorResponse', async t => {
  const sim = await startSim(t)
  for (const query of ['status=done', 'status=completed,nope', 'status=', 'limit=0', 'limit=1001', 'limit=ten', 'limit=2.5', 'offset=-1', 'offset=x', 'sort_by=name', 'sort_order=up', 'output_type=3d']) {
    const { status, body } = await sim.json(`/api/jobs?${query}`)
    t.equal(status, 400, query)
    conforms(t, 'ErrorResponse', body, query)
    t.equal(body.code, 'BAD_REQUEST')
  }
})

t.test('GET /api/history_v2: started jobs only, newest first, without the UI workflow', async t => {
  const sim = await startSim(t)
  const jobs = seedSix(sim)
  const control = sim.app.simulator
  const secretive = control.seedJob(KEY, {
    status: 'completed',
    create_time: T0 + 6000,
    execution_start_time: T0 + 6001,
    execution_end_time: T0 + 6002,
    workflow: { prompt: defaultPrompt(), extra_data: { api_key_comfy_org: 'comfyui-secret', client_id: 'c6', extra_pnginfo: { workflow: { nodes: [] }, other: 1 } } },
    workflow_id: 'wf-z'
  })
  const neverStarted = control.seedJob(KEY, { status: 'cancelled', create_time: T0 + 7000 })
  const { status, body } = await sim.json('/api/history_v2')
  t.equal(status, 200)
  conforms(t, 'HistoryResponse', body)
  const listed = body.history.map((entry: any) => entry.prompt_id)
  t.same(listed, [secretive.id, jobs[4].id, jobs[3].id, jobs[2].id, jobs[1].id, jobs[0].id], 'pending and never-started jobs are absent')
  t.notOk(listed.includes(neverStarted.id))
  t.same(body.history[0], {
    prompt_id: secretive.id,
    create_time: T0 + 6000,
    workflow_id: 'wf-z',
    prompt: { priority: 0, prompt_id: secretive.id, extra_data: { client_id: 'c6', extra_pnginfo: { other: 1 } } },
    outputs: {},
    meta: {}
  }, 'credentials and extra_pnginfo.workflow are removed; seeded without execution_status there is no status')
  t.match(body.history.find((e: any) => e.prompt_id === jobs[2].id), { outputs: jobs[2].outputs, status: { status_str: 'success' }, meta: {} })
  t.same((await sim.json('/api/history_v2?max_items=2')).body.history.map((e: any) => e.prompt_id), [secretive.id, jobs[4].id])
  t.same((await sim.json('/api/history_v2?max_items=2&offset=2')).body.history.map((e: any) => e.prompt_id), [jobs[3].id, jobs[2].id])
  t.same((await sim.json('/api/history_v2?offset=5')).body.history.map((e: any) => e.prompt_id), [jobs[0].id])
  t.same((await sim.json('/api/history_v2?max_items=0')).body.history, [])
  for (const query of ['max_items=x', 'offset=-2']) t.equal((await sim.json(`/api/history_v2?${query}`)).status, 400, query)
})

t.test('GET /api/history_v2/{id}: the full record once execution started', async t => {
  const sim = await startSim(t, { stepMs: 10 })
  const blocker = await submit(sim, { prompt: defaultPrompt({ steps: 1000 }) })
  await waitForStatus(sim, blocker, ['in_progress'])
  const id = await submit(sim, { prompt: defaultPrompt(), client_id: 'cli', extra_data: { api_key_comfy_org: 'comfyui-secret', extra_pnginfo: { workflow: { nodes: [] } } } })
  const before = await sim.json(`/api/history_v2/${id}`)
  t.equal(before.status, 404, 'no record while pending')
  conforms(t, 'ErrorResponse', before.body)
  const running = await sim.json(`/api/history_v2/${blocker}`)
  t.equal(running.status, 200, 'a running job has a record')
  conforms(t, 'HistoryDetailResponse', running.body, 'running record')
  t.notOk('status' in running.body[blocker], 'no status while it runs')
  await sim.json(`/api/jobs/${blocker}/cancel`, { method: 'POST' })
  const done = await waitForStatus(sim, id, ['completed'])
  const { status, body } = await sim.json(`/api/history_v2/${id}`)
  t.equal(status, 200)
  conforms(t, 'HistoryDetailResponse', body)
  t.same(Object.keys(body), [id])
  t.same(body[id], {
    prompt: { priority: 0, prompt_id: id, prompt: defaultPrompt(), extra_data: { client_id: 'cli' }, outputs_to_execute: ['9'] },
    outputs: done.outputs,
    status: done.execution_status,
    meta: done.execution_meta
  })
  t.equal((await sim.json('/api/history_v2/0f3c6e2a-1b7d-4c55-9a1e-2d8f0b6c4a11')).status, 404)
})

t.test('POST /api/history deletes finished jobs everywhere and leaves live ones', async t => {
  const sim = await startSim(t)
  const jobs = seedSix(sim)
  const deleted = await sim.call('/api/history', { method: 'POST', json: { delete: [jobs[0].id, jobs[5].id, '0f3c6e2a-1b7d-4c55-9a1e-2d8f0b6c4a11'] } })
  t.equal(deleted.status, 200)
  t.equal(await deleted.text(), '', 'an empty body')
  t.equal((await sim.json(`/api/jobs/${jobs[0].id}`)).status, 404, 'the finished job is gone from detail')
  t.equal((await sim.json(`/api/history_v2/${jobs[0].id}`)).status, 404, 'and from history_v2')
  t.notOk((await ids(sim, '')).includes(jobs[0].id), 'and from the list')
  t.equal((await sim.json(`/api/jobs/${jobs[5].id}`)).body.status, 'pending', 'a pending job is not deleted')
  t.equal((await sim.call('/api/history', { method: 'POST', json: { clear: true } })).status, 200)
  t.same((await sim.json('/api/jobs')).body.jobs.map((j: any) => j.status).sort(), ['in_progress', 'pending'], 'clear removes every finished job')
  t.same((await sim.json('/api/history_v2')).body.history.map((e: any) => e.prompt_id), [jobs[4].id])
  for (const body of [{ delete: [jobs[4].id], extra: true }, { clear: 'yes' }, { delete: 'x' }, [1]]) {
    const { status, body: answer } = await sim.json('/api/history', { method: 'POST', json: body })
    t.equal(status, 400, JSON.stringify(body))
    conforms(t, 'ErrorResponse', answer)
  }
  t.equal((await sim.json(`/api/jobs/${jobs[4].id}`)).status, 200, 'a refused request changed nothing')
})

t.test('GET /api/queue: cloud tuples, running then pending oldest first', async t => {
  const sim = await startSim(t)
  const control = sim.app.simulator
  const later = control.seedJob(KEY, { status: 'pending', create_time: T0 + 3000, workflow: { prompt: defaultPrompt({ seed: 3 }), extra_data: {} } })
  const earlier = control.seedJob(KEY, { status: 'pending', create_time: T0 + 2000, workflow: { prompt: defaultPrompt({ seed: 2, preview: true }), extra_data: {} } })
  const running = control.seedJob(KEY, { status: 'in_progress', create_time: T0 + 1000, workflow: { prompt: defaultPrompt({ seed: 1 }), extra_data: {} } })
  control.seedJob(KEY, { status: 'completed', create_time: T0 })
  const { status, body } = await sim.json('/api/queue')
  t.equal(status, 200)
  conforms(t, 'QueueInfo', body)
  t.same(body, {
    queue_running: [[1, running.id, defaultPrompt({ seed: 1 }), ['9'], { create_time: T0 + 1000 }]],
    queue_pending: [
      [2, earlier.id, defaultPrompt({ seed: 2, preview: true }), ['10'], { create_time: T0 + 2000 }],
      [3, later.id, defaultPrompt({ seed: 3 }), ['9'], { create_time: T0 + 3000 }]
    ]
  })
})

t.test('POST /api/queue: delete cancels the listed jobs, clear cancels every pending one', async t => {
  const sim = await startSim(t)
  const control = sim.app.simulator
  const [a, b, c] = [0, 1, 2].map(i => control.seedJob(KEY, { status: 'pending', create_time: T0 + i }))
  const running = control.seedJob(KEY, { status: 'in_progress', create_time: T0 - 1 })
  const done = control.seedJob(KEY, { status: 'completed', create_time: T0 - 2 })
  const deleted = await sim.json('/api/queue', { method: 'POST', json: { delete: [a.id, done.id, '0f3c6e2a-1b7d-4c55-9a1e-2d8f0b6c4a11'] } })
  t.equal(deleted.status, 200)
  conforms(t, 'QueueManageResponse', deleted.body)
  t.same(deleted.body, { deleted: [a.id], cleared: false }, 'only jobs that were cancelled are listed')
  t.equal((await sim.json(`/api/jobs/${a.id}`)).body.status, 'cancelled', 'the job stays, cancelled')
  const cleared = await sim.json('/api/queue', { method: 'POST', json: { clear: true } })
  t.same(cleared.body, { deleted: [], cleared: true })
  for (const job of [b, c]) t.equal((await sim.json(`/api/jobs/${job.id}`)).body.status, 'cancelled')
  t.equal((await sim.json(`/api/jobs/${running.id}`)).body.status, 'in_progress', 'clear leaves running jobs alone')
  const stopRunning = await sim.json('/api/queue', { method: 'POST', json: { delete: [running.id] } })
  t.same(stopRunning.body.deleted, [running.id], 'delete cancels a running job too (newer cloud semantics)')
  t.equal((await sim.json(`/api/jobs/${running.id}`)).body.status, 'cancelled')
  for (const body of [{ cancel: [a.id] }, { delete: [1] }, { clear: 1 }]) {
    const { status, body: answer } = await sim.json('/api/queue', { method: 'POST', json: body })
    t.equal(status, 400, JSON.stringify(body))
    conforms(t, 'ErrorResponse', answer)
  }
})

t.test('POST /api/jobs/cancel cancels a batch, all or nothing', async t => {
  const sim = await startSim(t)
  const control = sim.app.simulator
  const [a, b] = [0, 1].map(() => control.seedJob(KEY, { status: 'pending' }))
  const done = control.seedJob(KEY, { status: 'completed' })
  const unknown = await sim.json('/api/jobs/cancel', { method: 'POST', json: { job_ids: [a.id, '0f3c6e2a-1b7d-4c55-9a1e-2d8f0b6c4a11'] } })
  t.equal(unknown.status, 404)
  t.equal((await sim.json(`/api/jobs/${a.id}`)).body.status, 'pending', 'nothing was cancelled')
  const batch = await sim.json('/api/jobs/cancel', { method: 'POST', json: { job_ids: [a.id, b.id, done.id] } })
  t.same(batch.body, { cancelled: [a.id, b.id] })
  t.equal((await sim.json('/api/jobs/cancel', { method: 'POST', json: { job_ids: [] } })).status, 400)
})
