/** Bugs the reliability suite found, one regression test each, named after what broke. */
import t from 'tap'
import { connect } from 'node:net'
import { Agent, request } from 'undici'
import WebSocket from 'ws'
import { defaultGraph, getJson, getRawPath, postJson, startStack, waitFor } from '../helpers.js'

function isEnvelope (body: any): boolean {
  return typeof body?.error?.type === 'string' && typeof body.error.message === 'string' && 'details' in body.error && 'extra_info' in body.error
}

async function rawExchange (port: number, bytes: string): Promise<string> {
  return await new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => { socket.write(bytes) })
    let answer = ''
    socket.on('data', (chunk) => { answer += chunk.toString() })
    socket.on('end', () => { resolve(answer) })
    socket.on('error', reject)
    socket.setTimeout(3000, () => { socket.destroy(); resolve(answer) })
  })
}

t.test('regression: a deeply nested POST /prompt body crashed with a 500 (stack overflow)', async t => {
  const stack = await startStack(t)
  const nested = `{"prompt":{"9":{"class_type":"SaveImage","inputs":{"images":${'['.repeat(8000)}${']'.repeat(8000)}}}}}`
  const { status, body } = await postJson(`${stack.url}/prompt`, nested)
  t.equal(status, 400)
  t.same(Object.keys(body), ['error', 'node_errors'])
})

t.test('regression: a cloud 5xx on a passed-through route reached the client as it was', async t => {
  const stack = await startStack(t, { cloudRetries: 0 })
  for (const [cloudStatus, status] of [[500, 502], [503, 503]]) {
    stack.simulator.app.simulator.faults.set('GET /api/history_v2', { status: cloudStatus, times: 1 })
    const answer = await getJson(`${stack.url}/history_v2`)
    t.equal(answer.status, status)
    t.ok(isEnvelope(answer.body), JSON.stringify(answer.body))
  }
  t.equal((await getJson(`${stack.url}/history_v2`)).status, 200, 'a 4xx/2xx still passes as it is')
})

t.test('regression: frames sent before the cloud socket opened were buffered without limit', async t => {
  const stack = await startStack(t)
  stack.simulator.app.simulator.faults.set('GET /ws', { latencyMs: 2000 })
  const socket = new WebSocket(`${stack.url.replace('http', 'ws')}/ws?clientId=big`)
  await new Promise(resolve => socket.once('open', resolve))
  const closed = new Promise<number>(resolve => socket.once('close', (code: number) => { resolve(code) }))
  for (let i = 0; i < 3; i++) socket.send(Buffer.alloc(512 * 1024))
  t.equal(await closed, 1009, 'closed as "message too big" past 1 MiB')
})

t.test('regression: close() hung for the keep-alive timeout after an in-flight request', async t => {
  const stack = await startStack(t)
  stack.simulator.app.simulator.faults.set('GET /api/jobs', { latencyMs: 300 })
  const agent = new Agent({ keepAliveTimeout: 60_000 })
  t.teardown(async () => { await agent.close() })
  const inFlight = request(`${stack.url}/prompt`, { dispatcher: agent })
  // In flight means the cloud has it: on a loaded machine a fixed pause may end before the proxy has even read the request.
  await waitFor(async () => stack.simulator.app.simulator.requests.some(r => r.url.startsWith('/api/jobs')) ? true : undefined, 5_000, 'the request to reach the cloud')
  const started = Date.now()
  const closing = stack.app.close()
  const answer = await inFlight
  t.equal(answer.statusCode, 200)
  t.equal(answer.headers.connection, 'close', 'the answer ends its keep-alive connection')
  await answer.body.text()
  await closing
  t.ok(Date.now() - started < 3000, `closed in ${Date.now() - started} ms`)
})

t.test('regression: ids over 100 characters skipped /history/{id} and went to the cloud as they were', async t => {
  const stack = await startStack(t)
  for (const length of [101, 1000, 8000]) {
    const { status, text } = await getRawPath(stack.url, `/history/${'a'.repeat(length)}`)
    t.equal(status, 200, `${length} characters`)
    t.equal(text, '{}')
  }
  t.same((await getJson(`${stack.url}/object_info/${'b'.repeat(300)}`)).body, {})
})

t.test('regression: undecodable paths got Fastify\'s own error body', async t => {
  const stack = await startStack(t)
  for (const path of ['/history/%', '/history/%E0%A4%A', '/api/jobs/%ED%A0%80']) {
    const { status, text } = await getRawPath(stack.url, path)
    t.equal(status, 400, path)
    t.ok(isEnvelope(JSON.parse(text)), text)
  }
})

t.test('regression: requests Node\'s HTTP parser refuses got a non-JSON answer', async t => {
  const stack = await startStack(t)
  const port = Number(new URL(stack.url).port)
  const answer = await rawExchange(port, 'GARBAGE / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
  t.match(answer, /^HTTP\/1\.1 400 /)
  t.match(answer, /content-type: application\/json/i)
  t.ok(isEnvelope(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4))))
  const noHost = await rawExchange(port, 'GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n')
  t.match(noHost, /^HTTP\/1\.1 200 /, 'HTTP/1.1 without Host is served, as local ComfyUI does')
})

t.test('regression: a Content-Type Fastify cannot parse got a 415 on a JSON route', async t => {
  const stack = await startStack(t)
  for (const type of ['', 'a/b/c;;;', 'application/json, text/plain']) {
    const { status } = await postJson(`${stack.url}/prompt`, { prompt: defaultGraph() }, { 'content-type': type })
    t.equal(status, 200, JSON.stringify(type))
  }
})

t.test('regression: /ws without an upgrade, or a bad handshake, got an empty or text/html answer', async t => {
  const stack = await startStack(t)
  const plain = await getJson(`${stack.url}/ws`)
  t.equal(plain.status, 400)
  t.ok(isEnvelope(plain.body))
  const port = Number(new URL(stack.url).port)
  const badKey = await rawExchange(port, 'GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n')
  t.match(badKey, /^HTTP\/1\.1 400 /)
  t.ok(isEnvelope(JSON.parse(badKey.slice(badKey.indexOf('\r\n\r\n') + 4))))
  const h2c = await rawExchange(port, 'GET /history HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n')
  t.match(h2c, /^HTTP\/1\.1 400 /)
  t.match(h2c, /application\/json/i)
})

t.test('regression: a request refused before its cloud call kept a half-open circuit shut for good', async t => {
  const stack = await startStack(t, { cloudRetries: 0, breakerThreshold: 1, breakerCooldownMs: 150 })
  stack.simulator.app.simulator.faults.set('GET /api/jobs', { status: 503, times: 1 })
  t.equal((await getJson(`${stack.url}/prompt`)).status, 503, 'the circuit opens')
  await new Promise(resolve => setTimeout(resolve, 200))
  const nested = `{"prompt":{"1":${'['.repeat(200_000)}${']'.repeat(200_000)}}}`
  t.equal((await postJson(`${stack.url}/prompt`, nested)).status, 400, 'refused locally while half-open')
  t.equal((await getJson(`${stack.url}/prompt`)).status, 200, 'the next call is the trial, and it closes the circuit')
})

t.test('regression: polling an unknown /history/{id} threw away every shared answer', async t => {
  const stack = await startStack(t, { listTtlMs: 60_000 })
  const sim = stack.simulator.app.simulator
  for (let i = 0; i < 5; i++) {
    await getJson(`${stack.url}/history`)
    await getJson(`${stack.url}/queue`)
    await getJson(`${stack.url}/history/00000000-0000-4000-8000-00000000000${i}`)
  }
  t.equal(sim.requests.filter(r => r.url.startsWith('/api/jobs?')).length, 1, 'one list call')
  t.equal(sim.requests.filter(r => r.url === '/api/queue').length, 1, 'one queue call')
})

t.test('regression: {"delete": "abc"} on POST /history was a 400 where local answers 200', async t => {
  const stack = await startStack(t)
  const response = await fetch(`${stack.url}/history`, { method: 'POST', body: '{"delete": "abc"}' })
  t.equal(response.status, 200)
  t.equal(await response.text(), '')
})

t.test('regression: POST /queue with a huge delete list made two sequential cloud calls per id without bound', async t => {
  const stack = await startStack(t)
  const tooMany = Array.from({ length: 1001 }, (_, i) => `id-${i}`)
  const refused = await postJson(`${stack.url}/queue`, { delete: tooMany })
  t.equal(refused.status, 400)
  t.equal(stack.simulator.app.simulator.requests.length, 0, 'nothing reached the cloud')
  const sim = stack.simulator.app.simulator
  const pending = Array.from({ length: 3 }, () => sim.seedJob(stack.key, { status: 'pending' }).id)
  const response = await fetch(`${stack.url}/queue`, { method: 'POST', body: JSON.stringify({ delete: pending }) })
  t.equal(response.status, 200)
  t.same(sim.jobs(stack.key).filter(job => pending.includes(job.id)).map(job => job.status), ['cancelled', 'cancelled', 'cancelled'])
})
