import t from 'tap'
import type { Test } from 'tap'
import WebSocket from 'ws'
import { conforms, defaultPrompt, KEY, openWs, OTHER_KEY, startSim, submit, waitForStatus, type Sim } from './fixtures/helpers.js'

/** The HTTP status the server answers a WebSocket upgrade with (101 when it opens). */
async function upgradeStatus (url: string, headers: Record<string, string> = {}): Promise<number> {
  return await new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { headers })
    socket.on('unexpected-response', (request, response) => {
      resolve(response.statusCode ?? 0)
      request.destroy()
    })
    socket.on('open', () => {
      socket.terminate()
      resolve(101)
    })
    socket.on('error', reject)
  })
}

t.test('every HTTP route needs an API key', async t => {
  const sim = await startSim(t)
  const routes: Array<[string, string]> = [
    ['GET', '/api/jobs'], ['GET', '/api/jobs/0f3c6e2a-1b7d-4c55-9a1e-2d8f0b6c4a11'], ['GET', '/api/queue'], ['POST', '/api/queue'],
    ['GET', '/api/prompt'], ['POST', '/api/prompt'], ['GET', '/api/object_info'], ['GET', '/api/history_v2'], ['POST', '/api/history'],
    ['POST', '/api/interrupt'], ['GET', '/api/view?filename=a.png'], ['POST', '/api/upload/image'], ['PUT', '/__simulator/faults'],
    ['GET', '/api/no-such-route']
  ]
  for (const [method, path] of routes) {
    for (const key of [null, 'comfyui-not-a-key']) {
      const { status, body } = await sim.json(path, { method, key, ...(method === 'GET' ? {} : { json: {} }) })
      t.equal(status, 401, `${method} ${path} with ${key ?? 'no key'}`)
      t.same(body, { code: 'UNAUTHORIZED', message: 'Missing or invalid API key' })
      conforms(t, 'ErrorResponse', body, `401 of ${method} ${path}`)
    }
  }
})

t.test('the key is accepted as X-API-Key or as a Bearer token', async t => {
  const sim = await startSim(t)
  t.equal((await sim.call('/api/queue')).status, 200, 'X-API-Key')
  t.equal((await sim.call('/api/queue', { key: null, headers: { authorization: `Bearer ${KEY}` } })).status, 200, 'Bearer')
  t.equal((await sim.call('/api/queue', { key: null, headers: { authorization: `bearer ${KEY}` } })).status, 200, 'scheme is case-insensitive')
  t.equal((await sim.call('/api/queue', { key: null, headers: { authorization: 'Bearer comfyui-wrong' } })).status, 401, 'wrong Bearer')
  t.equal((await sim.call('/api/queue', { key: null, headers: { authorization: `Basic ${KEY}` } })).status, 401, 'not Bearer')
  t.equal((await sim.call('/api/queue', { key: null, headers: { authorization: KEY } })).status, 401, 'bare key in Authorization')
})

t.test('the default key is comfyui-simulator-key', async t => {
  const sim = await startSim(t, { apiKeys: undefined })
  t.equal((await sim.call('/api/queue', { key: 'comfyui-simulator-key' })).status, 200)
  t.equal((await sim.call('/api/queue')).status, 401, 'the test key is not configured')
})

/** local's /features keys (observed finding 32) with the cloud's 50 MB upload limit */
const LOCAL_FEATURES = { supports_preview_metadata: true, max_upload_size: 50 * 1024 * 1024, extension: { manager: { supports_v4: true } }, node_replacements: true, assets: false }

t.test('system_stats and features are public', async t => {
  const sim = await startSim(t)
  for (const key of [null, KEY]) {
    const stats = await sim.json('/api/system_stats', { key })
    t.equal(stats.status, 200)
    conforms(t, 'SystemStatsResponse', stats.body)
    t.equal(stats.body.devices[0].type, 'cuda')
    const features = await sim.json('/api/features', { key })
    t.equal(features.status, 200)
    conforms(t, 'FeaturesResponse', features.body)
    t.same(features.body, LOCAL_FEATURES)
  }
})

t.test('the WebSocket upgrade needs ?token=<key>', async t => {
  const sim = await startSim(t)
  const ws = sim.url.replace('http', 'ws')
  t.equal(await upgradeStatus(`${ws}/ws?clientId=abc`), 401, 'no token')
  t.equal(await upgradeStatus(`${ws}/ws?clientId=abc&token=comfyui-wrong`), 401, 'wrong token')
  t.equal(await upgradeStatus(`${ws}/ws?clientId=abc`, { 'x-api-key': KEY }), 401, 'a header key does not replace the token')
  t.equal(await upgradeStatus(`${ws}/ws?clientId=abc&token=${KEY}`), 101, 'good token')
})

t.test('the first WebSocket frame is status with the sid', async t => {
  const sim = await startSim(t)
  const named = await openWs(t, sim, { clientId: 'c8e1d4f2a9b84c0e9d5f6a7b8c9d0e1f' })
  t.same(named.frames[0], { type: 'status', data: { status: { exec_info: { queue_remaining: 0 } }, sid: 'c8e1d4f2a9b84c0e9d5f6a7b8c9d0e1f' } })
  conforms(t, 'WebSocketMessage', named.frames[0])
  const anonymous = await openWs(t, sim)
  t.match((anonymous.frames[0] as any).data.sid, /^[0-9a-f]{32}$/, 'a random hex sid without clientId')
  sim.app.simulator.seedJob(KEY, { status: 'pending' })
  const later = await openWs(t, sim)
  t.equal((later.frames[0] as any).data.status.exec_info.queue_remaining, 1, 'queue_remaining counts the account\'s jobs')
})

t.test('a client feature_flags message is answered with the server flags', async t => {
  const sim = await startSim(t)
  const ws = await openWs(t, sim)
  ws.socket.send(JSON.stringify({ type: 'feature_flags', data: { supports_preview_metadata: true } }))
  const answer = await ws.waitFor(m => m.type === 'feature_flags')
  t.same(answer.data, LOCAL_FEATURES)
})

async function isolated (t: Test, sim: Sim, id: string): Promise<void> {
  const detail = await sim.json(`/api/jobs/${id}`, { key: OTHER_KEY })
  t.equal(detail.status, 404, 'another account\'s job is not found')
  conforms(t, 'ErrorResponse', detail.body)
  t.same((await sim.json('/api/jobs', { key: OTHER_KEY })).body.jobs, [], 'nor listed')
  t.equal((await sim.json(`/api/jobs/${id}/cancel`, { method: 'POST', key: OTHER_KEY })).status, 404, 'nor cancellable')
  t.equal((await sim.json('/api/interrupt', { method: 'POST', json: { prompt_id: id }, key: OTHER_KEY })).status, 404, 'nor interruptible')
  t.equal((await sim.json(`/api/history_v2/${id}`, { key: OTHER_KEY })).status, 404, 'nor in history')
}

t.test('each key is its own account: jobs, files and sockets', async t => {
  const sim = await startSim(t)
  const mine = await openWs(t, sim, { key: KEY })
  const theirs = await openWs(t, sim, { key: OTHER_KEY })
  const id = await submit(sim, { prompt: defaultPrompt() }, KEY)
  const job = await waitForStatus(sim, id, ['completed'])
  await mine.waitFor(m => m.type === 'executing' && m.data.node === null)
  await isolated(t, sim, id)
  t.same(theirs.frames.length, 1, 'the other account\'s socket saw nothing but its first status')
  t.equal((await sim.json('/api/prompt', { key: OTHER_KEY })).body.exec_info.queue_remaining, 0)
  const image = job.outputs['9'].images[0]
  t.equal((await sim.call(`/api/view?filename=${image.filename}`, { key: OTHER_KEY })).status, 404, 'nor can it view the files')
  t.equal((await sim.call(`/api/view?filename=${image.filename}`, { key: KEY })).status, 302)
  const second = await sim.json('/api/prompt', { method: 'POST', json: { prompt: defaultPrompt() }, key: OTHER_KEY })
  t.equal(second.body.number, 1, 'submission numbers count per account')
})
