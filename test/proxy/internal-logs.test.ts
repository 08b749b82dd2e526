/**
 * GET /internal/logs: the proxy's own recent log lines in local ComfyUI's shape (one JSON string of
 * `time - message` records; /internal/logs/raw: {entries: [{t, m}], size}), bounded, scrubbed of the
 * key and the token like every log line, and behind PROXY_AUTH_TOKEN when it is set (issue 17).
 */
import t from 'tap'
import { getJson, postJson, startStack } from '../helpers.js'
import { LOG_RING_CAPACITY } from '../../src/log-ring.js'

t.test('/internal/logs is one JSON string of `time - message` lines; /internal/logs/raw has the records', async t => {
  const stack = await startStack(t, { logLevel: 'info' })
  await getJson(`${stack.url}/queue`)
  const logs = await getJson(`${stack.url}/internal/logs`)
  t.equal(logs.status, 200)
  t.match(logs.headers.get('content-type'), /^application\/json/)
  t.type(logs.body, 'string')
  const lines = (logs.body as string).split('\n').filter(Boolean)
  t.ok(lines.length > 0)
  for (const line of lines) t.match(line, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z - \[(INFO|WARNING|ERROR|DEBUG|TRACE|CRITICAL)\] /)
  t.ok(lines.some(line => line.includes('"url":"/queue"')), 'the request just made is there')

  const raw = await getJson(`${stack.url}/internal/logs/raw`)
  t.equal(raw.status, 200)
  t.same(Object.keys(raw.body), ['entries', 'size'])
  t.match(raw.body.size, { cols: Number, rows: Number })
  for (const entry of raw.body.entries) {
    t.same(Object.keys(entry), ['t', 'm'])
    t.ok(entry.m.endsWith('\n'), 'a message ends with its newline, as local\'s do')
  }
})

t.test('a wrong method is local\'s 405, not a call to the cloud', async t => {
  const stack = await startStack(t)
  const sim = stack.simulator.app.simulator
  sim.requests.length = 0
  const answer = await getJson(`${stack.url}/internal/logs`, { method: 'POST', body: '{}' })
  t.equal(answer.status, 405)
  t.same(sim.requests, [])
})

t.test('only without /api, like local\'s /internal routes', async t => {
  const stack = await startStack(t)
  const prefixed = await getJson(`${stack.url}/api/internal/logs`)
  t.equal(prefixed.status, 404, 'not the log buffer: passed through, and the cloud has no such route')
})

t.test('the buffer is bounded: the oldest lines go', async t => {
  const stack = await startStack(t, { logLevel: 'info' })
  // Each request writes two lines (incoming request, request completed).
  for (let i = 0; i < LOG_RING_CAPACITY; i++) await getJson(`${stack.url}/healthz?n=${i}`)
  const raw = await getJson(`${stack.url}/internal/logs/raw`)
  t.equal(raw.body.entries.length, LOG_RING_CAPACITY)
  const messages = (raw.body.entries as Array<{ m: string }>).map(entry => entry.m).join('')
  t.notOk(messages.includes('"/healthz?n=0"'), 'the first request has gone')
  t.ok(messages.includes(`"/healthz?n=${LOG_RING_CAPACITY - 1}"`), 'the last is kept')
})

t.test('the key and the token never appear in /internal/logs, at any level', async t => {
  const token = 'proxy-token-for-the-logs-test'
  const stack = await startStack(t, { logLevel: 'trace', proxyAuthToken: token })
  const auth = { authorization: `Bearer ${token}` }
  // Lines that would carry the secrets if nothing scrubbed them: the token in a query, the key in a WebSocket upstream URL.
  await getJson(`${stack.url}/queue?token=${token}`)
  await postJson(`${stack.url}/prompt`, { prompt: {} }, auth)
  await getJson(`${stack.url}/history/${stack.key}`, { headers: auth })
  const logs = await getJson(`${stack.url}/internal/logs`, { headers: auth })
  t.equal(logs.status, 200)
  const raw = await getJson(`${stack.url}/internal/logs/raw?token=${token}`)
  t.equal(raw.status, 200)
  for (const text of [logs.text, raw.text]) {
    t.notOk(text.includes(stack.key), 'no key')
    t.notOk(text.includes(token), 'no token')
  }
  t.ok(logs.text.includes('[REDACTED]'), 'the key reached a log line and was scrubbed')
})

t.test('behind PROXY_AUTH_TOKEN when it is set', async t => {
  const stack = await startStack(t, { proxyAuthToken: 'tok-logs' })
  for (const path of ['/internal/logs', '/internal/logs/raw']) {
    const refused = await getJson(`${stack.url}${path}`)
    t.equal(refused.status, 401, path)
    t.equal(refused.body.error.type, 'unauthorized')
    t.equal((await getJson(`${stack.url}${path}`, { headers: { authorization: 'Bearer tok-logs' } })).status, 200)
  }
})
