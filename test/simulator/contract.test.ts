/**
 * Contract tests: every JSON answer the Cloud spec describes, produced by really running jobs through the
 * simulator, must validate against the cloud schemas the proxy uses (src/cloud/schemas.ts). If the simulator
 * drifts from the documented cloud shapes, these fail.
 */
import t from 'tap'
import { cloudValidator } from '../../src/cloud/schemas.js'
import { encodePng } from '../../src/simulator/png.js'
import { conforms, defaultPrompt, KEY, openWs, startSim, submit, waitFor, waitForStatus } from './fixtures/helpers.js'

t.test('every documented answer validates against the cloud schemas', async t => {
  const sim = await startSim(t, { stepMs: 10 })
  const ws = await openWs(t, sim)

  // one job in each state: completed, failed, cancelled while running, cancelled while pending, running, pending
  const completed = await submit(sim, { prompt: defaultPrompt({ steps: 2 }), extra_data: { api_key_comfy_org: 'comfyui-x' } })
  await waitForStatus(sim, completed, ['completed'])
  const failed = await submit(sim, { prompt: defaultPrompt({ steps: 2 }), extra_data: { simulator: { outcome: 'fail', node: '8' } } })
  await waitForStatus(sim, failed, ['failed'])
  const interrupted = await submit(sim, { prompt: defaultPrompt({ steps: 1000 }) })
  await waitForStatus(sim, interrupted, ['in_progress'])
  const dropped = await submit(sim, { prompt: defaultPrompt() })
  const submitted = await sim.json('/api/prompt', { method: 'POST', json: { prompt: defaultPrompt({ steps: 1000 }) } })
  conforms(t, 'PromptResponse', submitted.body, 'POST /api/prompt')
  const pending = submitted.body.prompt_id as string
  const cancelled = await sim.json(`/api/jobs/${dropped}/cancel`, { method: 'POST' })
  conforms(t, 'CancelResponse', cancelled.body, 'POST /api/jobs/{id}/cancel')
  const queue = await sim.json('/api/queue')
  conforms(t, 'QueueInfo', queue.body, 'GET /api/queue with a running and a pending job')
  t.equal(queue.body.queue_running.length, 1)
  t.equal(queue.body.queue_pending.length, 1)
  conforms(t, 'PromptInfo', (await sim.json('/api/prompt')).body, 'GET /api/prompt')
  await sim.json(`/api/jobs/${interrupted}/cancel`, { method: 'POST' })
  const running = await waitForStatus(sim, pending, ['in_progress'])
  conforms(t, 'JobDetailResponse', running, 'in_progress detail')
  const waiting = await submit(sim, { prompt: defaultPrompt() })

  const states: Record<string, string> = { completed, failed, interrupted, dropped, running: pending, pending: waiting }
  for (const [state, id] of Object.entries(states)) {
    const { body } = await sim.json(`/api/jobs/${id}`)
    conforms(t, 'JobDetailResponse', body, `detail (${state})`)
    t.ok(body.create_time > 1e12 && body.update_time > 1e12, `${state}: timestamps in ms`)
    if (body.execution_status !== undefined) conforms(t, 'ExecutionStatus', body.execution_status, `execution_status (${state})`)
    if (body.execution_error !== undefined) conforms(t, 'ExecutionError', body.execution_error, `execution_error (${state})`)
  }
  t.same(
    Object.fromEntries(await Promise.all(Object.entries(states).map(async ([state, id]) => [state, (await sim.json(`/api/jobs/${id}`)).body.status]))),
    { completed: 'completed', failed: 'failed', interrupted: 'cancelled', dropped: 'cancelled', running: 'in_progress', pending: 'pending' }
  )

  const list = await sim.json('/api/jobs')
  conforms(t, 'JobsListResponse', list.body, 'GET /api/jobs')
  for (const entry of list.body.jobs) conforms(t, 'JobEntry', entry, `list entry (${entry.status as string})`)
  conforms(t, 'JobsListResponse', (await sim.json('/api/jobs?status=completed,failed&sort_by=execution_time&limit=1&offset=1')).body, 'filtered page')

  const history = await sim.json('/api/history_v2')
  conforms(t, 'HistoryResponse', history.body, 'GET /api/history_v2')
  t.same(history.body.history.map((e: any) => e.prompt_id), [pending, interrupted, failed, completed])
  for (const id of [completed, failed, interrupted, pending]) {
    conforms(t, 'HistoryDetailResponse', (await sim.json(`/api/history_v2/${id}`)).body, `GET /api/history_v2/${id}`)
  }

  const manage = await sim.json('/api/queue', { method: 'POST', json: { delete: [waiting] } })
  conforms(t, 'QueueManageResponse', manage.body, 'POST /api/queue')
  conforms(t, 'ObjectInfoResponse', (await sim.json('/api/object_info')).body, 'GET /api/object_info')
  conforms(t, 'FeaturesResponse', (await sim.json('/api/features')).body, 'GET /api/features')
  conforms(t, 'SystemStatsResponse', (await sim.json('/api/system_stats')).body, 'GET /api/system_stats')
  const form = new FormData()
  form.append('image', new Blob([encodePng({ width: 2, height: 2, channels: 3, pixels: Buffer.alloc(12) })]), 'x.png')
  conforms(t, 'UploadImageResponse', (await sim.json('/api/upload/image', { method: 'POST', body: form })).body, 'POST /api/upload/image')

  const errors: Array<[string, RequestInit & { key?: string | null, json?: unknown }]> = [
    ['/api/jobs', { key: null }],
    ['/api/jobs?limit=0', {}],
    ['/api/jobs/0f3c6e2a-1b7d-4c55-9a1e-2d8f0b6c4a11', {}],
    ['/api/jobs/x', {}],
    ['/api/history_v2/0f3c6e2a-1b7d-4c55-9a1e-2d8f0b6c4a11', {}],
    ['/api/history', { method: 'POST', json: { nope: 1 } }],
    ['/api/queue', { method: 'POST', json: { nope: 1 } }],
    ['/api/view?filename=x.png', {}],
    ['/api/nowhere', {}]
  ]
  for (const [path, init] of errors) {
    const { status, body } = await sim.json(path, init)
    t.ok(status >= 400, `${path} is an error (${status})`)
    conforms(t, 'ErrorResponse', body, `${status} of ${path}`)
  }

  await ws.waitFor(m => m.type === 'executing' && m.data.node === null && m.data.prompt_id === interrupted, 'the interrupted job to end')
  for (const message of ws.messages()) conforms(t, 'WebSocketMessage', message, `ws ${message.type}`)
  for (const type of ['status', 'execution_start', 'execution_cached', 'executing', 'progress', 'progress_state', 'executed', 'execution_success', 'execution_error', 'execution_interrupted']) {
    t.ok(ws.messages().some(m => m.type === type), `the socket saw ${type}`)
  }
  await sim.json(`/api/jobs/${pending}/cancel`, { method: 'POST' })
  await waitFor(async () => (await sim.json('/api/prompt')).body.exec_info.queue_remaining === 0 ? true : undefined, 'an idle account')
})

t.test('the schemas are strict enough to catch drift', async t => {
  const sim = await startSim(t)
  const job = sim.app.simulator.seedJob(KEY, { status: 'completed', workflow: { prompt: defaultPrompt(), extra_data: {} } })
  const detail = (await sim.json(`/api/jobs/${job.id}`)).body
  const validDetail = cloudValidator('JobDetailResponse')
  t.ok(validDetail(detail))
  const { update_time: _dropped, ...withoutUpdate } = detail
  t.notOk(validDetail(withoutUpdate), 'a missing update_time is caught')
  t.notOk(validDetail({ ...detail, status: 'success' }), 'a raw cloud state is caught')
  sim.app.simulator.seedJob(KEY, { status: 'pending', workflow: { prompt: defaultPrompt(), extra_data: { client_id: 'c' } } })
  const queue = (await sim.json('/api/queue')).body
  const [position, id, graph, outputs, meta] = queue.queue_pending[0]
  t.ok(cloudValidator('QueueInfo')(queue))
  t.notOk(cloudValidator('QueueInfo')({ ...queue, queue_pending: [[position, id, graph, meta, outputs]] }), 'the local tuple order is caught')
})
