/**
 * Attacks from issue 14 by a hostile client or a misbehaving cloud; each test is named after the
 * attack and failed before the fix.
 */
import t from 'tap'
import WebSocket from 'ws'
import { defaultGraph, getJson, startProxy, startStack } from '../helpers.js'
import { json, rawRequest, startHostileCloud } from '../fixtures/hostile.js'

const TOKEN = 'proxy-token-0123456789'

t.test('token bypass: POST/PUT/PATCH/DELETE on /healthz and /readyz need no token and reach the cloud with the key', async t => {
  const stack = await startStack(t, { proxyAuthToken: TOKEN })
  const sim = stack.simulator.app.simulator
  for (const path of ['/healthz', '/readyz', '/metrics']) {
    for (const method of ['POST', 'PUT', 'PATCH', 'DELETE']) {
      sim.requests.length = 0
      const refused = await rawRequest(stack.url, { method, path, headers: { 'content-type': 'application/json' }, body: '{}' })
      t.equal(refused.status, 401, `${method} ${path} without the token`)
      const owned = await rawRequest(stack.url, { method, path, headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: '{}' })
      t.equal(owned.status, 405, `${method} ${path} with the token: the proxy's own 405`)
      t.equal(owned.text, '405: Method Not Allowed', 'local\'s text 405')
      t.equal(owned.headers.allow, 'GET,HEAD')
      t.equal(sim.requests.length, 0, `${method} ${path} never reaches the cloud`)
    }
  }
  for (const method of ['GET', 'HEAD']) t.equal((await rawRequest(stack.url, { method, path: '/healthz' })).status, 200, `${method} /healthz stays open`)
})

t.test('a percent-encoded token name (?%74oken=) authenticates but never reaches the cloud, and an encoded value is masked in logs', async t => {
  const stack = await startStack(t, { proxyAuthToken: TOKEN })
  const sim = stack.simulator.app.simulator
  const encodedValue = `%${TOKEN.charCodeAt(0).toString(16)}${TOKEN.slice(1)}`
  for (const [i, query] of [`%74oken=${TOKEN}`, `%54OKEN=${TOKEN}&token=${TOKEN}`, `t%6Fken=${encodedValue}`].entries()) {
    sim.requests.length = 0
    // A different limit each time, so that no answer is shared with the one before.
    const answer = await getJson(`${stack.url}/history_v2?limit=${i + 2}&${query}`)
    t.equal(answer.status, 200, `?${query} authenticates (the name and value are decoded before comparing)`)
    t.equal(sim.requests.length, 1, 'the request reached the cloud')
    t.notMatch(sim.requests[0]?.url, /token/i, `?${query}: no token parameter reaches the cloud (${sim.requests[0]?.url})`)
    t.match(sim.requests[0]?.url, `limit=${i + 2}`, 'other parameters do')
  }
  t.equal((await getJson(`${stack.url}/prompt?%74oken=wrong`)).status, 401, 'a wrong encoded token is refused')
  const leaked = stack.logs.filter(line => line.includes(TOKEN.slice(1)))
  t.same(leaked, [], 'no log line holds the token, however it was encoded')
})

t.test('a cloud that echoes the server key: masked in every body, header, cookie, redirect, prompt error, /view error, WebSocket frame and close reason', async t => {
  const cloud = await startHostileCloud(t)
  const key = 'comfyui-echoed-secret-key-0123'
  const percent = key.split('').map(c => `%${c.charCodeAt(0).toString(16)}`).join('')
  cloud.handle = (req, res) => {
    const path = (req.url ?? '').split('?')[0]
    if (path === '/api/history_v2') {
      return json(res, 200, { echo: key, encoded: percent, partly: `%63${key.slice(1)}` }, {
        'x-echo': key, 'set-cookie': [`session=${key}`], location: `/api/x?token=${encodeURIComponent(key)}`, 'content-type': 'application/json'
      })
    }
    if (path === '/api/prompt' && req.method === 'POST') return json(res, 400, { error: { type: 'bad', message: `key ${key} refused`, details: key, extra_info: { key } }, node_errors: {} })
    if (path === '/api/prompt') return json(res, 200, { exec_info: { queue_remaining: 0 } }, { 'x-debug-key': key })
    if (path === '/api/view') return json(res, 400, { message: `no file for ${key}` })
    if (path === '/api/features') return json(res, 500, { message: key }, { 'set-cookie': `a=${key}`, location: 'https://attacker.example/' })
    return undefined
  }
  cloud.onSocket = socket => {
    socket.send(JSON.stringify({ type: 'status', data: { status: { exec_info: { queue_remaining: 0 } }, sid: 'x', echo: key } }))
    socket.send(Buffer.concat([Buffer.from([0, 0, 0, 1, 0, 0, 0, 2]), Buffer.from(key)]))
    setTimeout(() => { socket.close(4000, `bye ${key}`) }, 50)
  }
  const proxy = await startProxy(t, { cloudUrl: cloud.url, apiKey: key, cloudRetries: 0 })
  const answers = [
    await rawRequest(proxy.url, { path: '/history_v2' }),
    await rawRequest(proxy.url, { path: '/prompt' }),
    await rawRequest(proxy.url, { method: 'POST', path: '/prompt', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: defaultGraph() }) }),
    await rawRequest(proxy.url, { path: '/view?filename=x.png' }),
    await rawRequest(proxy.url, { path: '/features' })
  ]
  t.equal(answers[0].status, 200, 'the pass-through answer still arrives')
  t.equal(answers[0].text.length, JSON.stringify({ echo: key, encoded: percent, partly: `%63${key.slice(1)}` }).length, 'masked in place: same length')
  t.equal(answers[0].headers['set-cookie'], undefined, 'cloud cookies are never relayed')
  t.equal(answers[2].status, 400)
  t.equal(answers[3].status, 400)
  t.equal(answers[4].status, 502, 'the cloud 5xx is wrapped')
  t.equal(answers[4].headers['set-cookie'], undefined, 'no cookie on a wrapped 5xx')
  t.equal(answers[4].headers.location, undefined, 'no redirect on a wrapped 5xx')
  const frames: string[] = []
  const closed = await new Promise<{ code: number, reason: string }>((resolve) => {
    const socket = new WebSocket(`${proxy.url.replace('http', 'ws')}/ws?clientId=c1`)
    socket.on('message', (data: Buffer, isBinary) => { frames.push(isBinary ? data.toString('latin1') : data.toString()) })
    socket.on('close', (code, reason) => { resolve({ code, reason: reason.toString() }) })
  })
  t.equal(frames.length, 2, 'both frames were relayed')
  t.equal(frames[1].length, 8 + key.length, 'a binary frame keeps its length')
  const everything = [...answers.map(a => JSON.stringify(a.headers) + a.text), ...frames, closed.reason].join('\n')
  for (const form of [key, percent, `%63${key.slice(1)}`, encodeURIComponent(key)]) t.notMatch(everything, form, `no form of the key reaches a client (${form.slice(0, 12)}…)`)
  t.match(closed.reason, /^bye \*+$/, 'the close reason is masked')
})

t.test('hop-by-hop headers: the cloud\'s Connection/Keep-Alive never override the client\'s Connection: close, and none reach the cloud', async t => {
  const cloud = await startHostileCloud(t)
  cloud.handle = (req, res) => {
    if ((req.url ?? '').startsWith('/api/history_v2')) {
      return json(res, 200, { ok: true }, { connection: 'keep-alive, x-hop', 'keep-alive': 'timeout=600', 'x-hop': 'secret-hop', 'proxy-connection': 'keep-alive' })
    }
    return undefined
  }
  const proxy = await startProxy(t, { cloudUrl: cloud.url, apiKey: 'comfyui-hop-key' })
  const answer = await rawRequest(proxy.url, {
    path: '/history_v2',
    headers: { connection: 'close, x-client-hop', 'x-client-hop': 'v', te: 'trailers', 'keep-alive': 'timeout=5', 'x-forwarded-for': '10.9.8.7', forwarded: 'for=10.9.8.7', 'x-real-ip': '10.9.8.7', 'x-custom': 'kept' }
  })
  t.equal(answer.status, 200)
  t.equal(answer.headers.connection, 'close', 'the client\'s Connection: close wins')
  t.equal(answer.headers['keep-alive'], undefined)
  t.equal(answer.headers['x-hop'], undefined, 'a header the cloud named in Connection is not relayed')
  t.equal(answer.headers['proxy-connection'], undefined)
  const sent = cloud.received.find(r => r.url.startsWith('/api/history_v2'))?.headers ?? {}
  for (const name of ['x-client-hop', 'te', 'keep-alive', 'x-forwarded-for', 'forwarded', 'x-real-ip']) t.equal(sent[name], undefined, `${name} does not reach the cloud`)
  t.equal(sent['x-custom'], 'kept', 'end-to-end headers do')
})

t.test('/readyz cost: failures are cached, so probes while the cloud is down cost one probe', async t => {
  const stack = await startStack(t, { cloudRetries: 0 })
  const sim = stack.simulator.app.simulator
  sim.faults.set('GET /api/prompt', { status: 503 })
  const answers = await Promise.all(Array.from({ length: 5 }, async () => await getJson(`${stack.url}/readyz`)))
  for (let i = 0; i < 5; i++) answers.push(await getJson(`${stack.url}/readyz`))
  t.same(answers.map(a => a.status), Array(10).fill(503))
  t.equal(answers[0].body.status, 'not ready')
  t.equal(sim.requests.filter(r => r.url === '/api/prompt').length, 1, 'ten probes, one cloud call')
})

t.test('/view content sniffing: nosniff everywhere, and HTML or SVG from storage is sandboxed', async t => {
  const cloud = await startHostileCloud(t)
  cloud.handle = (req, res) => {
    if (!(req.url ?? '').startsWith('/api/view')) return undefined
    const svg = (req.url ?? '').includes('svg')
    res.writeHead(200, { 'content-type': svg ? 'image/svg+xml' : 'text/html' }).end(svg ? '<svg onload="alert(1)"/>' : '<script>alert(1)</script>')
    return true
  }
  const proxy = await startProxy(t, { cloudUrl: cloud.url, apiKey: 'comfyui-view-key' })
  for (const name of ['x.svg', 'x.html']) {
    const answer = await rawRequest(proxy.url, { path: `/view?filename=${name}` })
    t.equal(answer.status, 200)
    t.equal(answer.headers['x-content-type-options'], 'nosniff')
    // SVG keeps its type and is sandboxed; HTML is served as a download (application/octet-stream), as local does.
    const inert = answer.headers['content-security-policy'] === 'sandbox' || answer.headers['content-type'] === 'application/octet-stream'
    t.ok(inert, `${name} cannot run script as the proxy's origin (${String(answer.headers['content-type'])}, CSP ${String(answer.headers['content-security-policy'])})`)
  }
  t.equal((await rawRequest(proxy.url, { path: '/prompt' })).headers['x-content-type-options'], 'nosniff')
})
