/**
 * Polling costs nothing (issue 9): cloud calls grow with jobs, not with polls. Real loopback HTTP
 * against the simulator with Comfy Cloud's limits on (600 requests per minute per key, 100 queued
 * jobs) and the proxy's default cloud budget.
 */
import t, { type Test } from 'tap'
import WebSocket from 'ws'
import { loadConfig } from '../../src/config.js'
import { defaultGraph, getJson, postJson, startStack, type Stack } from '../helpers.js'

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }
const defaults = loadConfig({})
const CLOUD_LIMITS = { rateLimit: 600, queueLimit: 100 }
/**
 * Freshness without a WebSocket is LIST_TTL_MS plus one cloud call (rule 2). Measured from the job's
 * end to the sending of the first poll that got the entry; the margin stands for "one cloud call" plus
 * the 100 ms poll interval on a shared, loaded machine (figures from a quiet one: docs/benchmarks.md).
 */
const FRESHNESS_MARGIN_MS = 2_000

interface Workload {
  /** pollers of GET /history/{id}, spread over the jobs */
  idPollers: number
  jobs: number
  seconds: number
}

interface Outcome {
  seconds: number
  cloudReads: number
  readsByRoute: Map<string, number>
  finished: number
  localRequests: number
  violations: string[]
  lagsMs: number[]
}

function cloudRoute (url: string): string {
  const path = url.split('?')[0]
  return path.replace(/^\/api\/jobs\/[^/]+$/, '/api/jobs/:id') + (path === '/api/jobs' ? `?${new URLSearchParams(url.split('?')[1]).get('status') ?? ''}` : '')
}

/** Polls at 10 Hz until `end`: `check` judges each answer. */
async function pollLoop (end: number, poll: () => Promise<void>): Promise<void> {
  while (Date.now() < end) {
    await poll()
    await sleep(100)
  }
}

/**
 * The workload of the issue: pollers of their own jobs' /history/{id}, 10 of GET /prompt and 5 of
 * GET /history, all at 10 Hz, while the jobs run and finish.
 */
async function runWorkload (t: Test, stack: Stack, workload: Workload): Promise<Outcome> {
  const sim = stack.simulator.app.simulator
  const violations: string[] = []
  const ids: string[] = []
  for (let i = 0; i < workload.jobs; i++) {
    // Between about 0.4 and 3 s of work each, five at once: some finish early, some late, some not at all.
    const submitted = await postJson(`${stack.url}/prompt`, { prompt: defaultGraph(i, 64, 64, 10 + i * 3) })
    if (submitted.status !== 200) throw new Error(`submit ${i}: ${submitted.status} ${submitted.text}`)
    ids.push(submitted.body.prompt_id)
  }
  const before = sim.requests.length
  const started = Date.now()
  const end = started + workload.seconds * 1000
  const firstSeen = new Map<string, number>()
  const submitted = new Set(ids)
  let localRequests = 0
  const statusOf = (id: string): string | undefined => sim.jobs(stack.key).find(job => job.id === id)?.status

  const idPoller = async (id: string): Promise<void> => {
    await pollLoop(end, async () => {
      const asked = Date.now()
      const { status, body } = await getJson(`${stack.url}/history/${id}`)
      localRequests++
      if (status !== 200) return void violations.push(`/history/{id}: ${status}`)
      const entry = body[id]
      if (entry === undefined) {
        if (Object.keys(body).length !== 0) violations.push(`/history/{id}: ${JSON.stringify(body).slice(0, 80)}`)
        if (firstSeen.has(id)) violations.push(`${id}: the entry vanished`)
        return
      }
      if (statusOf(id) !== 'completed') violations.push(`${id}: an entry while the cloud says ${statusOf(id) ?? 'nothing'}`)
      if (entry.status?.status_str !== 'success' || entry.prompt?.[1] !== id) violations.push(`${id}: a wrong entry`)
      // When the first poll that got the entry was sent: the answer's own travel time does not count against freshness.
      if (!firstSeen.has(id) || firstSeen.get(id)! > asked) firstSeen.set(id, asked)
    })
  }
  const promptPoller = async (): Promise<void> => {
    await pollLoop(end, async () => {
      const { status, body } = await getJson(`${stack.url}/prompt`)
      localRequests++
      const remaining = body?.exec_info?.queue_remaining
      if (status !== 200 || !Number.isInteger(remaining) || remaining < 0 || remaining > workload.jobs) violations.push(`/prompt: ${status} ${JSON.stringify(body)}`)
    })
  }
  const historyPoller = async (): Promise<void> => {
    let seen = 0
    await pollLoop(end, async () => {
      const { status, body } = await getJson(`${stack.url}/history`)
      localRequests++
      if (status !== 200) return void violations.push(`/history: ${status}`)
      const keys = Object.keys(body)
      if (keys.length < seen) violations.push(`/history: ${seen} entries, then ${keys.length}`)
      seen = keys.length
      for (const id of keys) {
        if (!submitted.has(id) || body[id].status.status_str !== 'success') violations.push(`/history: a wrong entry ${id}`)
      }
    })
  }
  await Promise.all([
    ...Array.from({ length: workload.idPollers }, async (_, i) => { await idPoller(ids[i % ids.length]) }),
    ...Array.from({ length: 10 }, promptPoller),
    ...Array.from({ length: 5 }, historyPoller)
  ])
  const seconds = (Date.now() - started) / 1000
  const reads = sim.requests.slice(before).filter(request => request.method === 'GET')
  const readsByRoute = new Map<string, number>()
  for (const request of reads) readsByRoute.set(cloudRoute(request.url), (readsByRoute.get(cloudRoute(request.url)) ?? 0) + 1)
  // Freshness (rule 2): a job that finished is in /history/{id} within LIST_TTL_MS and one call of its end.
  const lagsMs: number[] = []
  for (const job of sim.jobs(stack.key)) {
    if (job.status !== 'completed' || job.execution_end_time === undefined) continue
    const seen = firstSeen.get(job.id)
    if (seen === undefined) {
      if (job.execution_end_time < end - defaults.listTtlMs - FRESHNESS_MARGIN_MS) violations.push(`${job.id}: finished ${end - job.execution_end_time} ms before the end, never seen`)
      continue
    }
    lagsMs.push(seen - job.execution_end_time)
  }
  const finished = sim.jobs(stack.key).filter(job => job.status === 'completed').length
  t.comment(`${workload.idPollers} /history/{id} pollers, 10 /prompt, 5 /history for ${seconds.toFixed(1)} s: ${localRequests} local requests, ` +
    `${reads.length} cloud reads (${(reads.length / seconds).toFixed(2)}/s; ${[...readsByRoute].map(([route, n]) => `${route} ${n}`).join(', ')}), ` +
    `${finished} jobs finished, freshness lag max ${Math.max(0, ...lagsMs)} ms`)
  return { seconds, cloudReads: reads.length, readsByRoute, finished, localRequests, violations, lagsMs }
}

async function noRateLimits (t: Test, stack: Stack): Promise<void> {
  const metrics = await (await fetch(`${stack.url}/metrics`)).text()
  t.match(metrics, /comfy_proxy_cloud_rate_limited_total 0/, 'the cloud never answered 429')
  t.notMatch(metrics, /comfy_proxy_cloud_request_duration_seconds_count\{[^}]*outcome="429"/, 'no call came back 429')
}

function judge (t: Test, outcome: Outcome): void {
  t.same(outcome.violations.slice(0, 10), [], 'every answer right')
  const bound = 3 * outcome.seconds + outcome.finished
  t.ok(outcome.cloudReads <= bound, `${outcome.cloudReads} cloud reads <= 3/s x ${outcome.seconds.toFixed(1)} s + ${outcome.finished} finished jobs (${bound.toFixed(0)})`)
  t.ok(outcome.finished >= 3, `${outcome.finished} jobs finished during the run`)
  t.ok(outcome.lagsMs.every(lag => lag <= defaults.listTtlMs + FRESHNESS_MARGIN_MS), `every finished job seen within LIST_TTL_MS + one call (max ${Math.max(0, ...outcome.lagsMs)} ms)`)
}

t.test('20 pollers of their own jobs, 10 of /prompt and 5 of /history: at most 3 cloud reads per second plus one per finished job', async t => {
  const stack = await startStack(t, { cloudMaxRps: defaults.cloudMaxRps }, { ...CLOUD_LIMITS, concurrency: 5, stepMs: 40 })
  const outcome = await runWorkload(t, stack, { idPollers: 20, jobs: 20, seconds: 10 })
  judge(t, outcome)
  await noRateLimits(t, stack)
})

t.test('200 pollers cost no more', async t => {
  const stack = await startStack(t, { cloudMaxRps: defaults.cloudMaxRps }, { ...CLOUD_LIMITS, concurrency: 5, stepMs: 40 })
  const outcome = await runWorkload(t, stack, { idPollers: 200, jobs: 20, seconds: 6 })
  judge(t, outcome)
  await noRateLimits(t, stack)
})

t.test('a client that hears executing {node: null} on /ws reads its entry at once; a poller within a second of the event', async t => {
  // The shared list is an hour old at most: only the relayed events can explain a fresh answer.
  const stack = await startStack(t, { listTtlMs: 3_600_000 }, { stepMs: 20 })
  const socket = new WebSocket(`${stack.url.replace('http', 'ws')}/ws?clientId=listener`)
  t.teardown(() => { socket.close() })
  await new Promise(resolve => socket.once('message', resolve))
  const events = new Map<string, number>()
  const readAtOnce = new Map<string, Promise<unknown>>()
  socket.on('message', (data, isBinary) => {
    if (isBinary) return
    const frame = JSON.parse(data.toString())
    if (frame.type === 'executing' && frame.data.node === null) {
      events.set(frame.data.prompt_id, Date.now())
      readAtOnce.set(frame.data.prompt_id, getJson(`${stack.url}/history/${frame.data.prompt_id}`).then(answer => answer.body))
    }
  })
  for (let i = 0; i < 3; i++) {
    const { body } = await postJson(`${stack.url}/prompt`, { prompt: defaultGraph(i, 64, 64, 10), client_id: 'listener' })
    const id = body.prompt_id as string
    t.same((await getJson(`${stack.url}/history/${id}`)).body, {}, 'unfinished: {}')
    // A poller that does not listen: every poll sent after the event passed through the proxy gets the entry.
    let lateEmpty = 0
    let seen = false
    const deadline = Date.now() + 10_000
    while (!seen && Date.now() < deadline) {
      const asked = Date.now()
      const answer = await getJson(`${stack.url}/history/${id}`)
      seen = answer.body[id] !== undefined
      if (!seen && events.has(id) && asked > events.get(id)!) lateEmpty++
      if (!seen) await sleep(50)
    }
    t.ok(seen && events.has(id), 'the poller saw the entry and the listener the event')
    t.equal(lateEmpty, 0, 'no poll sent after the event answered {}')
    const atOnce = await readAtOnce.get(id) as Record<string, unknown>
    t.ok(atOnce[id], 'the listener read the entry the moment the event came')
  }
})

t.test('unfinished, finished and unknown ids: {} without a call, one call then the cache, one call then "not there" for LIST_TTL_MS', async t => {
  const stack = await startStack(t, { listTtlMs: 300 }, { stepMs: 5 })
  const sim = stack.simulator.app.simulator
  const count = (path: string): number => sim.requests.filter(request => request.url.split('?')[0] === path).length
  const { body } = await postJson(`${stack.url}/prompt`, { prompt: defaultGraph(1, 64, 64, 200) })
  const running = body.prompt_id as string
  for (let i = 0; i < 20; i++) t.same((await getJson(`${stack.url}/history/${running}`)).body, {})
  t.equal(count(`/api/jobs/${running}`), 0, 'a job submitted here is unfinished: no detail call')
  t.ok(count('/api/jobs') <= 1, 'twenty polls, at most one shared list')

  const done = sim.seedJob(stack.key, { status: 'completed', outputs: {} })
  for (let i = 0; i < 10; i++) t.ok((await getJson(`${stack.url}/history/${done.id}`)).body[done.id])
  t.equal(count(`/api/jobs/${done.id}`), 1, 'a finished job: one call, then the cache')

  const unknown = '00000000-0000-4000-8000-000000000001'
  for (let i = 0; i < 10; i++) t.same((await getJson(`${stack.url}/history/${unknown}`)).body, {})
  t.equal(count(`/api/jobs/${unknown}`), 1, 'an unknown id: one call, then "not there"')
  await sleep(350)
  await getJson(`${stack.url}/history/${unknown}`)
  t.equal(count(`/api/jobs/${unknown}`), 2, 'asked again after LIST_TTL_MS')

  const elsewhere = sim.seedJob(stack.key, { status: 'pending' })
  for (let i = 0; i < 10; i++) t.same((await getJson(`${stack.url}/history/${elsewhere.id}`)).body, {})
  t.equal(count(`/api/jobs/${elsewhere.id}`), 1, 'a job queued elsewhere: one call teaches the tracker it is unfinished')
})

t.test('GET /prompt and GET /queue are answered from the tracker and one shared call', async t => {
  const stack = await startStack(t, { listTtlMs: 60_000 }, { stepMs: 5 })
  const sim = stack.simulator.app.simulator
  const before = sim.requests.length
  const answers = await Promise.all(Array.from({ length: 30 }, async (_, i) => await getJson(`${stack.url}/${i % 2 === 0 ? 'prompt' : 'queue'}`)))
  t.ok(answers.every(answer => answer.status === 200))
  const calls = sim.requests.slice(before)
  t.ok(calls.length <= 2, `30 reads of /prompt and /queue: ${calls.length} cloud calls (${calls.map(call => call.url).join(', ')})`)
  t.notOk(calls.some(call => call.url === '/api/prompt'), 'GET /prompt never asks /api/prompt')
  for (let i = 0; i < 10; i++) t.same((await getJson(`${stack.url}/queue`)).body, { queue_running: [], queue_pending: [] })
  t.equal(sim.requests.length - before, calls.length, 'an empty queue the tracker knows of costs nothing')
  const metrics = await (await fetch(`${stack.url}/metrics`)).text()
  t.match(metrics, /comfy_proxy_local_answers_total\{route="\/queue"\} [1-9]/, 'requests answered without a call are counted')
  t.match(metrics, /comfy_proxy_jobs_tracked\{state="unfinished"\} 0/)
  t.match(metrics, /comfy_proxy_cloud_budget_wait_seconds_count\{priority="read",outcome="granted"\} [1-9]/)
})
