/** The guard (src/guard.ts): the Origin guard of local ComfyUI (observed finding 30) and the Host check against DNS rebinding. */
import t from 'tap'
import WebSocket from 'ws'
import { defaultGraph, startStack } from '../helpers.js'
import { rawRequest } from '../fixtures/hostile.js'
import { isLoopbackHost, parseHost, sameOrigin } from '../../src/guard.js'

const prompt = JSON.stringify({ prompt: defaultGraph() })

t.test('DNS rebinding: a loopback listener refuses a Host that is not a loopback name', async t => {
  const stack = await startStack(t, { allowedHosts: 'comfy.lan' })
  const sim = stack.simulator.app.simulator
  const port = new URL(stack.url).port
  for (const host of [`rebind.attacker.example:${port}`, 'rebind.attacker.example', `127.0.0.1.nip.io:${port}`, 'a b']) {
    sim.requests.length = 0
    const answer = await rawRequest(stack.url, { method: 'POST', path: '/prompt', headers: { host, 'content-type': 'application/json' }, body: prompt })
    t.equal(answer.status, 403, `Host ${JSON.stringify(host)} is refused`)
    t.equal(JSON.parse(answer.text).error.type, 'forbidden_host')
    t.equal(sim.requests.length, 0, 'nothing reached the cloud')
  }
  for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `LOCALHOST.:${port}`, `app.localhost:${port}`, `[::1]:${port}`, '127.1.2.3', `comfy.lan:${port}`, 'COMFY.LAN']) {
    const answer = await rawRequest(stack.url, { path: '/prompt', headers: { host } })
    t.equal(answer.status, 200, `Host ${host} is served`)
  }
})

t.test('a cross-origin page cannot POST /prompt: 403 with an empty body, as local ComfyUI answers', async t => {
  const stack = await startStack(t)
  const sim = stack.simulator.app.simulator
  const port = new URL(stack.url).port
  for (const [origin, host] of [
    ['https://attacker.example', `127.0.0.1:${port}`],
    ['http://localhost:3000', `localhost:${port}`],
    ['http://127.0.0.1:1', `127.0.0.1:${port}`],
    ['null', `127.0.0.1:${port}`]
  ]) {
    sim.requests.length = 0
    const answer = await rawRequest(stack.url, { method: 'POST', path: '/prompt', headers: { host, origin, 'content-type': 'text/plain' }, body: prompt })
    t.equal(answer.status, 403, `${origin} → ${host}`)
    t.equal(answer.text, '', 'empty body')
    t.equal(answer.headers['content-length'], '0')
    t.equal(sim.requests.length, 0, 'no credits spent: nothing reached the cloud')
  }
  const passThrough = await rawRequest(stack.url, { path: '/system_stats', headers: { origin: 'https://attacker.example' } })
  t.equal(passThrough.status, 403, 'pass-through routes too')
  // Same origin (the frontend served by the proxy), an Origin without a port (ports compared only when both have one), no Origin.
  for (const origin of [`http://127.0.0.1:${port}`, 'http://127.0.0.1', undefined]) {
    const answer = await rawRequest(stack.url, { method: 'POST', path: '/prompt', headers: { 'content-type': 'application/json', ...(origin === undefined ? {} : { origin }) }, body: prompt })
    t.equal(answer.status, 200, `Origin ${origin ?? '(none)'} is served`)
  }
  const options = await rawRequest(stack.url, { method: 'OPTIONS', path: '/prompt', headers: { origin: `http://127.0.0.1:${port}` } })
  t.equal(options.status, 200, 'OPTIONS: 200')
  t.equal(options.text, '', 'with an empty body')
  const crossOptions = await rawRequest(stack.url, { method: 'OPTIONS', path: '/prompt', headers: { origin: 'https://attacker.example', 'access-control-request-method': 'POST' } })
  t.equal(crossOptions.status, 403, 'a cross-origin preflight is refused too')
})

t.test('a cross-origin page cannot open /ws (cross-site WebSocket hijacking)', async t => {
  const stack = await startStack(t)
  const status = await new Promise<number>((resolve, reject) => {
    const socket = new WebSocket(`${stack.url.replace('http', 'ws')}/ws?clientId=x`, { origin: 'https://attacker.example' })
    socket.on('unexpected-response', (_req, res) => { resolve(res.statusCode ?? 0); res.resume() })
    socket.on('open', () => { socket.close(); reject(new Error('opened')) })
    socket.on('error', () => {})
  })
  t.equal(status, 403)
  const upgrades = stack.simulator.app.simulator.requests.filter(r => r.url.startsWith('/ws'))
  t.equal(upgrades.length, 0, 'no socket was opened to the cloud')
})

t.test('CORS_ORIGIN entries are exceptions to the Origin guard; * never reflects the opaque origin null', async t => {
  const listed = await startStack(t, { corsOrigin: 'http://app.example' })
  const allowed = await rawRequest(listed.url, { path: '/prompt', headers: { origin: 'http://app.example' } })
  t.equal(allowed.status, 200)
  t.equal(allowed.headers['access-control-allow-origin'], 'http://app.example')
  t.equal((await rawRequest(listed.url, { path: '/prompt', headers: { origin: 'http://other.example' } })).status, 403)

  const any = await startStack(t, { corsOrigin: '*' })
  const anyOrigin = await rawRequest(any.url, { path: '/prompt', headers: { origin: 'http://any.example' } })
  t.equal(anyOrigin.status, 200)
  t.equal(anyOrigin.headers['access-control-allow-origin'], 'http://any.example')
  const opaque = await rawRequest(any.url, { path: '/prompt', headers: { origin: 'null' } })
  t.equal(opaque.status, 403, 'Origin: null (a sandboxed frame) is refused')
  t.equal(opaque.headers['access-control-allow-origin'], undefined, 'and not reflected')

  const explicitNull = await startStack(t, { corsOrigin: 'null' })
  const nullAllowed = await rawRequest(explicitNull.url, { path: '/prompt', headers: { origin: 'null' } })
  t.equal(nullAllowed.status, 200, 'null is allowed when listed')
  t.equal(nullAllowed.headers['access-control-allow-origin'], 'null')
})

t.test('the guard\'s pieces', async t => {
  for (const host of ['localhost', 'LocalHost.', 'a.localhost', '127.0.0.1', '127.255.0.9', '::1', '[::1]', '::ffff:127.0.0.1', '[::ffff:7f00:1]']) t.ok(isLoopbackHost(host), host)
  for (const host of ['localhost.example', '128.0.0.1', '0.0.0.0', '::', '10.0.0.1', 'example.com', '', '[::2]']) t.notOk(isLoopbackHost(host), host)
  t.same(parseHost('0x7f.1:8188'), { hostname: '127.0.0.1', port: '8188' }, 'IPv4 forms are normalised as browsers do')
  t.equal(parseHost('a@b'), undefined)
  t.ok(sameOrigin('http://localhost:8188', { hostname: 'localhost', port: '8188' }))
  t.ok(sameOrigin('http://localhost', { hostname: 'localhost', port: '8188' }), 'no Origin port: hostnames only (local\'s rule)')
  t.ok(sameOrigin('http://localhost:8188', { hostname: 'localhost', port: '' }), 'no Host port: hostnames only')
  t.notOk(sameOrigin('http://localhost:8189', { hostname: 'localhost', port: '8188' }))
  t.notOk(sameOrigin('null', { hostname: 'localhost', port: '' }))
})
