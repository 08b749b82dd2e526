import t from 'tap'
import { createServer } from 'node:net'
import { defaultGraph, getJson, postJson, startProxy, startStack } from '../helpers.js'

function noStackTrace (t: { notMatch: (a: string, b: RegExp, m: string) => unknown }, text: string): void {
  t.notMatch(text, /\n\s+at /, 'no stack trace')
  t.notMatch(text, /node_modules|\.ts:\d+/, 'no source paths')
}

t.test('a cloud that does not answer in time gives 504 JSON', async t => {
  const stack = await startStack(t, { cloudTimeoutMs: 150, cloudRetries: 0 })
  stack.simulator.app.simulator.faults.set('GET /api/jobs', { latencyMs: 1000 })
  const { status, body, text } = await getJson(`${stack.url}/prompt`)
  t.equal(status, 504)
  t.equal(body.error.type, 'cloud_timeout')
  noStackTrace(t, text)
  stack.simulator.app.simulator.faults.clear()
  t.equal((await getJson(`${stack.url}/prompt`)).status, 200, 'still serving')
})

t.test('a refused connection gives 503 JSON', async t => {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  await new Promise(resolve => server.close(resolve))
  const proxy = await startProxy(t, { cloudUrl: `http://127.0.0.1:${port}`, apiKey: 'comfyui-x', cloudRetries: 0 })
  for (const path of ['/history', '/history/abc', '/prompt']) {
    const { status, body, text } = await getJson(`${proxy.url}${path}`)
    t.equal(status, 503, path)
    t.equal(body.error.type, 'cloud_unreachable')
    noStackTrace(t, text)
  }
  const submit = await postJson(`${proxy.url}/prompt`, { prompt: defaultGraph() })
  t.equal(submit.status, 503)
  t.same(Object.keys(submit.body), ['error', 'node_errors'])
})

t.test('cloud 5xx, resets and malformed JSON give 502/503 JSON and the process keeps serving', async t => {
  const stack = await startStack(t, { cloudRetries: 0 })
  const sim = stack.simulator.app.simulator
  const cases: Array<[Record<string, unknown>, number, string]> = [
    [{ status: 500 }, 502, 'cloud_error'],
    [{ status: 503 }, 503, 'cloud_unavailable'],
    [{ status: 429, retryAfter: 3 }, 503, 'cloud_rate_limited'],
    [{ reset: true }, 502, 'cloud_connection_failed'],
    [{ malformed: true }, 502, 'cloud_bad_response']
  ]
  for (const [fault, status, type] of cases) {
    sim.faults.set('GET /api/jobs', fault)
    const answer = await getJson(`${stack.url}/history?max_items=3`)
    t.equal(answer.status, status, JSON.stringify(fault))
    t.equal(answer.body.error.type, type)
    noStackTrace(t, answer.text)
    sim.faults.clear()
  }
  t.equal((await getJson(`${stack.url}/history`)).status, 200)
})

t.test('idempotent reads are retried on transient failures; the client sees the success', async t => {
  const stack = await startStack(t, { cloudRetries: 2 })
  const sim = stack.simulator.app.simulator
  sim.faults.set('GET /api/jobs', { status: 503, times: 2 })
  const { status, body } = await getJson(`${stack.url}/prompt`)
  t.equal(status, 200)
  t.same(body, { exec_info: { queue_remaining: 0 } })
  t.equal(sim.requests.filter(r => r.url.startsWith('/api/jobs?')).length, 3)
})
