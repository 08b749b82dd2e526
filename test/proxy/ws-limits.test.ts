/** Issue 14 rule 4: /ws backpressure both ways, the client frame cap and the socket caps. Sockets and time are bounded. */
import t from 'tap'
import WebSocket from 'ws'
import { startProxy, startStack, waitFor } from '../helpers.js'
import { startHostileCloud } from '../fixtures/hostile.js'

const MiB = 1024 * 1024

async function opened (url: string, options: WebSocket.ClientOptions = {}): Promise<WebSocket> {
  const socket = new WebSocket(url, options)
  await new Promise<void>((resolve, reject) => {
    socket.once('message', () => { resolve() })
    socket.once('error', reject)
    socket.once('unexpected-response', (_req, res) => { reject(new Error(`refused ${res.statusCode ?? 0}`)) })
  })
  return socket
}

async function refusal (url: string, options: WebSocket.ClientOptions = {}): Promise<number> {
  return await new Promise((resolve, reject) => {
    const socket = new WebSocket(url, options)
    socket.on('unexpected-response', (_req, res) => { resolve(res.statusCode ?? 0); res.resume() })
    socket.on('open', () => { socket.terminate(); reject(new Error('opened')) })
    socket.on('error', () => {})
  })
}

function greet (socket: WebSocket): void {
  socket.send(JSON.stringify({ type: 'status', data: { status: { exec_info: { queue_remaining: 0 } }, sid: 'x' } }))
}

t.test('/ws backpressure: with a cloud that stops reading, a client sending big frames is paused instead of filling the proxy\'s memory', async t => {
  const cloud = await startHostileCloud(t)
  cloud.onSocket = socket => { greet(socket); socket.pause() }
  const proxy = await startProxy(t, { cloudUrl: cloud.url, apiKey: 'comfyui-ws-key', cloudTimeoutMs: 3000 })
  const client = await opened(`${proxy.url.replace('http', 'ws')}/ws?clientId=writer`)
  t.teardown(() => { client.terminate() })
  const closed = new Promise<number>(resolve => client.once('close', code => { resolve(code) }))
  const frame = Buffer.alloc(3 * MiB, 7)
  for (let i = 0; i < 22; i++) client.send(frame)
  await new Promise(resolve => setTimeout(resolve, 1500))
  const taken = 22 * frame.length - client.bufferedAmount
  t.ok(taken < 36 * MiB, `the proxy took ${Math.round(taken / MiB)} MiB of 66 MiB and left the rest with the client`)
  t.equal(client.readyState, WebSocket.OPEN, 'the client is paused, not dropped')
  t.equal(await closed, 1013, 'and closed with 1013 once the cloud has not read for CLOUD_TIMEOUT_MS')
})

t.test('/ws backpressure: a client that never reads does not make the proxy hold what the cloud sends', async t => {
  const cloud = await startHostileCloud(t)
  let cloudSocket: WebSocket | undefined
  cloud.onSocket = socket => {
    cloudSocket = socket
    greet(socket)
  }
  const proxy = await startProxy(t, { cloudUrl: cloud.url, apiKey: 'comfyui-ws-key' })
  const client = await opened(`${proxy.url.replace('http', 'ws')}/ws?clientId=sleeper`)
  t.teardown(() => { client.terminate() })
  client.pause()
  const frame = Buffer.alloc(MiB, 3)
  const upstream = await waitFor(async () => cloudSocket)
  for (let i = 0; i < 64; i++) upstream.send(frame)
  await new Promise(resolve => setTimeout(resolve, 1500))
  const relayed = 64 * frame.length - upstream.bufferedAmount
  t.ok(relayed < 36 * MiB, `the proxy took ${Math.round(relayed / MiB)} MiB of 64 MiB from the cloud while its client read nothing`)
})

t.test('/ws frame cap: a client frame over local ComfyUI\'s 4 MiB is refused with 1009', async t => {
  const cloud = await startHostileCloud(t)
  const received: number[] = []
  cloud.onSocket = socket => {
    greet(socket)
    socket.on('message', (data: Buffer) => { received.push(data.length) })
  }
  const proxy = await startProxy(t, { cloudUrl: cloud.url, apiKey: 'comfyui-ws-key' })
  const client = await opened(`${proxy.url.replace('http', 'ws')}/ws?clientId=big`)
  client.send(Buffer.alloc(4 * MiB - 64))
  await waitFor(async () => received.length === 1 ? true : undefined, 5000, 'a 4 MiB frame relayed')
  const closed = new Promise<number>(resolve => client.once('close', code => { resolve(code) }))
  client.send(Buffer.alloc(4 * MiB + 1))
  t.equal(await closed, 1009)
  t.same(received, [4 * MiB - 64], 'only the frame within the cap reached the cloud')
})

t.test('/ws socket caps: per client address (WS_MAX_CONNECTIONS_PER_ADDRESS) and in total (WS_MAX_CONNECTIONS)', async t => {
  const stack = await startStack(t, { wsMaxConnectionsPerAddress: 3, wsMaxConnections: 5 })
  const url = `${stack.url.replace('http', 'ws')}/ws`
  const sockets: WebSocket[] = []
  t.teardown(() => { for (const socket of sockets) socket.terminate() })
  for (let i = 0; i < 3; i++) sockets.push(await opened(`${url}?clientId=a${i}`))
  t.equal(await refusal(`${url}?clientId=a3`), 429, 'a fourth socket from one address is refused')
  for (let i = 0; i < 2; i++) sockets.push(await opened(`${url}?clientId=b${i}`, { localAddress: '127.0.0.2' }))
  t.equal(await refusal(`${url}?clientId=b2`, { localAddress: '127.0.0.2' }), 503, 'a sixth socket in all is refused')
  const closing = sockets.shift()!
  closing.close()
  await waitFor(async () => closing.readyState === WebSocket.CLOSED ? true : undefined)
  await new Promise(resolve => setTimeout(resolve, 100))
  sockets.push(await opened(`${url}?clientId=a4`))
  t.pass('a closed socket frees its place')
  t.equal(stack.simulator.app.simulator.requests.filter(r => r.url.startsWith('/ws')).length, 6, 'refused sockets never reached the cloud')
})

t.test('/ws handshakes spend the cloud budget: a reconnect loop is refused with 503 and Retry-After, not passed on to the cloud', async t => {
  const stack = await startStack(t, { cloudMaxRps: 1, cloudTimeoutMs: 300 })
  const url = `${stack.url.replace('http', 'ws')}/ws`
  const sockets: WebSocket[] = []
  t.teardown(() => { for (const socket of sockets) socket.terminate() })
  sockets.push(await opened(`${url}?clientId=first`))
  const refused = await new Promise<{ status: number, retryAfter: string | undefined, body: any }>((resolve, reject) => {
    const socket = new WebSocket(`${url}?clientId=again`)
    socket.on('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] as string | undefined, body: JSON.parse(Buffer.concat(chunks).toString()) }) })
    })
    socket.on('open', () => { socket.terminate(); reject(new Error('opened')) })
    socket.on('error', () => {})
  })
  t.equal(refused.status, 503, 'a second handshake within the same second finds no budget left')
  t.equal(refused.body.error.type, 'cloud_budget_exhausted')
  t.ok(Number(refused.retryAfter) >= 1, `Retry-After ${refused.retryAfter ?? 'missing'}`)
  t.equal(stack.simulator.app.simulator.requests.filter(r => r.url.startsWith('/ws')).length, 1, 'only the first reached the cloud')
  await new Promise(resolve => setTimeout(resolve, 1100))
  sockets.push(await opened(`${url}?clientId=later`))
  t.pass('once the budget has refilled, a socket opens again')
})
