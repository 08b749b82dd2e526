/**
 * Issue 14: attacks that tried to exhaust the proxy (connections, time, memory); each test is named after
 * the attack and failed before the fix. Sockets and time are bounded.
 */
import t from 'tap'
import { connect, type Socket } from 'node:net'
import { getJson, postJson, defaultGraph, startProxy, startStack } from '../helpers.js'
import { startHostileCloud } from '../fixtures/hostile.js'

/** Sockets that announce a 1 MB upload and send 4 bytes of it; resolves each with what the proxy answered (if anything) when it closed. */
function stalledUploads (url: string, count: number): { sockets: Socket[], answers: Array<Promise<string>> } {
  const { port } = new URL(url)
  const sockets: Socket[] = []
  const answers = Array.from({ length: count }, async () => await new Promise<string>(resolve => {
    const socket = connect(Number(port), '127.0.0.1', () => {
      socket.write('POST /upload/image HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=x\r\nContent-Length: 1000000\r\n\r\n--x\r\n')
    })
    sockets.push(socket)
    let text = ''
    socket.on('data', chunk => { text += chunk.toString() })
    socket.on('close', () => { resolve(text) })
    socket.on('error', () => {})
  }))
  return { sockets, answers }
}

t.test('slow uploads hang everything: stalled uploads hold only the streaming pool, and a stalled body gets 408', async t => {
  const stack = await startStack(t, { cloudConnections: 4, cloudStreamConnections: 4, bodyTimeoutMs: 1500, cloudTimeoutMs: 5000 })
  const { sockets, answers } = stalledUploads(stack.url, 12)
  t.teardown(() => { for (const socket of sockets) socket.destroy() })
  await new Promise(resolve => setTimeout(resolve, 300))
  const started = performance.now()
  const prompt = await getJson(`${stack.url}/prompt`, { signal: AbortSignal.timeout(4000) })
  t.equal(prompt.status, 200, `GET /prompt answers while 12 uploads stall (${Math.round(performance.now() - started)} ms)`)
  const read = await getJson(`${stack.url}/history/00000000-0000-4000-8000-000000000801`, { signal: AbortSignal.timeout(4000) })
  t.equal(read.status, 200, 'and so does a read that makes a cloud call (/history/{id} of an unknown id)')
  const closed = await Promise.race([Promise.all(answers), new Promise<undefined>(resolve => setTimeout(() => { resolve(undefined) }, 10_000))])
  t.ok(closed !== undefined, 'every stalled upload was closed within BODY_TIMEOUT_MS (plus a wait for a streaming connection)')
  const timedOut = (closed ?? []).filter(text => text.startsWith('HTTP/1.1 408 '))
  t.ok(timedOut.length >= 1, `stalled bodies are answered 408 (${timedOut.length} of 12; the others got a 504 waiting for a connection, or were closed)`)
  for (const text of closed ?? []) t.match(text, /^(HTTP\/1\.1 (408|504) |$)/, 'a 408, a 504 or a plain close')
  t.equal((await getJson(`${stack.url}/history_v2`, { signal: AbortSignal.timeout(4000) })).status, 200, 'the streaming pool is free again')
})

t.test('a cloud call waiting for a pool connection ignored CLOUD_TIMEOUT_MS', async t => {
  const stack = await startStack(t, { cloudConnections: 1, cloudTimeoutMs: 600, cloudRetries: 0, listTtlMs: 0 })
  // Six different unknown ids: each costs its own cloud call (GET /prompt no longer makes one: the tracker answers it).
  stack.simulator.app.simulator.faults.set('GET /api/jobs/:job_id', { latencyMs: 500 })
  const started = performance.now()
  const answers = await Promise.all(Array.from({ length: 6 }, async (_, i) => {
    const answer = await getJson(`${stack.url}/history/00000000-0000-4000-8000-00000000070${i}`)
    return { status: answer.status, type: answer.body?.error?.type as string | undefined, ms: performance.now() - started }
  }))
  t.ok(answers.some(answer => answer.status === 200), 'the first call is answered')
  const timedOut = answers.filter(answer => answer.status !== 200)
  t.ok(timedOut.length >= 1, `calls that waited for the one connection timed out (${timedOut.length} of 6)`)
  for (const answer of timedOut) t.same([answer.status, answer.type], [504, 'cloud_timeout'], 'the others time out')
  const slowest = Math.max(...answers.map(answer => answer.ms))
  // Queued behind one another, the sixth call answered after about 6 × 500 ms; bounded, every call ends near 600 ms.
  t.ok(slowest < 2200, `every call ended within CLOUD_TIMEOUT_MS plus a margin (slowest ${Math.round(slowest)} ms)`)
})

t.test('a cloud call that waited for the budget then waited a whole CLOUD_TIMEOUT_MS more for a connection', async t => {
  // Budget: 2 calls a second (500 ms a token); one connection; CLOUD_TIMEOUT_MS 1500.
  const stack = await startStack(t, { cloudConnections: 1, cloudMaxRps: 2, cloudTimeoutMs: 1500, cloudRetries: 0, listTtlMs: 0 })
  const sim = stack.simulator.app.simulator
  sim.faults.set('POST /api/prompt', { latencyMs: 2500 })
  const id = (i: number): string => `00000000-0000-4000-8000-00000000090${i}`
  // Two quick reads spend the budget's two tokens.
  await Promise.all([getJson(`${stack.url}/history/${id(0)}`), getJson(`${stack.url}/history/${id(1)}`)])
  // The read waits for the next token; a submit, which goes first, takes that one (at 0.5 s) and holds the
  // connection until its own timeout (2 s); the read gets its token at 1 s. Its 1.5 s ran out at 1.5 s: it
  // must not wait on for the connection until 2.5 s, and get it.
  const read = getJson(`${stack.url}/history/${id(2)}`)
  await new Promise(resolve => setTimeout(resolve, 30))
  const submit = postJson(`${stack.url}/prompt`, { prompt: defaultGraph(1) })
  const answer = await read
  t.same([answer.status, answer.body?.error?.type], [504, 'cloud_timeout'], `the read gave up within CLOUD_TIMEOUT_MS of its start (${answer.body?.error?.message as string})`)
  t.equal((await submit).status, 504, 'the submit that held the connection timed out itself')
})

t.test('unbounded cloud bodies: a JSON answer past CLOUD_MAX_JSON_BYTES is a 502 and is not read to its end', async t => {
  const cloud = await startHostileCloud(t)
  let sent = 0
  cloud.handle = (req, res) => {
    const declared = (req.url ?? '').includes('declared')
    res.writeHead(200, { 'content-type': 'application/json', ...(declared ? { 'content-length': String(300 * 1024 * 1024) } : {}) })
    const chunk = Buffer.alloc(64 * 1024, 0x20)
    res.write('{"exec_info":{"queue_remaining":0},"pad":"')
    const pump = (): void => {
      while (sent < 300 * 1024 * 1024 && !res.destroyed) {
        sent += chunk.length
        if (!res.write(chunk)) { res.once('drain', pump); return }
      }
      if (!res.destroyed) res.end('"}')
    }
    res.on('close', () => { res.destroy() })
    pump()
    return true
  }
  const proxy = await startProxy(t, { cloudUrl: cloud.url, apiKey: 'comfyui-big-key', cloudMaxJsonBytes: 1024 * 1024, cloudRetries: 0 })
  const answer = await getJson(`${proxy.url}/prompt`)
  t.equal(answer.status, 502)
  t.equal(answer.body.error.type, 'cloud_response_too_large')
  t.ok(sent < 64 * 1024 * 1024, `the proxy stopped reading early (the cloud wrote ${Math.round(sent / 1024 / 1024)} MiB of 300)`)
  sent = 0
  const declared = await getJson(`${proxy.url}/history/declared`)
  t.equal(declared.status, 502, 'a Content-Length past the cap is refused at once')
  t.equal(declared.body.error.type, 'cloud_response_too_large')
})

t.test('/healthz stayed green while the event loop or a pool was wedged', async t => {
  const stack = await startStack(t, { healthMaxEventLoopDelayMs: 200, cloudStreamConnections: 1, cloudTimeoutMs: 500, bodyTimeoutMs: 20_000 })
  t.equal((await getJson(`${stack.url}/healthz`)).status, 200, 'healthy at first')
  await new Promise(resolve => setTimeout(resolve, 600))
  const until = performance.now() + 700
  while (performance.now() < until) { /* the event loop is blocked */ }
  await new Promise(resolve => setTimeout(resolve, 400))
  const blocked = await getJson(`${stack.url}/healthz`)
  t.equal(blocked.status, 503, 'a blocked event loop fails /healthz')
  t.equal(blocked.body.status, 'wedged')
  t.ok(blocked.body.error.extra_info.event_loop_delay_ms >= 200)

  const pools = await startStack(t, { cloudStreamConnections: 1, cloudTimeoutMs: 500, bodyTimeoutMs: 20_000 })
  const { sockets } = stalledUploads(pools.url, 1)
  t.teardown(() => { for (const socket of sockets) socket.destroy() })
  await new Promise(resolve => setTimeout(resolve, 200))
  const waited = await getJson(`${pools.url}/history_v2`)
  t.same([waited.status, waited.body.error.type], [504, 'cloud_timeout'], 'a pass-through request waits for a connection at most CLOUD_TIMEOUT_MS')
  const wedged = await getJson(`${pools.url}/healthz`)
  t.equal(wedged.status, 503, 'a pool where nothing came free for CLOUD_TIMEOUT_MS fails /healthz')
  t.match(wedged.body.error.message, /streaming pool/)
  t.equal((await getJson(`${pools.url}/prompt`)).status, 200, 'while the translated routes still answer')
})

t.test('unbounded retained memory: 25 submits with 4 MiB extra_data keep a bounded amount', async t => {
  const stack = await startStack(t, { bodyLimit: 8 * 1024 * 1024 })
  const pad = 'x'.repeat(4 * 1024 * 1024)
  for (let i = 0; i < 25; i++) {
    const answer = await postJson(`${stack.url}/prompt`, { prompt: defaultGraph(i), client_id: `c${i}`, extra_data: { pad } })
    t.equal(answer.status, 200)
  }
  const small = await postJson(`${stack.url}/prompt`, { prompt: defaultGraph(99), client_id: 'small', extra_data: { note: 'kept' } })
  t.ok(stack.app.submissions.bytes < 1024 * 1024, `submissions hold ${stack.app.submissions.bytes} bytes, not 100 MiB`)
  t.same(stack.app.submissions.get(small.body.prompt_id), { clientId: 'small', extraData: { note: 'kept', client_id: 'small' } }, 'a small extra_data is still kept for /queue')
  t.equal(stack.app.submissions.get(small.body.prompt_id)?.clientId, 'small')
})
