/**
 * Where a client can tell the proxy from a real ComfyUI 0.18 (issue 11): numbers, prompt ids,
 * `front`, and the status codes of bad submits. Expected values are what local ComfyUI answered.
 */
import { randomUUID } from 'node:crypto'
import t from 'tap'
import WebSocket from 'ws'
import { defaultGraph, getJson, postJson, startStack, waitFor, type Stack } from '../helpers.js'

type Tuple = [number, string, unknown, Record<string, unknown>, string[]]

async function queueTuples (stack: Stack): Promise<{ running: Tuple[], pending: Tuple[] }> {
  const { body } = await getJson(`${stack.url}/queue`)
  return { running: body.queue_running, pending: body.queue_pending }
}

async function finished (stack: Stack, promptId: string): Promise<any> {
  return await waitFor(async () => (await getJson(`${stack.url}/history/${encodeURIComponent(promptId)}`)).body[promptId], 15_000, `history of ${promptId}`)
}

t.test('one number per prompt: POST /prompt, /queue and /history show the same one (observed finding 3)', async t => {
  const stack = await startStack(t, {}, { stepMs: 20 })
  const first = await postJson(`${stack.url}/prompt`, { prompt: defaultGraph(1, 64, 64, 10) })
  const second = await postJson(`${stack.url}/api/prompt`, { prompt: defaultGraph(2, 64, 64, 10) })
  t.type(first.body.number, 'number')
  t.ok(second.body.number > first.body.number, 'numbers grow with each submit')
  const { running, pending } = await queueTuples(stack)
  const queued = new Map([...running, ...pending].map(tuple => [tuple[1], tuple[0]]))
  t.equal(queued.get(first.body.prompt_id), first.body.number, '/queue shows the number POST /prompt answered')
  t.equal(queued.get(second.body.prompt_id), second.body.number)
  t.equal((await finished(stack, first.body.prompt_id)).prompt[0], first.body.number, '/history/{id} too')
  await finished(stack, second.body.prompt_id)
  const history = (await getJson(`${stack.url}/history`)).body
  t.equal(history[second.body.prompt_id].prompt[0], second.body.number, '/history too')

  const chosen = await postJson(`${stack.url}/prompt`, { prompt: defaultGraph(3), number: '7' })
  t.equal(chosen.body.number, 7, 'a client\'s number is its prompt\'s number')
  t.equal((await finished(stack, chosen.body.prompt_id)).prompt[0], 7)
})

t.test('front: true lists the prompt ahead of the pending ones in /queue (observed finding 17)', async t => {
  const stack = await startStack(t, {}, { stepMs: 20 })
  const sim = stack.simulator.app.simulator
  const running = await postJson(`${stack.url}/prompt`, { prompt: defaultGraph(1, 64, 64, 500) })
  await waitFor(async () => sim.jobs(stack.key).find(job => job.id === running.body.prompt_id)?.status === 'in_progress' ? true : undefined)
  const a = await postJson(`${stack.url}/prompt`, { prompt: defaultGraph(2) })
  const b = await postJson(`${stack.url}/prompt`, { prompt: defaultGraph(3) })
  const front = await postJson(`${stack.url}/prompt`, { prompt: defaultGraph(4), front: true })
  t.ok(front.body.number < 0, 'a front prompt gets a negative number, as local\'s -counter')
  const { pending } = await queueTuples(stack)
  t.same(pending.map(tuple => tuple[1]), [front.body.prompt_id, a.body.prompt_id, b.body.prompt_id], 'front first, then submission order')
  t.same(pending.map(tuple => tuple[0]), [front.body.number, a.body.number, b.body.number])
  const ignored = await postJson(`${stack.url}/prompt`, { prompt: defaultGraph(5), front: true, number: 3 })
  t.equal(ignored.body.number, 3, 'front is ignored when the client sends a number, as local does')
})

interface Frame { type: string, data: Record<string, unknown> }

t.test('a client\'s prompt_id is kept as given, in every answer, event, cancel and delete (observed finding 4)', async t => {
  const stack = await startStack(t, {}, { stepMs: 5 })
  const sim = stack.simulator.app.simulator
  const socket = new WebSocket(`${stack.url.replace('http', 'ws')}/ws?clientId=me`)
  t.teardown(() => { socket.terminate() })
  const frames: Frame[] = []
  socket.on('message', (data: Buffer, isBinary: boolean) => { if (!isBinary) frames.push(JSON.parse(data.toString())) })
  await new Promise(resolve => socket.once('open', resolve))

  const submitted = await postJson(`${stack.url}/prompt`, { prompt: defaultGraph(1), client_id: 'me', prompt_id: 'my run' })
  t.equal(submitted.status, 200)
  t.equal(submitted.body.prompt_id, 'my run')
  const cloudId = sim.jobs(stack.key)[0].id
  t.not(cloudId, 'my run', 'the cloud minted its own id')
  await waitFor(async () => frames.find(f => f.type === 'executing' && f.data.node === null && f.data.prompt_id === 'my run'), 15_000, 'executing null')
  const named = frames.filter(f => f.data.prompt_id !== undefined)
  t.ok(named.length > 3)
  t.ok(named.every(f => f.data.prompt_id === 'my run'), 'every event names the client\'s id')
  t.notOk(frames.some(f => JSON.stringify(f).includes(cloudId)), 'the cloud id appears nowhere, progress_state nodes included')

  const entry = await finished(stack, 'my run')
  t.equal(entry.prompt[1], 'my run')
  t.ok(entry.status.messages.every((m: [string, { prompt_id: string }]) => m[1].prompt_id === 'my run'))
  const list = (await getJson(`${stack.url}/history`)).body
  t.same(Object.keys(list), ['my run'], 'keyed by the client\'s id')

  const numeric = await postJson(`${stack.url}/prompt`, { prompt: defaultGraph(2), prompt_id: 12345 })
  t.equal(numeric.body.prompt_id, '12345', 'a number becomes its string')
  t.equal((await finished(stack, '12345')).prompt[1], '12345')

  const reused = await postJson(`${stack.url}/prompt`, { prompt: defaultGraph(3), prompt_id: 'my run' })
  t.equal(reused.status, 200, 'a reused id is accepted')
  t.equal(reused.body.prompt_id, 'my run')
  await waitFor(async () => (await getJson(`${stack.url}/history/my%20run`)).body['my run']?.prompt[0] === reused.body.number ? true : undefined, 15_000, 'the rerun')
  const afterRerun = (await getJson(`${stack.url}/history`)).body
  t.same(Object.keys(afterRerun).sort(), ['12345', 'my run'], 'one entry per id, as local overwrites it')
  t.same(afterRerun['my run'].prompt[2], defaultGraph(3), 'the newest run')

  const long = await postJson(`${stack.url}/prompt`, { prompt: defaultGraph(4, 64, 64, 5000), prompt_id: 'long' })
  const waiting = await postJson(`${stack.url}/prompt`, { prompt: defaultGraph(5), prompt_id: 'waiting' })
  t.equal(long.status, 200)
  t.equal(waiting.status, 200)
  const statusOf = (id: string): string | undefined => sim.jobs(stack.key).find(job => job.id === stack.app.promptIds.toCloud(id))?.status
  await waitFor(async () => statusOf('long') === 'in_progress' ? true : undefined)
  const { running, pending } = await queueTuples(stack)
  t.same(running.map(tuple => tuple[1]), ['long'], '/queue shows the client\'s ids')
  t.same(pending.map(tuple => tuple[1]), ['waiting'])
  await postJson(`${stack.url}/queue`, { delete: ['waiting'] })
  t.equal(statusOf('waiting'), 'cancelled', 'POST /queue delete takes the client\'s id')
  await postJson(`${stack.url}/interrupt`, { prompt_id: 'long' })
  await waitFor(async () => statusOf('long') === 'cancelled' ? true : undefined, 10_000, 'interrupt by the client\'s id')
  await postJson(`${stack.url}/history`, { delete: ['12345'] })
  t.same((await getJson(`${stack.url}/history/12345`)).body, {}, 'POST /history delete takes the client\'s id')
})

t.test('a canonical UUID prompt_id is offered to the cloud; a reused one is mapped instead', async t => {
  const stack = await startStack(t)
  const sim = stack.simulator.app.simulator
  const id = randomUUID()
  const first = await postJson(`${stack.url}/prompt`, { prompt: defaultGraph(1), prompt_id: id })
  t.equal(first.body.prompt_id, id)
  t.equal(sim.jobs(stack.key)[0].id, id, 'the cloud took the client\'s UUID')
  await finished(stack, id)
  const again = await postJson(`${stack.url}/prompt`, { prompt: defaultGraph(2), prompt_id: id })
  t.equal(again.status, 200)
  t.equal(again.body.prompt_id, id)
  t.not(sim.jobs(stack.key)[1].id, id, 'not offered twice')
  await waitFor(async () => (await getJson(`${stack.url}/history/${id}`)).body[id]?.prompt[0] === again.body.number ? true : undefined, 15_000, 'the rerun')
  t.same(Object.keys((await getJson(`${stack.url}/history`)).body), [id])
})

t.test('POST /prompt with a JSON array is 400 no_prompt, as local answers it (observed finding 6)', async t => {
  const stack = await startStack(t)
  for (const path of ['/prompt', '/api/prompt']) {
    const { status, body } = await postJson(`${stack.url}${path}`, [])
    t.equal(status, 400)
    t.same(body, { error: { type: 'no_prompt', message: 'No prompt provided', details: 'No prompt provided', extra_info: {} }, node_errors: {} })
  }
  t.equal(stack.simulator.app.simulator.jobs(stack.key).length, 0)
})

t.test('a wrong method on a local route is 405 text/plain with Allow, as aiohttp answers (observed finding 21)', async t => {
  const stack = await startStack(t)
  const sim = stack.simulator.app.simulator
  sim.requests.length = 0
  const cases: Array<[string, string, string]> = [
    ['PUT', '/prompt', 'GET,HEAD,POST'],
    ['DELETE', '/api/history', 'GET,HEAD,POST'],
    ['PATCH', '/api/history/abc', 'GET,HEAD'],
    ['GET', '/interrupt', 'POST'],
    ['HEAD', '/api/interrupt', 'POST'],
    ['POST', '/view', 'GET,HEAD'],
    ['PUT', '/api/queue', 'GET,HEAD,POST'],
    ['POST', '/object_info/KSampler', 'GET,HEAD'],
    ['POST', '/ws', 'GET,HEAD']
  ]
  for (const [method, path, allow] of cases) {
    const response = await fetch(`${stack.url}${path}`, { method, body: method === 'GET' || method === 'HEAD' ? undefined : '{}' })
    t.equal(response.status, 405, `${method} ${path}`)
    t.equal(response.headers.get('allow'), allow, `${method} ${path}`)
    t.equal(response.headers.get('content-type'), 'text/plain; charset=utf-8')
    t.equal(await response.text(), method === 'HEAD' ? '' : '405: Method Not Allowed')
  }
  t.same(sim.requests, [], 'none of them reached the cloud')
})

t.test('/api/jobs answers in local\'s shape: priority, outputs_count, pagination.limit, execution_error, error bodies (observed finding 23)', async t => {
  const stack = await startStack(t, {}, { stepMs: 20 })
  const sim = stack.simulator.app.simulator
  const done = await postJson(`${stack.url}/prompt`, { prompt: defaultGraph(1), prompt_id: 'done', extra_data: { extra_pnginfo: { workflow: { id: 'wf-1' } } } })
  await finished(stack, 'done')
  const failed = await postJson(`${stack.url}/prompt`, {
    prompt: defaultGraph(2), prompt_id: 'broken', extra_data: { simulator: { outcome: 'fail', node: '8', exception_type: 'RuntimeError', exception_message: 'boom\n' } }
  })
  await finished(stack, 'broken')
  const running = await postJson(`${stack.url}/prompt`, { prompt: defaultGraph(3, 64, 64, 5000), prompt_id: 'running' })
  await waitFor(async () => sim.jobs(stack.key).find(job => job.id === stack.app.promptIds.toCloud('running'))?.status === 'in_progress' ? true : undefined)
  const pending = await postJson(`${stack.url}/prompt`, { prompt: defaultGraph(4), prompt_id: 'pending' })

  for (const path of ['/api/jobs', '/jobs']) {
    const { status, body } = await getJson(`${stack.url}${path}?limit=10`)
    t.equal(status, 200, path)
    t.same(Object.keys(body), ['jobs', 'pagination'])
    t.same(body.pagination, { offset: 0, limit: 10, total: 4, has_more: false })
    t.same(body.jobs.map((job: { id: string }) => job.id), ['pending', 'running', 'broken', 'done'], 'newest first, by the client\'s ids')
  }
  const jobs = new Map<string, any>((await getJson(`${stack.url}/api/jobs`)).body.jobs.map((job: { id: string }) => [job.id, job]))
  t.same(Object.keys(jobs.get('pending')), ['id', 'status', 'priority', 'create_time', 'outputs_count'])
  t.equal(jobs.get('pending').priority, pending.body.number, 'priority is the prompt\'s number')
  t.equal(jobs.get('pending').outputs_count, 0, 'outputs_count on a pending job')
  t.equal(jobs.get('running').status, 'in_progress')
  t.equal(jobs.get('running').outputs_count, 0)
  t.equal(jobs.get('running').priority, running.body.number)
  const doneJob = jobs.get('done')
  t.same(Object.keys(doneJob), ['id', 'status', 'priority', 'create_time', 'execution_start_time', 'execution_end_time', 'outputs_count', 'preview_output', 'workflow_id'])
  t.equal(doneJob.priority, done.body.number)
  t.equal(doneJob.outputs_count, 1)
  t.equal(doneJob.workflow_id, 'wf-1')
  const brokenJob = jobs.get('broken')
  t.equal(brokenJob.status, 'failed')
  t.equal(brokenJob.priority, failed.body.number)
  t.same(Object.keys(brokenJob.execution_error), ['prompt_id', 'node_id', 'node_type', 'executed', 'exception_message', 'exception_type', 'traceback', 'current_inputs', 'current_outputs', 'timestamp'])
  t.match(brokenJob.execution_error, { prompt_id: 'broken', node_id: '8', node_type: 'VAEDecode', exception_message: 'boom\n', exception_type: 'RuntimeError' })
  t.equal(brokenJob.execution_error.timestamp, brokenJob.execution_end_time)
  t.equal((await getJson(`${stack.url}/api/jobs`)).body.pagination.limit, null, 'no limit: null, as local')

  const detail = (await getJson(`${stack.url}/api/jobs/done`)).body
  t.equal(detail.id, 'done')
  t.same(Object.keys(detail).slice(-3), ['outputs', 'execution_status', 'workflow'])
  t.ok(detail.execution_status.messages.every((m: [string, { prompt_id: string }]) => m[1].prompt_id === 'done'))
  t.same(detail.workflow.prompt, defaultGraph(1))
  t.same(Object.keys((await getJson(`${stack.url}/api/jobs/pending`)).body), ['id', 'status', 'priority', 'create_time', 'outputs_count'], 'an unfinished job is the list\'s compact one')

  const unknown = await getJson(`${stack.url}/api/jobs/no-such-job`)
  t.equal(unknown.status, 404)
  t.equal(unknown.text, '{"error":"Job not found"}')
  const badStatus = await getJson(`${stack.url}/api/jobs?status=done,pending,Foo`)
  t.equal(badStatus.status, 400)
  t.same(badStatus.body, { error: 'Invalid status value(s): done, foo. Valid values: pending, in_progress, completed, failed, cancelled' })
  for (const [query, error] of [['limit=0', 'limit must be a positive integer'], ['limit=x', 'limit must be an integer'], ['offset=1.5', 'offset must be an integer'],
    ['sort_by=name', 'sort_by must be \'created_at\' or \'execution_duration\''], ['sort_order=up', 'sort_order must be \'asc\' or \'desc\'']]) {
    const refused = await getJson(`${stack.url}/api/jobs?${query}`)
    t.equal(refused.status, 400, query)
    t.same(refused.body, { error }, query)
  }
  const negative = await getJson(`${stack.url}/api/jobs?offset=-3&limit=1&status=Completed,%20failed`)
  t.same(negative.body.pagination, { offset: 0, limit: 1, total: 2, has_more: true }, 'a negative offset is clamped; statuses trimmed and lowercased')

  t.same((await postJson(`${stack.url}/api/jobs/pending/cancel`, '')).body, { cancelled: true }, 'cancel by the client\'s id')
  t.same((await postJson(`${stack.url}/api/jobs/done/cancel`, '')).body, { cancelled: false }, 'a finished job is not cancelled, and not an error')
  t.same((await postJson(`${stack.url}/api/jobs/nobody/cancel`, '')).body, { cancelled: false })
  t.same((await postJson(`${stack.url}/api/jobs/cancel`, { job_ids: ['running', 'nobody'] })).body, { cancelled: true })
  t.same((await postJson(`${stack.url}/api/jobs/cancel`, 'nope')).body, { error: 'Request body must be valid JSON' })
  t.same((await postJson(`${stack.url}/api/jobs/cancel`, { job_ids: 'running' })).body, { error: 'job_ids must be a list' })
  t.equal(sim.jobs(stack.key).find(job => job.id === stack.app.promptIds.toCloud('running'))?.status, 'cancelled')
})

t.test('regression: a huge /api/jobs offset or limit was a 502 (the cloud refused it) or a walk through the whole history', async t => {
  const stack = await startStack(t, { historyMaxEntries: 5 })
  await postJson(`${stack.url}/prompt`, { prompt: defaultGraph(1) })
  const sim = stack.simulator.app.simulator
  sim.requests.length = 0
  const far = await getJson(`${stack.url}/api/jobs?offset=9007199254740993&limit=2`)
  t.equal(far.status, 200)
  t.same(far.body.jobs, [])
  t.equal(far.body.pagination.total, 1)
  const huge = await getJson(`${stack.url}/api/jobs?limit=99999999999999999999`)
  t.equal(huge.status, 200)
  t.equal(huge.body.jobs.length, 1)
  t.equal(sim.requests.length, 2, 'one cloud page each, bounded by HISTORY_MAX_ENTRIES')
})
