/**
 * A replica killed with SIGKILL while its clients wait on their jobs (issue 13). The replicas are
 * child processes started like `npm start` (the server entry, here through tap's TypeScript loader)
 * sharing one real redis-server, with the simulator as their cloud. Nothing a replica acknowledged
 * with a 200 may be lost: the clients retry against the others and get every result. A single proxy
 * with STATE_FILE, killed the same way and started again, keeps what it acknowledged too.
 */
import { randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import WebSocket from 'ws'
import { startSimulator } from '../../src/simulator/app.js'
import { defaultGraph, getJson, postJson, testKey, waitFor } from '../helpers.js'
import { startRedis } from '../fixtures/redis.js'
import { startServerProcess } from '../fixtures/server-process.js'

const FIRST_SEED = 100
const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

/** A replica on the shared Redis, ready once /readyz says its store is healthy. */
async function startReplica (t: Test, env: Record<string, string>): Promise<{ url: string, kill: () => Promise<void> }> {
  const replica = startServerProcess(t, env)
  const url = await replica.listening()
  await waitFor(async () => (await getJson(`${url}/readyz`)).body?.state?.healthy === true ? true : undefined, 20_000, 'the replica on Redis')
  return { url, kill: replica.kill }
}

/** A client waiting on its prompt: polls /history/{id}, moving to the next replica whenever one stops answering. */
async function waitForResult (replicas: string[], hop: number, promptId: string, timeoutMs: number): Promise<{ entry: any, via: string } | undefined> {
  let at = 0
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const url = replicas[at % replicas.length]
    try {
      const { status, body } = await getJson(`${url}/history/${encodeURIComponent(promptId)}`, { signal: AbortSignal.timeout(5000) })
      const entry = status === 200 ? body[promptId] : undefined
      if (entry?.status?.completed === true) return { entry, via: url }
    } catch {
      at += hop // connection refused or reset: this replica is gone, try another
    }
    await sleep(100)
  }
  return undefined
}

t.test('SIGKILL a replica while its clients wait: every prompt it acknowledged reaches its client through the others', async t => {
  const redis = await startRedis(t)
  const key = testKey()
  // Jobs of about 2 s, two at a time: when A dies, some run and some wait in the cloud's queue.
  const cloud = await startSimulator({ apiKeys: [key], host: '127.0.0.1', port: 0, stepMs: 50, concurrency: 2 })
  t.teardown(async () => { await cloud.close() })
  const env = { COMFY_CLOUD_URL: cloud.url, COMFY_CLOUD_API_KEY: key, REDIS_URL: redis.url }
  const starting = Date.now()
  const [a, b, c] = await Promise.all([0, 1, 2].map(async () => await startReplica(t, env)))
  t.comment(`three replicas up in ${((Date.now() - starting) / 1000).toFixed(1)} s`)

  // The socket of the client that submits, on A; it moves to B when A dies, with the same clientId.
  const clientId = `kill-test-${randomUUID()}`
  const frames: any[] = []
  const listen = async (url: string): Promise<WebSocket> => {
    const socket = new WebSocket(`${url.replace('http', 'ws')}/ws?clientId=${clientId}`)
    socket.on('message', (data, binary) => { if (!binary) frames.push(JSON.parse(data.toString())) })
    socket.on('error', () => {})
    await new Promise((resolve, reject) => { socket.once('open', resolve); socket.once('close', reject) })
    t.teardown(() => { socket.terminate() })
    return socket
  }
  const onA = await listen(a.url)
  const socketClosed = new Promise<void>(resolve => { onA.once('close', () => { resolve() }) })

  // Local ComfyUI keeps a client's prompt_id as given: a name, a UUID, or none (the server's own).
  const chosen: Array<string | undefined> = [undefined, `render-${randomUUID()}`, randomUUID(), undefined, `render-${randomUUID()}`, 'render-last', undefined]
  const acknowledged: Array<{ promptId: string, chosen: boolean }> = []
  for (const [i, promptId] of chosen.entries()) {
    const body = { prompt: defaultGraph(FIRST_SEED + i, 64, 64, 40), client_id: clientId, ...(promptId === undefined ? {} : { prompt_id: promptId }) }
    const submitted = await postJson(`${a.url}/prompt`, body)
    t.equal(submitted.status, 200, `prompt ${i} acknowledged by A`)
    if (promptId !== undefined) t.equal(submitted.body.prompt_id, promptId, `prompt ${i} keeps the client's id`)
    acknowledged.push({ promptId: submitted.body.prompt_id, chosen: promptId !== undefined })
  }
  // Each client waits on its prompt through A; when A is gone, half retry on B and half on C.
  const replicas = [a.url, b.url, c.url]
  const waiting = Promise.all(acknowledged.map(async ({ promptId }, i) => await waitForResult(replicas, 1 + i % 2, promptId, 60_000)))
  // Killed right after its last acknowledgement: whatever A answered 200 for was already shared.
  await a.kill()
  const jobs = cloud.app.simulator.jobs(key)
  t.ok(jobs.some(job => job.status === 'in_progress') && jobs.some(job => job.status === 'pending'),
    `A died while jobs ran and waited (${jobs.map(job => job.status).join(', ')})`)
  await socketClosed

  // Once B's socket has its first status frame (its cloud socket is open), the prompts the cloud has
  // not finished yet must end on it. Cloud jobs are told apart by their graph's seed.
  const heardBefore = frames.length
  const onB = await listen(b.url)
  await waitFor(async () => frames.slice(heardBefore).some(f => f.type === 'status') ? true : undefined, 10_000, 'the status frame on B')
  const seedOf = (job: { workflow?: { prompt?: Record<string, any> } }): number => job.workflow?.prompt?.['3']?.inputs?.seed
  const unfinished = cloud.app.simulator.jobs(key).filter(job => job.status === 'pending' || job.status === 'in_progress')
    .map(job => acknowledged[seedOf(job) - FIRST_SEED].promptId)

  const results = await waiting
  for (const [i, result] of results.entries()) {
    const { promptId, chosen } = acknowledged[i]
    const what = `prompt ${i} (${chosen ? `the client's id ${promptId}` : 'the server\'s id'})`
    if (!t.ok(result, `${what}: its client got a finished history entry within 60 s`)) continue
    const { entry, via } = result!
    t.not(via, a.url, `${what}: answered by a surviving replica`)
    t.equal(entry.prompt[1], promptId, `${what}: its history entry carries the id the client knows`)
    t.match(entry.prompt[3], { client_id: clientId }, `${what}: and the extra_data it was submitted with`)
    t.ok(Object.values(entry.outputs).some((output: any) => output.images?.length > 0), `${what}: with its images`)
    t.equal(entry.status.status_str, 'success', `${what}: a success`)
  }

  const unheard = (): string[] => {
    const ends = new Set(frames.slice(heardBefore).filter(f => f.type === 'executing' && f.data?.node === null).map(f => f.data.prompt_id as string))
    return unfinished.filter(promptId => !ends.has(promptId))
  }
  await waitFor(async () => unheard().length === 0 ? true : undefined, 10_000).catch(() => {})
  t.ok(unfinished.length > 0, `${unfinished.length} prompts were still running or waiting when the client reached B`)
  t.same(unheard(), [], 'the client\'s socket on B heard the end of each, under the id it knows')
  onB.terminate()
})

t.test('SIGKILL a single proxy with STATE_FILE and start it again: what it acknowledged still resolves', async t => {
  const key = testKey()
  const cloud = await startSimulator({ apiKeys: [key], host: '127.0.0.1', port: 0, stepMs: 50, concurrency: 2 })
  t.teardown(async () => { await cloud.close() })
  const dir = mkdtempSync(join(tmpdir(), 'ccp-kill-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const env = { COMFY_CLOUD_URL: cloud.url, COMFY_CLOUD_API_KEY: key, STATE_FILE: join(dir, 'state.db') }

  const first = startServerProcess(t, env)
  const before = await first.listening()
  // Not UUIDs: the cloud mints its own ids, and only the proxy's file knows which prompt each is.
  // One finishes in 2 s, one runs for a minute (still in /queue after the restart; the simulator stops it at the end).
  const quick = await postJson(`${before}/prompt`, { prompt: defaultGraph(FIRST_SEED, 64, 64, 40), prompt_id: 'render-before-the-crash', client_id: 'crash-client' })
  const long = await postJson(`${before}/prompt`, { prompt: defaultGraph(FIRST_SEED + 1, 64, 64, 1200), prompt_id: 'long-render', client_id: 'crash-client', extra_data: { note: 'kept' } })
  t.same([quick.status, long.status], [200, 200], 'both acknowledged')
  await first.kill() // no graceful close: what the file holds is what was written before each 200

  const second = startServerProcess(t, env)
  const after = await second.listening()
  const queue = (await getJson(`${after}/queue`)).body
  const queued = [...queue.queue_running, ...queue.queue_pending].find((item: any[]) => item[1] === 'long-render')
  t.equal(queued?.[0], long.body.number, '/queue shows the running prompt under the client\'s id and number')
  t.match(queued?.[3], { client_id: 'crash-client', note: 'kept' }, 'with its extra_data')
  const entry = await waitFor(async () => (await getJson(`${after}/history/render-before-the-crash`)).body['render-before-the-crash'], 30_000, 'the entry after the restart')
  t.equal(entry.status.status_str, 'success', 'the finished prompt resolves under the client\'s id')
  t.equal(entry.prompt[0], quick.body.number, 'with the number POST /prompt answered')
  t.ok(Object.values(entry.outputs).some((output: any) => output.images?.length > 0), 'and its images')
})
