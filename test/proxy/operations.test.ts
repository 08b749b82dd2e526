import t from 'tap'
import WebSocket from 'ws'
import { defaultGraph, getJson, postJson, runJob, startProxy, startStack, testKey } from '../helpers.js'

t.test('/healthz answers without calling the cloud, even when the cloud is down', async t => {
  const proxy = await startProxy(t, { cloudUrl: 'http://127.0.0.1:9', apiKey: 'comfyui-x' })
  const { status, text } = await getJson(`${proxy.url}/healthz`)
  t.equal(status, 200)
  t.equal(text, '{"status":"ok"}')
  const stack = await startStack(t)
  await getJson(`${stack.url}/healthz`)
  t.equal(stack.simulator.app.simulator.requests.length, 0, 'no cloud call')
})

t.test('/readyz checks that the cloud accepts the key, and caches the answer briefly', async t => {
  const stack = await startStack(t)
  t.match((await getJson(`${stack.url}/readyz`)).body, { status: 'ready', state: { store: 'memory', healthy: true }, check: { ok: true } })
  await getJson(`${stack.url}/readyz`)
  t.same(stack.simulator.app.simulator.requests.map(request => request.url), ['/api/prompt', '/api/jobs?limit=1'], 'one quick check for two probes')
  const wrong = await startProxy(t, { cloudUrl: stack.simulator.url, apiKey: testKey() })
  const { status, body } = await getJson(`${wrong.url}/readyz`)
  t.equal(status, 503)
  t.equal(body.error.type, 'cloud_auth_failed')
})

t.test('/metrics exposes requests, cloud calls, schema failures and the cache in Prometheus text', async t => {
  const stack = await startStack(t, { cloudRetries: 0 })
  const { promptId } = await runJob(stack.url)
  await getJson(`${stack.url}/history/${promptId}`)
  stack.simulator.app.simulator.faults.set('GET /api/jobs', { drift: { remove: ['pagination'] }, times: 1 })
  t.equal((await getJson(`${stack.url}/history?max_items=1`)).status, 502)
  const response = await fetch(`${stack.url}/metrics`)
  t.equal(response.status, 200)
  t.match(response.headers.get('content-type'), /^text\/plain/)
  const text = await response.text()
  t.match(text, /comfy_proxy_http_request_duration_seconds_count\{method="GET",route="\/history\/:id",status="200"\} \d+/)
  t.match(text, /comfy_proxy_http_request_duration_seconds_bucket\{le="0\.005",method="POST",route="\/prompt",status="200"\}/)
  t.match(text, /comfy_proxy_cloud_request_duration_seconds_count\{method="GET",route="\/api\/jobs\/:id",outcome="200"\} \d+/)
  t.match(text, /comfy_proxy_cloud_schema_failures_total\{schema="JobsListResponse"\} 1/)
  t.match(text, /comfy_proxy_history_cache_hits_total [1-9]/)
  t.match(text, /comfy_proxy_history_cache_entries 1/)
})

t.test('a dead cloud opens the circuit: fast 503s with Retry-After instead of piling up calls', async t => {
  const stack = await startStack(t, { cloudRetries: 0, breakerThreshold: 2, breakerCooldownMs: 400 })
  const sim = stack.simulator.app.simulator
  sim.faults.set('*', { status: 500 })
  t.equal((await getJson(`${stack.url}/prompt`)).status, 502)
  t.equal((await getJson(`${stack.url}/history?max_items=1`)).status, 502)
  const before = sim.requests.length
  for (const path of ['/prompt', '/history/abc', '/object_info']) {
    const open = await getJson(`${stack.url}${path}`)
    t.equal(open.status, 503, path)
    t.equal(open.body.error.type, 'cloud_circuit_open')
    t.ok(Number(open.headers.get('retry-after')) >= 1)
  }
  t.equal(sim.requests.length, before, 'no call reached the cloud while open')
  sim.faults.clear()
  await new Promise(resolve => setTimeout(resolve, 450))
  t.equal((await getJson(`${stack.url}/prompt`)).status, 200, 'a trial call closes the circuit again')
  t.equal((await getJson(`${stack.url}/object_info`)).status, 200)
})

t.test('PROXY_AUTH_TOKEN guards every route but the probes; the token is never forwarded', async t => {
  const token = 'inbound-secret-token'
  const stack = await startStack(t, { proxyAuthToken: token })
  const denied = await getJson(`${stack.url}/history`)
  t.equal(denied.status, 401)
  t.equal(denied.body.error.type, 'unauthorized')
  t.equal((await getJson(`${stack.url}/history`, { headers: { authorization: 'Bearer wrong' } })).status, 401)
  t.equal((await getJson(`${stack.url}/history`, { headers: { authorization: `Bearer ${token}` } })).status, 200)
  t.equal((await getJson(`${stack.url}/healthz`)).status, 200)
  const sim = stack.simulator.app.simulator
  sim.requests.length = 0
  t.equal((await getJson(`${stack.url}/system_stats?token=${token}`)).status, 200)
  t.equal(sim.requests[0].url, '/api/system_stats')
  t.equal(sim.requests[0].headers.authorization, undefined)

  const wsUrl = stack.url.replace('http', 'ws')
  const refused = new WebSocket(`${wsUrl}/ws?clientId=a`)
  const status = await new Promise<number>(resolve => refused.once('unexpected-response', (req, res) => { resolve(res.statusCode ?? 0); req.destroy() }))
  t.equal(status, 401)
  const allowed = new WebSocket(`${wsUrl}/ws?clientId=a&token=${token}`)
  const first = await new Promise<string>(resolve => allowed.once('message', (data: Buffer) => { resolve(data.toString()) }))
  t.match(JSON.parse(first), { type: 'status', data: { sid: 'a' } })
  allowed.close()
  for (const line of stack.logs) t.notMatch(line, token)
})

t.test('CORS is off by default and configurable for browser clients', async t => {
  const plain = await startStack(t)
  const none = await fetch(`${plain.url}/prompt`, { headers: { origin: 'http://app.example' } })
  t.equal(none.headers.get('access-control-allow-origin'), null)
  const stack = await startStack(t, { corsOrigin: 'http://app.example' })
  const preflight = await fetch(`${stack.url}/api/prompt`, {
    method: 'OPTIONS',
    headers: { origin: 'http://app.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' }
  })
  t.ok(preflight.status === 204 || preflight.status === 200)
  t.equal(preflight.headers.get('access-control-allow-origin'), 'http://app.example')
  const actual = await fetch(`${stack.url}/prompt`, { headers: { origin: 'http://app.example' } })
  t.equal(actual.headers.get('access-control-allow-origin'), 'http://app.example')
  t.equal(stack.simulator.app.simulator.requests.filter(r => r.method === 'OPTIONS').length, 0, 'preflights are answered locally')
})

t.test('bodies over BODY_LIMIT get a 413 JSON error in the local envelope', async t => {
  const stack = await startStack(t, { bodyLimit: 4096 })
  const graph = defaultGraph()
  const big = { prompt: graph, extra_data: { note: 'x'.repeat(10_000) } }
  const { status, body } = await postJson(`${stack.url}/prompt`, big)
  t.equal(status, 413)
  t.same(Object.keys(body), ['error', 'node_errors'])
  t.equal(stack.simulator.app.simulator.jobs(stack.key).length, 0)
})

t.test('closing finishes in-flight requests and tells WebSocket clients 1001', async t => {
  const stack = await startStack(t)
  // GET /prompt asks the cloud for the account's unfinished jobs.
  stack.simulator.app.simulator.faults.set('GET /api/jobs', { latencyMs: 300 })
  const socket = new WebSocket(`${stack.url.replace('http', 'ws')}/ws?clientId=z`)
  await new Promise(resolve => socket.once('message', resolve))
  const closed = new Promise<number>(resolve => socket.once('close', (code: number) => { resolve(code) }))
  const inFlight = getJson(`${stack.url}/prompt`)
  await new Promise(resolve => setTimeout(resolve, 50))
  await stack.app.close()
  t.equal(await closed, 1001)
  const finished = await inFlight
  t.equal(finished.status, 200, 'the in-flight request was answered')
  await t.rejects(fetch(`${stack.url}/healthz`), 'no longer accepting')
})

t.test('regression: a WebSocket upgrade refused for a missing token no longer holds up shutdown', async t => {
  const stack = await startStack(t, { proxyAuthToken: 'tok' })
  const refused = new WebSocket(`${stack.url.replace('http', 'ws')}/ws?clientId=a`)
  refused.on('error', () => {})
  const status = await new Promise<number>(resolve => refused.once('unexpected-response', (_req, res) => { resolve(res.statusCode ?? 0) }))
  t.equal(status, 401)
  const started = Date.now()
  await stack.app.close()
  t.ok(Date.now() - started < 2000, 'closed without waiting for the refused socket')
})
