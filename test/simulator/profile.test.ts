/**
 * The simulator's two profiles: `spec` (the published Cloud spec) and `current` (the deployed cloud's drift:
 * cursor paging, nulls on optional job fields, interrupts reported as InterruptProcessingException failures),
 * and finished jobs without an execution_status on demand.
 */
import t from 'tap'
import { conforms, defaultPrompt, KEY, startSim, submit, waitForStatus } from './fixtures/helpers.js'

const BASE_TIME = 1763900000000

function seedFinished (sim: Awaited<ReturnType<typeof startSim>>, count: number): string[] {
  const ids: string[] = []
  for (let i = 0; i < count; i++) {
    ids.push(sim.app.simulator.seedJob(KEY, { status: 'completed', create_time: BASE_TIME + i * 1000, execution_start_time: BASE_TIME + i * 1000 + 1 }).id)
  }
  return ids
}

t.test('current: /api/jobs pages by cursor, ignores offset and reports total 0', async t => {
  const sim = await startSim(t, { profile: 'current' })
  const ids = seedFinished(sim, 5)
  const first = await sim.json('/api/jobs?limit=2&offset=3')
  t.equal(first.status, 200)
  t.same(first.body.jobs.map((job: any) => job.id), [ids[4], ids[3]], 'offset ignored: the newest two')
  t.match(first.body.pagination, { offset: 0, limit: 2, total: 0, has_more: true })
  t.type(first.body.pagination.next_cursor, 'string')
  conforms(t, 'JobsListResponse', first.body, 'a cursor page')

  const second = await sim.json(`/api/jobs?limit=2&after=${first.body.pagination.next_cursor as string}`)
  t.same(second.body.jobs.map((job: any) => job.id), [ids[2], ids[1]])
  const last = await sim.json(`/api/jobs?limit=2&after=${second.body.pagination.next_cursor as string}`)
  t.same(last.body.jobs.map((job: any) => job.id), [ids[0]])
  t.equal(last.body.pagination.has_more, false)
  t.notOk('next_cursor' in last.body.pagination, 'no cursor on the last page')

  const ascending = await sim.json('/api/jobs?limit=3&sort_order=asc')
  t.same(ascending.body.jobs.map((job: any) => job.id), ids.slice(0, 3))
  const rest = await sim.json(`/api/jobs?limit=3&sort_order=asc&after=${ascending.body.pagination.next_cursor as string}`)
  t.same(rest.body.jobs.map((job: any) => job.id), ids.slice(3))

  // the cursor's job deleted meanwhile: the next page starts after its create_time
  t.equal((await sim.call('/api/history', { method: 'POST', json: { delete: [ids[3]] } })).status, 200)
  const afterDeleted = await sim.json(`/api/jobs?limit=2&after=${first.body.pagination.next_cursor as string}`)
  t.same(afterDeleted.body.jobs.map((job: any) => job.id), [ids[2], ids[1]])

  for (const bad of ['not-a-cursor', Buffer.from('{"s":"create_time"}').toString('base64url'), ascending.body.pagination.next_cursor]) {
    const answer = await sim.json(`/api/jobs?limit=2&after=${bad as string}`)
    t.equal(answer.status, 400, `after=${bad as string}`)
    t.match(answer.body.message, /malformed pagination cursor/)
  }
})

t.test('spec: /api/jobs pages by offset with a real total and never offers a cursor', async t => {
  const sim = await startSim(t)
  const ids = seedFinished(sim, 5)
  const page = await sim.json('/api/jobs?limit=2&offset=3&after=anything')
  t.same(page.body.jobs.map((job: any) => job.id), [ids[1], ids[0]])
  t.same(page.body.pagination, { offset: 3, limit: 2, total: 5, has_more: false })
})

t.test('current: optional job fields without a value are null in list entries and details', async t => {
  const sim = await startSim(t, { profile: 'current', stepMs: 1000 })
  await submit(sim, { prompt: defaultPrompt() })
  const pending = await submit(sim, { prompt: defaultPrompt() })
  const list = await sim.json('/api/jobs')
  const entry = list.body.jobs.find((job: any) => job.id === pending)
  for (const field of ['execution_start_time', 'execution_end_time', 'outputs_count', 'preview_output', 'execution_error', 'workflow_id']) {
    t.equal(entry[field], null, `list entry ${field}`)
  }
  const detail = await sim.json(`/api/jobs/${pending}`)
  t.equal(detail.body.execution_error, null)
  t.equal(detail.body.workflow_id, null)
  conforms(t, 'JobEntry', entry, 'a list entry with nulls')
  conforms(t, 'JobDetailResponse', detail.body, 'a detail with nulls')
  t.notOk('execution_error' in detail.body, 'the proxy\'s schema reads null as absent')

  const spec = await startSim(t, { stepMs: 1000 })
  const specPending = await submit(spec, { prompt: defaultPrompt() })
  t.notOk('execution_error' in (await spec.json(`/api/jobs/${specPending}`)).body, 'spec: absent, not null')
})

t.test('an interrupted run: cancelled under spec, failed with InterruptProcessingException under current', async t => {
  for (const [profile, status] of [['spec', 'cancelled'], ['current', 'failed']] as const) {
    const sim = await startSim(t, { profile, stepMs: 20 })
    const id = await submit(sim, { prompt: defaultPrompt({ steps: 1000 }) })
    await waitForStatus(sim, id, ['in_progress'])
    t.equal((await sim.call('/api/interrupt', { method: 'POST', json: { prompt_id: id } })).status, 200)
    const job = await waitForStatus(sim, id, [status])
    t.equal(job.execution_status.messages.at(-1)[0], 'execution_interrupted', `${profile}: ComfyUI's own status dict`)
    if (profile === 'current') t.match(job.execution_error, { exception_type: 'InterruptProcessingException', node_id: String, node_type: String })
    else t.notOk('execution_error' in job, `${profile}: no error`)
  }
})

t.test('extra_data.simulator.execution_status = "absent" finishes a job without one, in the jobs and history_v2 views', async t => {
  const sim = await startSim(t, { stepMs: 20 })
  const extra = { simulator: { execution_status: 'absent' } }
  const completed = await submit(sim, { prompt: defaultPrompt({ steps: 1 }), extra_data: extra })
  await waitForStatus(sim, completed, ['completed'])
  const interrupted = await submit(sim, { prompt: defaultPrompt({ steps: 1000 }), extra_data: extra })
  await waitForStatus(sim, interrupted, ['in_progress'])
  await sim.call('/api/interrupt', { method: 'POST', json: { prompt_id: interrupted } })
  await waitForStatus(sim, interrupted, ['cancelled'])
  const normal = await submit(sim, { prompt: defaultPrompt({ steps: 1 }) })
  await waitForStatus(sim, normal, ['completed'])

  for (const id of [completed, interrupted]) {
    const detail = (await sim.json(`/api/jobs/${id}`)).body
    t.notOk('execution_status' in detail, 'jobs view: no execution_status')
    t.type(detail.execution_start_time, 'number', 'it did start')
    const record = (await sim.json(`/api/history_v2/${id}`)).body[id]
    t.notOk('status' in record, 'history_v2 detail: no status')
  }
  const history = (await sim.json('/api/history_v2')).body.history
  t.same(history.map((item: any) => [item.prompt_id, 'status' in item]), [[normal, true], [interrupted, false], [completed, false]])
  t.ok((await sim.json(`/api/jobs/${normal}`)).body.execution_status, 'other jobs keep theirs')
})
