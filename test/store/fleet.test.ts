/**
 * State that survives a restart and a fleet of replicas (issue 13), over real servers on loopback:
 * a real redis-server, the simulator playing the cloud's rate limit, and proxies sharing one Redis.
 */
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import WebSocket from 'ws'
import { startSimulator } from '../../src/simulator/app.js'
import { defaultGraph, getJson, postJson, startProxy, testKey, waitFor } from '../helpers.js'
import { startRedis } from '../fixtures/redis.js'

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

async function simulator (t: Test, options: Parameters<typeof startSimulator>[0] = {}): Promise<{ url: string, key: string, control: Awaited<ReturnType<typeof startSimulator>> }> {
  const key = testKey()
  const control = await startSimulator({ apiKeys: [key], host: '127.0.0.1', port: 0, stepMs: 1, ...options })
  t.teardown(async () => { await control.close() })
  return { url: control.url, key, control }
}

/** Replicas of the proxy sharing one Redis, each connected to it before the test goes on. */
async function fleet (t: Test, count: number, options: Parameters<typeof startProxy>[1]): Promise<Array<Awaited<ReturnType<typeof startProxy>>>> {
  const replicas = await Promise.all(Array.from({ length: count }, async () => await startProxy(t, { logLevel: 'warn', ...options })))
  await waitFor(async () => replicas.every(replica => replica.app.store.healthy) ? true : undefined, 5000, 'Redis')
  return replicas
}

/** Polls a URL (or a new URL each time) in a loop until `until` (a time, or one set later); every answer's status is kept. */
async function poll (url: string | (() => string), everyMs: number, until: number | { at: number }, statuses: number[]): Promise<void> {
  while (Date.now() < (typeof until === 'number' ? until : until.at)) {
    statuses.push((await fetch(typeof url === 'string' ? url : url())).status)
    await sleep(everyMs)
  }
}

t.test('three replicas sharing one Redis spend one replica\'s cloud budget, not three', async t => {
  const redis = await startRedis(t)
  // 60 requests a minute at the "cloud": three replicas with a budget each (4/s) would pass it within seconds.
  const cloud = await simulator(t, { rateLimit: 60, stepMs: 20 })
  const maxRps = 4
  const replicas = await fleet(t, 3, { cloudUrl: cloud.url, apiKey: cloud.key, redisUrl: redis.url, cloudMaxRps: maxRps, listTtlMs: 100 })
  const ids: string[] = []
  for (const replica of replicas) {
    const submitted = await postJson(`${replica.url}/prompt`, { prompt: defaultGraph(ids.length + 1) })
    t.equal(submitted.status, 200, 'submitted')
    ids.push(submitted.body.prompt_id)
  }
  const before = cloud.control.app.simulator.requests.length
  const started = Date.now()
  const until = started + 5000
  const statuses: number[] = []
  const strangers: number[] = []
  // Every replica's clients poll hard: their own job, the queue count and the history list, at 20 Hz;
  // and one asks for a new id every time, which nothing the proxy knows can answer (a cloud call each).
  await Promise.all(replicas.flatMap((replica, i) => [
    poll(`${replica.url}/history/${ids[i]}`, 50, until, statuses),
    poll(`${replica.url}/prompt`, 50, until, statuses),
    poll(`${replica.url}/history?max_items=5`, 50, until, statuses),
    poll(() => `${replica.url}/history/stranger-${Math.random()}`, 50, until, strangers)
  ]))
  const seconds = (Date.now() - started) / 1000
  const cloudCalls = cloud.control.app.simulator.requests.length - before
  t.comment(`${statuses.length} local polls over 3 replicas cost ${cloudCalls} cloud calls in ${seconds.toFixed(1)} s`)
  t.ok(cloudCalls <= maxRps * (seconds + 1) + 2, `the fleet stayed within one budget of ${maxRps}/s (${cloudCalls} calls)`)
  t.notOk([...statuses, ...strangers].includes(429), 'no client saw a 429')
  t.notOk(cloud.control.app.simulator.requests.length > 60, 'the cloud never had to refuse a call')
  t.ok(statuses.filter(s => s === 200).length > statuses.length * 0.8, 'the polls were answered')
})

t.test('a prompt submitted through replica A: its events reach its client on B and no other client; /queue on C shows its extra_data', async t => {
  const redis = await startRedis(t)
  const cloud = await simulator(t, { stepMs: 150 })
  const [a, b, c] = await fleet(t, 3, { cloudUrl: cloud.url, apiKey: cloud.key, redisUrl: redis.url })
  const listen = async (url: string, clientId: string): Promise<{ frames: any[], socket: WebSocket }> => {
    const socket = new WebSocket(`${url.replace('http', 'ws')}/ws?clientId=${clientId}`)
    const frames: any[] = []
    socket.on('message', (data, binary) => { if (!binary) frames.push(JSON.parse(data.toString())) })
    await new Promise((resolve, reject) => { socket.once('open', resolve); socket.once('error', reject) })
    t.teardown(() => { socket.terminate() })
    return { frames, socket }
  }
  const owner = await listen(b.url, 'owner-client')
  const other = await listen(c.url, 'other-client')
  await sleep(200)
  const submitted = await postJson(`${a.url}/prompt`, { prompt: defaultGraph(7, 64, 64, 20), client_id: 'owner-client', extra_data: { note: 'through A' } })
  t.equal(submitted.status, 200)
  const promptId = submitted.body.prompt_id as string
  const queued = await waitFor(async () => {
    const queue = (await getJson(`${c.url}/queue`)).body
    return [...queue.queue_running, ...queue.queue_pending].find((item: any[]) => item[1] === promptId)
  }, 10_000, 'the prompt in /queue on C')
  t.match(queued[3], { client_id: 'owner-client', note: 'through A' }, '/queue on C shows the extra_data submitted through A')
  await waitFor(async () => owner.frames.some(f => f.type === 'executing' && f.data?.prompt_id === promptId && f.data?.node === null) ? true : undefined, 15_000, 'the last event on B')
  await sleep(300)
  t.ok(owner.frames.some(f => f.type === 'execution_start' && f.data?.prompt_id === promptId), 'the owner on B got the start')
  t.ok(other.frames.length > 0, 'C relays frames to its client (its status at least)')
  t.same(other.frames.filter(f => f.data?.prompt_id === promptId), [], 'the other client on C got none of its events')
})

t.test('a single proxy with STATE_FILE keeps submitters, extra_data and settings across a restart', async t => {
  const cloud = await simulator(t, { stepMs: 200 })
  const stateFile = join(mkdtempSync(join(tmpdir(), 'ccp-state-')), 'state.db')
  const first = await startProxy(t, { cloudUrl: cloud.url, apiKey: cloud.key, stateFile, logLevel: 'warn' })
  const submitted = await postJson(`${first.url}/prompt`, { prompt: defaultGraph(9, 64, 64, 30), client_id: 'before-restart', extra_data: { note: 'kept' } })
  t.equal(submitted.status, 200)
  t.equal((await postJson(`${first.url}/settings/Comfy.Theme`, JSON.stringify('dark'))).status, 200)
  await first.app.close()

  const second = await startProxy(t, { cloudUrl: cloud.url, apiKey: cloud.key, stateFile, logLevel: 'warn' })
  const promptId = submitted.body.prompt_id as string
  t.equal(second.app.submissions.ownedByAnother(promptId, 'someone-else'), false, 'not in memory after the restart…')
  const queue = (await getJson(`${second.url}/queue`)).body
  const item = [...queue.queue_running, ...queue.queue_pending].find((entry: any[]) => entry[1] === promptId)
  t.ok(item, 'the job is still queued')
  t.match(item?.[3], { client_id: 'before-restart', note: 'kept' }, 'its extra_data survived the restart')
  t.equal(second.app.submissions.ownedByAnother(promptId, 'someone-else'), true, '…but its owner is known from the file')
  t.same((await getJson(`${second.url}/settings/Comfy.Theme`)).body, 'dark', 'a setting survived the restart')
})

t.test('a client-chosen prompt id submitted before a STATE_FILE restart still resolves after it', async t => {
  const cloud = await simulator(t, { stepMs: 100 })
  const stateFile = join(mkdtempSync(join(tmpdir(), 'ccp-state-')), 'state.db')
  const first = await startProxy(t, { cloudUrl: cloud.url, apiKey: cloud.key, stateFile, logLevel: 'warn' })
  // Not a UUID: the cloud mints its own id, and only the proxy's map knows the two are one prompt.
  const clientPromptId = 'my-render-before-restart'
  const submitted = await postJson(`${first.url}/prompt`, { prompt: defaultGraph(4, 64, 64, 20), prompt_id: clientPromptId })
  t.equal(submitted.status, 200)
  t.equal(submitted.body.prompt_id, clientPromptId)
  await first.app.close()

  const second = await startProxy(t, { cloudUrl: cloud.url, apiKey: cloud.key, stateFile, logLevel: 'warn' })
  const queue = (await getJson(`${second.url}/queue`)).body
  const queued = [...queue.queue_running, ...queue.queue_pending].find((item: any[]) => item[1] === clientPromptId)
  t.equal(queued?.[0], submitted.body.number, '/queue shows the client\'s id and number after the restart')
  const entry = await waitFor(async () => (await getJson(`${second.url}/history/${clientPromptId}`)).body[clientPromptId], 15_000, 'the entry under the client\'s id')
  t.equal(entry.status.status_str, 'success')
  t.equal(entry.prompt[0], submitted.body.number, 'the same number as POST /prompt answered')
  t.equal(entry.prompt[1], clientPromptId, 'the entry carries the client\'s id')
  const job = await getJson(`${second.url}/api/jobs/${clientPromptId}`)
  t.equal(job.status, 200, '/api/jobs finds it by the client\'s id')
  t.equal(job.body.id, clientPromptId)
  const list = (await getJson(`${second.url}/history?max_items=5`)).body
  t.ok(clientPromptId in list, '/history lists it under the client\'s id')
})

t.test('a client-chosen prompt id submitted through replica A resolves on B and C; a "not there" answer costs the fleet one call', async t => {
  const redis = await startRedis(t)
  const cloud = await simulator(t, { stepMs: 100 })
  const [a, b, c] = await fleet(t, 3, { cloudUrl: cloud.url, apiKey: cloud.key, redisUrl: redis.url })
  const clientPromptId = 'fleet-render-1'
  const submitted = await postJson(`${a.url}/prompt`, { prompt: defaultGraph(5, 64, 64, 20), prompt_id: clientPromptId })
  t.equal(submitted.status, 200)
  const queue = (await getJson(`${c.url}/queue`)).body
  const queued = [...queue.queue_running, ...queue.queue_pending].find((item: any[]) => item[1] === clientPromptId)
  t.equal(queued?.[0], submitted.body.number, '/queue on C shows the client\'s id and number')
  const entry = await waitFor(async () => (await getJson(`${b.url}/history/${clientPromptId}`)).body[clientPromptId], 15_000, 'the entry on B')
  t.equal(entry.prompt[1], clientPromptId)
  t.equal((await getJson(`${c.url}/api/jobs/${clientPromptId}`)).body.id, clientPromptId, '/api/jobs on C finds it')

  const stranger = 'b1f0c7de-0000-4000-8000-00000000abcd'
  const asked = (): number => cloud.control.app.simulator.requests.filter(request => request.url.includes(stranger)).length
  t.same((await getJson(`${a.url}/history/${stranger}`)).body, {})
  t.equal(asked(), 1, 'A asked the cloud once')
  t.same((await getJson(`${b.url}/history/${stranger}`)).body, {})
  t.same((await getJson(`${c.url}/history/${stranger}`)).body, {})
  t.equal(asked(), 1, 'B and C knew from the store that it is not there')
})

t.test('a finished entry costs the fleet one detail call; a delete or clear through one replica hides it on every replica', async t => {
  const redis = await startRedis(t)
  const cloud = await simulator(t, { stepMs: 5 })
  const [a, b, c] = await fleet(t, 3, { cloudUrl: cloud.url, apiKey: cloud.key, redisUrl: redis.url, listTtlMs: 200 })
  const finished = async (url: string, seed: number): Promise<string> => {
    const submitted = await postJson(`${url}/prompt`, { prompt: defaultGraph(seed, 64, 64, 2) })
    const id = submitted.body.prompt_id as string
    await waitFor(async () => (await getJson(`${url}/history/${id}`)).body[id], 10_000, 'the entry')
    return id
  }
  const first = await finished(a.url, 11)
  const details = (id: string): number => cloud.control.app.simulator.requests.filter(request => request.method === 'GET' && request.url.startsWith(`/api/jobs/${id}`)).length
  t.equal(details(first), 1, 'A fetched the finished job once')
  const onA = (await getJson(`${a.url}/history/${first}`)).body
  t.same((await getJson(`${b.url}/history/${first}`)).body, onA, 'B answers the same entry…')
  t.same((await getJson(`${c.url}/history/${first}`)).body, onA)
  t.equal(details(first), 1, '…without asking the cloud again (nor does C)')

  t.equal((await postJson(`${b.url}/history`, { delete: [first] })).status, 200)
  t.same((await getJson(`${a.url}/history/${first}`)).body, {}, 'deleted through B: gone on A, which fetched it and had it in memory')
  t.same((await getJson(`${c.url}/history/${first}`)).body, {}, 'and on C')
  await sleep(300)
  t.same((await getJson(`${a.url}/history/${first}`)).body, {}, 'and it stays gone on A once LIST_TTL_MS has passed')

  const second = await finished(a.url, 12)
  t.ok((await getJson(`${c.url}/history/${second}`)).body[second], 'C holds the second entry')
  t.equal((await postJson(`${b.url}/history`, { clear: true })).status, 200)
  t.same((await getJson(`${c.url}/history/${second}`)).body, {}, 'cleared through B: gone on C')
  t.same((await getJson(`${a.url}/history/${second}`)).body, {}, 'and on A')
})

t.test('a replica connecting to Redis at start logs it at info, not as a warning that Redis is back', async t => {
  const redis = await startRedis(t)
  const cloud = await simulator(t)
  const [replica] = await fleet(t, 1, { cloudUrl: cloud.url, apiKey: cloud.key, redisUrl: redis.url, logLevel: 'info' })
  const lines = replica.logs.map(line => JSON.parse(line)).filter(line => line.store === 'redis')
  t.same(lines.map(line => [line.level, line.msg]), [[30, 'state store connected']])
})

t.test('Redis stopped in the middle of a run: no request fails, /readyz says so, and the fleet catches up when it returns', async t => {
  const redis = await startRedis(t)
  const cloud = await simulator(t)
  const [a, b] = await fleet(t, 2, { cloudUrl: cloud.url, apiKey: cloud.key, redisUrl: redis.url })
  const statuses: number[] = []
  // Polling goes on until 2 s after the outage is noticed, however long noticing takes.
  const until = { at: Number.POSITIVE_INFINITY }
  const load = Promise.all([a, b].flatMap(replica => [
    poll(`${replica.url}/prompt`, 20, until, statuses),
    poll(`${replica.url}/history?max_items=3`, 20, until, statuses),
    poll(`${replica.url}/queue`, 20, until, statuses)
  ]))
  await sleep(800)
  await redis.stop()
  await waitFor(async () => a.app.store.healthy ? undefined : true, 5000, 'the outage noticed')
  const beforeOutage = statuses.length
  until.at = Date.now() + 2000
  const submitted = await postJson(`${a.url}/prompt`, { prompt: defaultGraph(3), client_id: 'during-outage', extra_data: { note: 'outage' } })
  t.equal(submitted.status, 200, 'a submit during the outage works')
  const ready = await getJson(`${a.url}/readyz`)
  t.equal(ready.status, 200, 'still ready: it serves from memory')
  t.same(ready.body.state, { store: 'redis', healthy: false }, '/readyz reports the outage')
  t.match(await (await fetch(`${a.url}/metrics`)).text(), /comfy_proxy_state_store_healthy\{store="redis"\} 0/)
  await load
  t.ok(statuses.length - beforeOutage > 20, `${statuses.length - beforeOutage} of ${statuses.length} polls during the outage`)
  t.same([...new Set(statuses)], [200], 'no request failed because of the outage')
  await redis.start()
  await waitFor(async () => a.app.store.healthy ? true : undefined, 10_000, 'Redis back')
  const promptId = submitted.body.prompt_id as string
  const record = await waitFor(async () => await b.app.store.get('submission', promptId), 5000, 'the outage\'s write on B')
  t.match(record, { clientId: 'during-outage' }, 'what A wrote during the outage reached Redis when it returned')
})
