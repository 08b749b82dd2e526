import t from 'tap'
import WebSocket from 'ws'
import { cloudValidator } from '../../src/cloud/schemas.js'
import { conforms, defaultPrompt, KEY, startSim, submit, waitForStatus } from './fixtures/helpers.js'

t.test('latencyMs delays the answer of the matching route only', async t => {
  const sim = await startSim(t)
  sim.app.simulator.faults.set('GET /api/queue', { latencyMs: 120 })
  let started = Date.now()
  t.equal((await sim.call('/api/queue')).status, 200, 'still answered')
  t.ok(Date.now() - started >= 110, 'after the delay')
  started = Date.now()
  await sim.call('/api/prompt')
  t.ok(Date.now() - started < 100, 'other routes are not delayed')
})

t.test('status answers an ErrorResponse with Retry-After; times limits it', async t => {
  const sim = await startSim(t)
  sim.app.simulator.faults.set('GET /api/jobs', { status: 503, retryAfter: 7, times: 2 })
  for (let i = 0; i < 2; i++) {
    const { status, headers, body } = await sim.json('/api/jobs')
    t.equal(status, 503)
    t.equal(headers.get('retry-after'), '7')
    conforms(t, 'ErrorResponse', body)
    t.equal(body.code, 'SERVICE_UNAVAILABLE')
  }
  t.equal((await sim.json('/api/jobs')).status, 200, 'the fault is dropped after two requests')
  sim.app.simulator.faults.set('POST /api/prompt', { status: 429 })
  const refused = await sim.json('/api/prompt', { method: 'POST', json: { prompt: defaultPrompt() } })
  t.equal(refused.status, 429)
  t.equal(refused.body.code, 'TOO_MANY_REQUESTS')
  t.same(sim.app.simulator.jobs(KEY), [], 'a faulted submit queues nothing')
})

t.test('routes with parameters are keyed by their route url', async t => {
  const sim = await startSim(t)
  const job = sim.app.simulator.seedJob(KEY, { status: 'completed' })
  sim.app.simulator.faults.set('GET /api/jobs/:job_id', { status: 500 })
  t.equal((await sim.json(`/api/jobs/${job.id}`)).status, 500)
  t.equal((await sim.json('/api/jobs')).status, 200)
  sim.app.simulator.faults.clear('GET /api/jobs/:job_id')
  t.equal((await sim.json(`/api/jobs/${job.id}`)).status, 200)
})

t.test('errorRate is the chance a matching request fails', async t => {
  const sim = await startSim(t)
  sim.app.simulator.faults.set('GET /api/queue', { status: 502, errorRate: 0 })
  for (let i = 0; i < 20; i++) t.equal((await sim.call('/api/queue')).status, 200)
  sim.app.simulator.faults.set('GET /api/queue', { status: 502, errorRate: 0.5 })
  let failed = 0
  for (let i = 0; i < 200; i++) if ((await sim.call('/api/queue')).status === 502) failed++
  t.ok(failed > 40 && failed < 160, `about half failed (${failed}/200)`)
})

t.test('reset destroys the connection without an answer', async t => {
  const sim = await startSim(t)
  sim.app.simulator.faults.set('GET /api/queue', { reset: true })
  const error = await sim.call('/api/queue').then(() => undefined, (e: Error) => e)
  t.type(error, TypeError, 'fetch fails')
  t.match(String((error as any)?.cause?.code ?? (error as any)?.cause?.message), /ECONNRESET|UND_ERR_SOCKET|other side closed/)
  t.equal((await sim.call('/api/prompt')).status, 200, 'the server keeps serving')
  sim.app.simulator.faults.clear()
  t.equal((await sim.call('/api/queue')).status, 200)
})

t.test('malformed answers 200 JSON that does not parse', async t => {
  const sim = await startSim(t)
  sim.app.simulator.faults.set('GET /api/jobs', { malformed: true, times: 1 })
  const response = await sim.call('/api/jobs')
  t.equal(response.status, 200)
  t.match(response.headers.get('content-type'), /^application\/json/)
  const text = await response.text()
  t.ok(text.length > 0)
  t.throws(() => JSON.parse(text), SyntaxError)
  t.ok('{"jobs":[],"pagination":{"offset":0,"limit":100,"total":0,"has_more":false}}'.startsWith(text), 'a truncated real answer')
  t.same(JSON.parse(await (await sim.call('/api/jobs')).text()).jobs, [], 'the next answer is whole again')
  sim.app.simulator.faults.set('GET /api/jobs/:job_id', { malformed: true })
  t.equal((await sim.call('/api/jobs/0f3c6e2a-1b7d-4c55-9a1e-2d8f0b6c4a11')).status, 404, 'only 200 answers are damaged')
  t.same(await (await sim.call('/api/jobs/0f3c6e2a-1b7d-4c55-9a1e-2d8f0b6c4a11')).json(), { code: 'NOT_FOUND', message: 'Job 0f3c6e2a-1b7d-4c55-9a1e-2d8f0b6c4a11 not found' })
})

t.test('drift renames and removes top-level keys, and keys of each /api/jobs item', async t => {
  const sim = await startSim(t)
  const job = sim.app.simulator.seedJob(KEY, { status: 'completed', create_time: 1763900000000, update_time: 1763900001000 })
  sim.app.simulator.faults.set('GET /api/jobs/:job_id', { drift: { rename: { status: 'state' }, remove: ['update_time'] } })
  const detail = (await sim.json(`/api/jobs/${job.id}`)).body
  t.same(detail, { id: job.id, state: 'completed', create_time: 1763900000000 })
  t.notOk(cloudValidator('JobDetailResponse')(detail), 'the cloud schema notices the drift')
  sim.app.simulator.faults.set('GET /api/jobs', { drift: { rename: { create_time: 'created_at', pagination: 'page' } } })
  const list = (await sim.json('/api/jobs')).body
  t.same(list.jobs, [{ id: job.id, status: 'completed', created_at: 1763900000000 }])
  t.ok('page' in list && !('pagination' in list))
  t.notOk(cloudValidator('JobsListResponse')(list))
})

t.test("'*' applies to every route; a route's own fault wins", async t => {
  const sim = await startSim(t)
  const control = sim.app.simulator
  control.faults.set('*', { status: 503 })
  for (const path of ['/api/jobs', '/api/queue', '/api/object_info', '/api/system_stats']) t.equal((await sim.call(path)).status, 503, path)
  control.faults.set('GET /api/queue', { status: 500 })
  t.equal((await sim.call('/api/queue')).status, 500)
  t.equal((await sim.call('/api/jobs')).status, 503)
  control.faults.clear()
  t.equal((await sim.call('/api/jobs')).status, 200)
})

t.test('faults apply to the WebSocket upgrade', async t => {
  const sim = await startSim(t)
  sim.app.simulator.faults.set('GET /ws', { status: 503, times: 1 })
  const status = await new Promise<number>((resolve, reject) => {
    const socket = new WebSocket(`${sim.url.replace('http', 'ws')}/ws?token=${KEY}`)
    socket.on('unexpected-response', (request, response) => { resolve(response.statusCode ?? 0); request.destroy() })
    socket.on('open', () => { socket.terminate(); resolve(101) })
    socket.on('error', reject)
  })
  t.equal(status, 503)
})

t.test('faults over HTTP: PUT and DELETE /__simulator/faults', async t => {
  const sim = await startSim(t)
  t.equal((await sim.json('/__simulator/faults', { method: 'PUT', key: null, json: { route: '*', fault: { status: 500 } } })).status, 401, 'needs the key')
  const put = await sim.json('/__simulator/faults', { method: 'PUT', json: { route: '*', fault: { status: 503, retryAfter: 2 } } })
  t.equal(put.status, 200)
  t.same(put.body, { route: '*', fault: { status: 503, retryAfter: 2 } })
  t.equal((await sim.call('/api/queue')).status, 503)
  t.equal((await sim.json('/__simulator/faults', { method: 'PUT', json: { route: 'GET /api/jobs', fault: { latencyMs: 1 } } })).status, 200, "control routes ignore '*'")
  t.equal((await sim.call('/__simulator/faults?route=*', { method: 'DELETE' })).status, 204)
  t.equal((await sim.call('/api/queue')).status, 200, 'cleared one route')
  await sim.json('/__simulator/faults', { method: 'PUT', json: { route: 'GET /api/queue', fault: { status: 500 } } })
  await sim.json('/__simulator/faults', { method: 'PUT', json: { route: 'GET /api/prompt', fault: { status: 500 } } })
  t.equal((await sim.call('/__simulator/faults', { method: 'DELETE' })).status, 204)
  t.equal((await sim.call('/api/queue')).status, 200, 'cleared all')
  t.equal((await sim.call('/api/prompt')).status, 200)
  for (const body of [{ fault: {} }, { route: '*' }, { route: '*', fault: { status: 'x' } }, { route: '*', fault: { errorRate: 2 } }, { route: '*', fault: { bogus: 1 } }, { route: '*', fault: { drift: { remove: 'x' } } }]) {
    const answer = await sim.json('/__simulator/faults', { method: 'PUT', json: body })
    t.equal(answer.status, 400, JSON.stringify(body))
    conforms(t, 'ErrorResponse', answer.body)
  }
})

t.test('requests are recorded with their headers, at most the last 1000', async t => {
  const sim = await startSim(t)
  const control = sim.app.simulator
  await sim.call('/api/queue?x=1', { headers: { 'x-client-header': 'leak-check' } })
  const recorded = control.requests.at(-1)
  t.match(recorded, { method: 'GET', url: '/api/queue?x=1', headers: { 'x-client-header': 'leak-check', 'x-api-key': KEY } })
  await sim.call('/storage/none.png')
  t.equal(control.requests.at(-1)?.url, '/storage/none.png', 'unauthenticated requests too')
  for (let batch = 0; batch < 21; batch++) await Promise.all(Array.from({ length: 50 }, async (_, i) => await sim.call(`/api/system_stats?n=${batch * 50 + i}`, { key: null })))
  t.equal(control.requests.length, 1000)
  t.notOk(control.requests.some(r => r.url === '/api/queue?x=1'), 'the oldest are dropped')
})

t.test('reset() drops jobs, faults, files and recorded requests', async t => {
  const sim = await startSim(t, { stepMs: 1 })
  const control = sim.app.simulator
  const id = await submit(sim, { prompt: defaultPrompt() })
  const image = (await waitForStatus(sim, id, ['completed'])).outputs['9'].images[0]
  const running = await submit(sim, { prompt: defaultPrompt({ steps: 10000 }) })
  await waitForStatus(sim, running, ['in_progress'])
  control.faults.set('GET /api/queue', { status: 500 })
  control.reset()
  t.same(control.requests, [])
  t.same(control.jobs(KEY), [])
  t.equal((await sim.call('/api/queue')).status, 200, 'no fault')
  t.equal((await sim.json(`/api/jobs/${id}`)).status, 404, 'no job')
  t.equal((await sim.json(`/api/view?filename=${image.filename as string}`)).status, 404, 'no file')
  t.equal((await sim.json('/api/prompt', { method: 'POST', json: { prompt: defaultPrompt() } })).body.number, 1, 'numbering restarts')
  t.equal(control.requests.length, 4, 'recording goes on')
})

t.test('seedJob mints what is missing and refuses unknown keys', async t => {
  const sim = await startSim(t)
  const control = sim.app.simulator
  const before = Date.now()
  const job = control.seedJob(KEY, { status: 'completed', outputs: { 9: { images: [] } } })
  t.match(job.id, /^[0-9a-f-]{36}$/)
  t.ok(job.create_time >= before && job.update_time === job.create_time)
  t.same(control.jobs(KEY), [job])
  job.status = 'failed'
  t.equal(control.jobs(KEY)[0].status, 'completed', 'a copy is returned')
  t.throws(() => control.seedJob('comfyui-unknown', { status: 'pending' }))
})
