/**
 * The benchmark harness: starts the simulator, the proxy and the comparison servers in child
 * processes (bench/servers.ts), seeds realistic finished jobs, runs every case with autocannon
 * from this process, and reports each proxy route side by side with the simulator answering the
 * same data directly (and a plain @fastify/http-proxy hop where that is the fair comparison).
 * Results go to a JSON file and a Markdown page (bench/report.ts).
 */
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, platform, release, totalmem } from 'node:os'
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { request } from 'undici'
import type { JobDetail } from '../src/simulator/app.js'
import { cpuSnapshot, otherCores } from './cpu.js'
import { ChildServer } from './ipc.js'
import { apiGraph } from './data.js'
import { getEach, mergeRuns, runLoad, runPollers, runWorkload, summarize, type LatencySummary, type LoadResult, type LoadRun, type LoadSpec, type PollResult } from './load.js'
import { evaluateTargets, renderMarkdown, type Target } from './report.js'

export interface BenchOptions {
  /** measured seconds per case, after warmupS of the same load */
  durationS: number
  warmupS: number
  /** autocannon connections */
  connections: number
  /**
   * The cases of one scenario run in turn, `rounds` times, each round durationS / rounds seconds, so that
   * a drift in the machine's background load hits every row of a comparison alike.
   */
  rounds: number
  /** measured seconds of each one-connection (unloaded latency) case, in unloadedRounds rounds */
  unloadedDurationS: number
  unloadedRounds: number
  /** finished jobs seeded for the history cases */
  seedJobs: number
  /** max_items of the GET /history case */
  historyItems: number
  /** approximate JSON size of each seeded job's workflow (API graph + UI workflow) */
  workflowBytes: number
  /** edge of the real PNG output served by the /view cases */
  imageSize: number
  /** jobs seeded to fill the history cache; undefined: the proxy's default CACHE_MAX_ENTRIES */
  fillJobs: number | undefined
  pollClients: number
  pollIntervalMs: number
  pollDurationS: number
  /** finished jobs already in the polled account's history */
  pollSeedJobs: number
  /** jobs submitted when polling starts; they run one at a time and finish during the run */
  pollJobs: number
  pollJobSteps: number
  /** the issue-9 workload, once per entry: that many GET /history/{id} pollers (plus 10 of /prompt and 5 of /history) */
  workloadIdPollers: number[]
  /** jobs submitted through the proxy before each workload run; they run one at a time */
  workloadJobs: number
  workloadJobSteps: number
  workloadDurationS: number
  /** sets in a row on each proxy's state store, the write alone (after the POST /prompt cases) */
  storeWrites: number
  /** idle seconds before the settled memory readings (V8 gives back heap it grew during the fill only once idle) */
  settleS: number
  /** simulator milliseconds per sampler step (its default is 50) */
  stepMs: number
  /** the whole run is abandoned after this long */
  budgetS: number
  /** where to write the JSON results and the Markdown page (omit to write nothing) */
  resultsPath?: string
  docsPath?: string
  log: (line: string) => void
}

export const DEFAULT_OPTIONS: BenchOptions = {
  durationS: 6,
  warmupS: 1,
  connections: 10,
  rounds: 2,
  unloadedDurationS: 6,
  unloadedRounds: 3,
  seedJobs: 300,
  historyItems: 200,
  workflowBytes: 10_000,
  imageSize: 1024,
  fillJobs: undefined,
  pollClients: 100,
  pollIntervalMs: 100,
  pollDurationS: 10,
  pollSeedJobs: 10,
  pollJobs: 5,
  pollJobSteps: 40,
  workloadIdPollers: [20, 200],
  workloadJobs: 20,
  workloadJobSteps: 10,
  workloadDurationS: 10,
  storeWrites: 20_000,
  settleS: 5,
  stepMs: 50,
  budgetS: 300,
  log: () => {}
}

export type ServerKind = 'proxy' | 'simulator' | 'http-proxy hop'

export interface CaseResult extends LoadResult {
  id: string
  group: string
  server: ServerKind
  /** what the load generator requested */
  request: string
  note: string
  connections: number
  /** cloud calls a client request should cost (undefined: depends on timing) */
  expectedCloudCalls?: number
  /** measured runs pooled into this row (the scenario's cases ran in turn, round after round) */
  rounds: number
  /** peak RSS of the default proxy process once this case's last round was over */
  proxyPeakRss: number
  /** cores busy with other processes of the machine during the measured run (noise; NaN off Linux) */
  otherCpuCores: number
  /** HTTP requests the simulator received during the measured run */
  cloudCalls: number
  cloudCallsPerRequest: number
  cloudCallsByRoute: Record<string, number>
}

export interface PollingResult extends PollResult {
  cloudCalls: number
  cloudCallsPerSecond: number
  cloudCallsByRoute: Record<string, number>
  jobsFinishedDuringRun: number
  jobsUnfinishedAtEnd: number
  listTtlMs: number
  otherCpuCores: number
}

export interface WorkloadResult {
  idPollers: number
  promptPollers: number
  historyPollers: number
  intervalMs: number
  durationS: number
  /** answered local requests by route */
  requests: Record<string, number>
  localRequests: number
  latencyMs: LatencySummary
  errors: number
  cloudCalls: number
  cloudCallsPerSecond: number
  cloudCallsByRoute: Record<string, number>
  localRequestsPerCloudCall: number
  jobsFinished: number
  /** from a job's end to the sending of the first poll that got its entry */
  freshnessLagMs: LatencySummary
  listTtlMs: number
  cloudMaxRps: number
  otherCpuCores: number
}

export interface MemorySample { rss: number, heapUsed: number, heapTotal: number, external: number, arrayBuffers: number, maxRss: number, gcExposed: number }

export interface BenchResults {
  version: 1
  date: string
  /** the commit measured (short hash), marked when src/ or bench/ had uncommitted changes */
  commit?: string
  machine: { cpu: string, cores: number, node: string, os: string, memoryBytes: number, loadAverageAtStart: number[], loadAverageAtEnd: number[] }
  options: Omit<BenchOptions, 'log' | 'resultsPath' | 'docsPath'>
  proxyConfig: { cacheMaxEntries: number, cacheMaxBytes: number, listTtlMs: number, logLevel: string, cloudConnections: number }
  totalSeconds: number
  cases: CaseResult[]
  polling: PollingResult
  workload: WorkloadResult[]
  /** one state store write (`set`) alone, by store: memory, file, redis */
  storeWrites: Record<string, LatencySummary>
  memory: {
    /** the default proxy that served every case, then had its cache filled (the end of the run) */
    main: { afterStart: MemorySample, afterCases: MemorySample, endOfRun: MemorySample, endOfRunSettled: MemorySample, cache: CacheStats }
    /** a fresh default proxy whose only work was filling its cache */
    fresh: { afterStart: MemorySample, cacheFull: MemorySample, cacheFullSettled: MemorySample, cache: CacheStats }
    /** bytes of local JSON per seeded history entry */
    entryBytes: number
  }
  /** warnings and errors the proxies logged, by message */
  logs: Record<string, { lines: number, problems: number, kinds: Record<string, number> }>
  targets: Target[]
}

export interface CacheStats { entries: number, bytes: number, jobsRequested: number, found: number }

type Counts = { total: number, byRoute: Record<string, number> }

function countsBetween (before: Counts, after: Counts): Counts {
  const byRoute: Record<string, number> = {}
  for (const [route, n] of Object.entries(after.byRoute)) {
    const delta = n - (before.byRoute[route] ?? 0)
    if (delta > 0) byRoute[route] = delta
  }
  return { total: after.total - before.total, byRoute }
}

function measuredCommit (): string | undefined {
  const git = (...args: string[]): string => execFileSync('git', args, { cwd: fileURLToPath(new URL('.', import.meta.url)), encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
  try {
    const dirty = git('status', '--porcelain', '--', ':/src', ':/bench') !== ''
    return `${git('rev-parse', '--short', 'HEAD')}${dirty ? ' with uncommitted changes' : ''}`
  } catch {
    return undefined
  }
}

function cpuModel (): string {
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8').split('\n').find(l => l.startsWith('model name'))
    if (line !== undefined) return line.split(':').slice(1).join(':').trim()
  } catch {}
  return cpus()[0]?.model ?? 'unknown'
}

/**
 * Compiled, the servers run from dist-bench/, where src/config.ts looks for its schema at
 * dist-bench/config/schema.json: put a copy there. From the TypeScript sources nothing is needed.
 */
function serverScript (): URL {
  const compiled = import.meta.url.endsWith('.js')
  if (compiled) {
    const target = new URL('../config/schema.json', import.meta.url)
    mkdirSync(dirname(fileURLToPath(target)), { recursive: true })
    copyFileSync(new URL('../../config/schema.json', import.meta.url), target)
  }
  return new URL(compiled ? './servers.js' : './servers.ts', import.meta.url)
}

async function getText (url: string): Promise<{ status: number, text: string }> {
  const response = await request(url, { signal: AbortSignal.timeout(30_000) })
  return { status: response.statusCode, text: await response.body.text() }
}

async function postJson (url: string, body: unknown): Promise<{ status: number, text: string }> {
  const response = await request(url, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' }, signal: AbortSignal.timeout(30_000) })
  return { status: response.statusCode, text: await response.body.text() }
}

/** Waits until the proxy reports no unfinished job (bounded: a run left with queued jobs starts anyway). */
async function waitForIdle (origin: string): Promise<void> {
  const deadline = Date.now() + 60_000
  while (Date.now() < deadline) {
    const { text } = await getText(`${origin}/prompt`)
    if ((JSON.parse(text) as { exec_info?: { queue_remaining?: number } }).exec_info?.queue_remaining === 0) return
    await sleep(200)
  }
}

function metricValue (text: string, name: string): number {
  const line = text.split('\n').find(l => l.startsWith(`${name} `) || l.startsWith(`${name}{`))
  return line === undefined ? Number.NaN : Number(line.split(' ').pop())
}

interface CaseSpec {
  id: string
  group: string
  server: ServerKind
  request: string
  note?: string
  load: LoadSpec
  durationS?: number
  rounds?: number
  calls?: number
  /** the simulator this case's cloud calls reach (default: the shared one) */
  cloud?: ChildServer
  /** drop the jobs the case queued in its simulator after each run */
  resetCloud?: boolean
}

/**
 * The state-store cases' simulator never runs a job (one step lasts an hour): what they measure is
 * the submit, and the simulator is reset after each run so its queue does not grow from run to run.
 */
const QUEUED_STEP_MS = 3_600_000

/** What every state-store case submits: a small graph the simulator accepts. */
const STORE_CASE_BODY = JSON.stringify({ prompt: apiGraph(0, 0, 64, 64, 1), client_id: 'bench-store' })

/**
 * POST /prompt through three proxies that differ only in their state store (issue 13: with STATE_FILE
 * the submit may grow by at most a millisecond), under load and over one connection (its latency alone).
 */
function storeCases (urls: { memory: string, file: string, redis?: string }, cloud: ChildServer, connections: number, unloaded: { durationS: number, rounds: number }): CaseSpec[] {
  const stores: Array<[string, string | undefined, string]> = [['memory', urls.memory, 'memory store'], ['file', urls.file, 'STATE_FILE'], ['redis', urls.redis, 'REDIS_URL']]
  return [connections, 1].flatMap(conns => stores.flatMap(([store, origin, label]) => origin === undefined
    ? []
    : [{
        id: `prompt-submit-${store}${conns === 1 ? '-1conn' : ''}`,
        group: `POST /prompt, state store${conns === 1 ? ', 1 connection' : ''}`,
        server: 'proxy' as const,
        request: `POST /prompt (${label})`,
        note: conns === 1 ? 'unloaded latency' : 'one cloud POST /api/prompt each',
        load: { origin, paths: ['/prompt'], body: STORE_CASE_BODY, connections: conns },
        calls: 1,
        cloud,
        resetCloud: true,
        ...(conns === 1 ? unloaded : {})
      }]))
}

export async function runBenchmarks (overrides: Partial<BenchOptions> = {}): Promise<BenchResults> {
  const options: BenchOptions = { ...DEFAULT_OPTIONS, ...overrides }
  const { log } = options
  const startedAt = performance.now()
  const machine = {
    cpu: cpuModel(),
    cores: cpus().length,
    node: process.version,
    os: `${platform()} ${release()}`,
    memoryBytes: totalmem(),
    loadAverageAtStart: loadavg().map(v => Math.round(v * 100) / 100),
    loadAverageAtEnd: [] as number[]
  }
  const script = serverScript()
  const execArgv = [...process.execArgv, '--expose-gc']
  const sim = new ChildServer('sim', script, execArgv)
  const proxy = new ChildServer('proxy', script, execArgv)
  const aux = new ChildServer('aux', script, execArgv)
  // started with the others (it idles until the end), so its start-up overlaps theirs
  const freshProxy = new ChildServer('proxy', script, execArgv)
  const storeSim = new ChildServer('sim', script, execArgv)
  const stores = new ChildServer('stores', script, execArgv)
  const children = [sim, proxy, aux, freshProxy, storeSim, stores]
  const pids = (): Array<number | undefined> => [process.pid, ...children.map(child => child.pid)]
  let timedOut = false
  const watchdog = setTimeout(() => {
    timedOut = true
    log(`the run exceeded ${options.budgetS} s: stopping`)
    for (const child of children) void child.stop()
  }, options.budgetS * 1000)

  try {
    const key = `comfyui-bench-${randomBytes(12).toString('hex')}`
    const pollKey = `comfyui-bench-${randomBytes(12).toString('hex')}`
    const workKey = `comfyui-bench-${randomBytes(12).toString('hex')}`
    const storeKey = `comfyui-bench-${randomBytes(12).toString('hex')}`
    const [{ url: simUrl }, { url: storeSimUrl }] = await Promise.all([
      sim.call<{ url: string }>('start', { keys: [key, pollKey, workKey], stepMs: options.stepMs, concurrency: 1 }),
      storeSim.call<{ url: string }>('start', { keys: [storeKey], stepMs: QUEUED_STEP_MS, concurrency: 1 })
    ])
    const [proxyStart, auxStart, freshStart, storeUrls] = await Promise.all([
      proxy.call<{ url: string, config: BenchResults['proxyConfig'] }>('start', { cloudUrl: simUrl, key }),
      aux.call<{ uncachedUrl: string, pollUrl: string, workUrl: string, hopUrl: string, workConfig: { listTtlMs: number, cloudMaxRps: number } }>('start', { cloudUrl: simUrl, key, pollKey, workKey }),
      freshProxy.call<{ url: string }>('start', { cloudUrl: simUrl, key }),
      stores.call<{ memory: string, file: string, redis?: string }>('start', { cloudUrl: storeSimUrl, key: storeKey })
    ])
    if (storeUrls.redis === undefined) log('redis-server is not installed: POST /prompt with REDIS_URL is not measured')
    // A first submit each (schemas compiled, statements prepared, Redis connected), so that no case starts cold.
    for (const url of Object.values(storeUrls)) {
      const primed = await postJson(`${url}/prompt`, JSON.parse(STORE_CASE_BODY))
      if (primed.status !== 200) throw new Error(`priming POST /prompt failed: ${primed.status} ${primed.text.slice(0, 200)}`)
    }
    await storeSim.call('reset')
    const freshUrl = freshStart.url
    const proxyUrl = proxyStart.url
    const { uncachedUrl, pollUrl, workUrl, hopUrl } = auxStart
    log(`servers: simulator ${simUrl}, proxy ${proxyUrl} (pid ${proxy.pid ?? '?'}), uncached proxy ${uncachedUrl}, hop ${hopUrl}, polling proxy ${pollUrl}`)
    const afterStart = await proxy.call<MemorySample>('memory')

    // A real job renders the PNG the /view cases serve, and gives the shape of every seeded job.
    const template = await sim.call<JobDetail>('realJob', { key, width: options.imageSize, height: options.imageSize, steps: 4 })
    const image = (template.outputs?.['9']?.images?.[0] ?? {}) as { filename?: string }
    if (typeof image.filename !== 'string') throw new Error('the template job has no image output')
    const now = Date.now()
    const spacingMs = 7_000
    const { ids } = await sim.call<{ ids: string[] }>('seed', {
      key, template, spec: { count: options.seedJobs, startTime: now - (options.seedJobs + 1) * spacingMs, spacingMs, workflowBytes: options.workflowBytes }
    })
    await sim.call('seed', { key: pollKey, template, spec: { count: options.pollSeedJobs, startTime: now - (options.pollSeedJobs + 1) * spacingMs, spacingMs, workflowBytes: 0 } })
    log(`seeded ${ids.length} finished jobs (~${options.workflowBytes} B workflows each), PNG ${image.filename}`)

    // Warm the default proxy's history cache with every seeded job.
    const warm = await getText(`${proxyUrl}/history?max_items=${options.seedJobs + 1}`)
    if (warm.status !== 200) throw new Error(`warming /history failed: ${warm.status} ${warm.text.slice(0, 200)}`)
    const entryBytes = Math.round(warm.text.length / Math.max(1, Object.keys(JSON.parse(warm.text) as object).length))

    const historyPaths = ids.map(id => `/history/${id}`)
    const jobPaths = ids.map(id => `/api/jobs/${id}`)
    const keyHeader = { 'x-api-key': key }
    const c = options.connections
    const viewQuery = `filename=${encodeURIComponent(image.filename)}&subfolder=&type=output`
    const listQuery = `status=completed,failed,cancelled&sort_by=create_time&sort_order=desc&offset=0&limit=${options.historyItems}`
    // The proxy loads sharp on its first preview: that happens here, so that no preview case starts cold.
    const preview = await getText(`${proxyUrl}/view?${viewQuery}&preview=webp;50`)
    if (preview.status !== 200) throw new Error(`priming a preview failed: ${preview.status} ${preview.text.slice(0, 200)}`)
    const specs: CaseSpec[] = [
      { id: 'history-id-cached', group: 'GET /history/{id}', server: 'proxy', request: 'GET /history/{id} (warm cache)', note: `${ids.length} ids in turn`, load: { origin: proxyUrl, paths: historyPaths, connections: c }, calls: 0 },
      { id: 'history-id-uncached', group: 'GET /history/{id}', server: 'proxy', request: 'GET /history/{id} (CACHE_MAX_ENTRIES=0)', note: 'one cloud GET /api/jobs/{id} each', load: { origin: uncachedUrl, paths: historyPaths, connections: c }, calls: 1 },
      { id: 'history-id-hop', group: 'GET /history/{id}', server: 'http-proxy hop', request: 'GET /api/jobs/{id}', note: 'same cloud call, key injected, no translation', load: { origin: hopUrl, paths: jobPaths, connections: c }, calls: 1 },
      { id: 'history-id-direct', group: 'GET /history/{id}', server: 'simulator', request: 'GET /api/jobs/{id}', note: 'the same data, directly', load: { origin: simUrl, paths: jobPaths, headers: keyHeader, connections: c }, calls: 1 },
      { id: 'history-list-cached', group: `GET /history?max_items=${options.historyItems}`, server: 'proxy', request: `GET /history?max_items=${options.historyItems} (warm cache)`, note: `LIST_TTL_MS=${proxyStart.config.listTtlMs}`, load: { origin: proxyUrl, paths: [`/history?max_items=${options.historyItems}`], connections: c } },
      { id: 'history-list-direct-v2', group: `GET /history?max_items=${options.historyItems}`, server: 'simulator', request: `GET /api/history_v2?max_items=${options.historyItems}`, note: 'closest single call (no API graph)', load: { origin: simUrl, paths: [`/api/history_v2?max_items=${options.historyItems}`], headers: keyHeader, connections: c }, calls: 1 },
      { id: 'history-list-direct-jobs', group: `GET /history?max_items=${options.historyItems}`, server: 'simulator', request: `GET /api/jobs?…&limit=${options.historyItems}`, note: `the list alone; the full data needs ${options.historyItems} more GET /api/jobs/{id}`, load: { origin: simUrl, paths: [`/api/jobs?${listQuery}`], headers: keyHeader, connections: c }, calls: 1 },
      { id: 'prompt', group: 'GET /prompt', server: 'proxy', request: 'GET /prompt', note: 'from the job tracker: one shared list call per LIST_TTL_MS', load: { origin: proxyUrl, paths: ['/prompt'], connections: c } },
      { id: 'prompt-direct', group: 'GET /prompt', server: 'simulator', request: 'GET /api/prompt', note: '', load: { origin: simUrl, paths: ['/api/prompt'], headers: keyHeader, connections: c }, calls: 1 },
      { id: 'passthrough', group: 'GET /history_v2?max_items=1 (pass-through)', server: 'proxy', request: 'GET /history_v2?max_items=1', note: '@fastify/http-proxy inside the proxy', load: { origin: proxyUrl, paths: ['/history_v2?max_items=1'], connections: c }, calls: 1 },
      { id: 'passthrough-hop', group: 'GET /history_v2?max_items=1 (pass-through)', server: 'http-proxy hop', request: 'GET /api/history_v2?max_items=1', note: '', load: { origin: hopUrl, paths: ['/api/history_v2?max_items=1'], connections: c }, calls: 1 },
      { id: 'passthrough-direct', group: 'GET /history_v2?max_items=1 (pass-through)', server: 'simulator', request: 'GET /api/history_v2?max_items=1', note: '', load: { origin: simUrl, paths: ['/api/history_v2?max_items=1'], headers: keyHeader, connections: c }, calls: 1 },
      { id: 'view', group: `GET /view (${options.imageSize}×${options.imageSize} PNG)`, server: 'proxy', request: 'GET /view', note: 'proxy follows the 302 and streams the bytes', load: { origin: proxyUrl, paths: [`/view?${viewQuery}`], connections: c }, calls: 2 },
      { id: 'view-direct', group: `GET /view (${options.imageSize}×${options.imageSize} PNG)`, server: 'simulator', request: 'GET /api/view → 302 → GET /storage/…', note: 'client follows the redirect (latency of both)', load: { origin: simUrl, paths: [`/api/view?${viewQuery}`], headers: keyHeader, connections: c, followRedirect: true }, calls: 2 },
      { id: 'view-range', group: `GET /view (${options.imageSize}×${options.imageSize} PNG)`, server: 'proxy', request: 'GET /view, Range: bytes=0-65535', note: 'the range is forwarded to storage: 206, 64 KiB', load: { origin: proxyUrl, paths: [`/view?${viewQuery}`], headers: { range: 'bytes=0-65535' }, connections: c }, calls: 2 },
      { id: 'view-preview-webp', group: `GET /view (${options.imageSize}×${options.imageSize} PNG)`, server: 'proxy', request: 'GET /view?…&preview=webp;50', note: 'whole file fetched, re-encoded with sharp', load: { origin: proxyUrl, paths: [`/view?${viewQuery}&preview=webp;50`], connections: c }, calls: 2 },
      { id: 'view-preview-jpeg', group: `GET /view (${options.imageSize}×${options.imageSize} PNG)`, server: 'proxy', request: 'GET /view?…&preview=jpeg;80', note: 'whole file fetched, re-encoded with sharp', load: { origin: proxyUrl, paths: [`/view?${viewQuery}&preview=jpeg;80`], connections: c }, calls: 2 },
      { id: 'history-id-uncached-1conn', group: 'GET /history/{id}, 1 connection', server: 'proxy', request: 'GET /history/{id} (CACHE_MAX_ENTRIES=0)', note: 'unloaded latency', durationS: options.unloadedDurationS, rounds: options.unloadedRounds, load: { origin: uncachedUrl, paths: historyPaths, connections: 1 }, calls: 1 },
      { id: 'history-id-hop-1conn', group: 'GET /history/{id}, 1 connection', server: 'http-proxy hop', request: 'GET /api/jobs/{id}', note: 'unloaded latency', durationS: options.unloadedDurationS, rounds: options.unloadedRounds, load: { origin: hopUrl, paths: jobPaths, connections: 1 }, calls: 1 },
      ...storeCases(storeUrls, storeSim, c, { durationS: options.unloadedDurationS, rounds: options.unloadedRounds })
    ]

    interface Tally { runs: LoadRun[], calls: Counts[], otherCpu: number[], peakRss: number }
    const tallies = new Map<string, Tally>(specs.map(spec => [spec.id, { runs: [], calls: [], otherCpu: [], peakRss: 0 }]))
    const measure = async (spec: CaseSpec, durationS: number, warmup: boolean): Promise<void> => {
      if (timedOut) throw new Error('budget exceeded')
      const cloud = spec.cloud ?? sim
      if (warmup && options.warmupS > 0) await runLoad(spec.load, options.warmupS)
      if (warmup && spec.resetCloud === true) await cloud.call('reset')
      await sleep(50)
      const before = await cloud.call<Counts>('counts')
      const cpuBefore = cpuSnapshot(pids())
      const run = await runLoad(spec.load, durationS)
      const otherCpu = otherCores(cpuBefore, cpuSnapshot(pids()))
      // in-flight cloud calls of the last requests land in this run's count
      await sleep(50)
      const tally = tallies.get(spec.id)!
      tally.runs.push(run)
      tally.calls.push(countsBetween(before, await cloud.call<Counts>('counts')))
      if (spec.resetCloud === true) await cloud.call('reset')
      tally.otherCpu.push(otherCpu * run.durationS)
      tally.peakRss = (await proxy.call<{ maxRss: number }>('rss')).maxRss
    }
    // One scenario at a time; its cases in turn, round after round.
    for (const group of [...new Set(specs.map(spec => spec.group))]) {
      const members = specs.filter(spec => spec.group === group)
      const rounds = Math.max(1, members[0].rounds ?? options.rounds)
      for (let round = 0; round < rounds; round++) {
        for (const spec of members) await measure(spec, (spec.durationS ?? options.durationS) / rounds, round === 0)
      }
    }

    const cases: CaseResult[] = specs.map(spec => {
      const tally = tallies.get(spec.id)!
      const result = mergeRuns(tally.runs)
      const byRoute: Record<string, number> = {}
      for (const counts of tally.calls) for (const [route, n] of Object.entries(counts.byRoute)) byRoute[route] = (byRoute[route] ?? 0) + n
      const calls = tally.calls.reduce((sum, counts) => sum + counts.total, 0)
      const row: CaseResult = {
        id: spec.id,
        group: spec.group,
        server: spec.server,
        request: spec.request,
        note: spec.note ?? '',
        connections: spec.load.connections,
        ...(spec.calls === undefined ? {} : { expectedCloudCalls: spec.calls }),
        ...result,
        rounds: tally.runs.length,
        otherCpuCores: tally.otherCpu.reduce((sum, v) => sum + v, 0) / result.durationS,
        proxyPeakRss: tally.peakRss,
        cloudCalls: calls,
        cloudCallsPerRequest: result.requests === 0 ? Number.NaN : calls / result.requests,
        cloudCallsByRoute: byRoute
      }
      log(`${spec.id.padEnd(26)} ${row.rps.toFixed(0).padStart(6)} req/s  p50 ${row.latencyMs.p50.toFixed(2)} ms  p99 ${row.latencyMs.p99.toFixed(2)} ms  cloud calls/req ${row.cloudCallsPerRequest.toFixed(3)}  other CPU ${row.otherCpuCores.toFixed(2)}${row.non2xx + row.errors > 0 ? `  (non-2xx ${row.non2xx}, errors ${row.errors})` : ''}`)
      return row
    })
    const afterCases = await proxy.call<MemorySample>('memory')
    const storeWrites = await stores.call<Record<string, LatencySummary>>('writes', { count: options.storeWrites }, 120_000)
    const storeLogs = await stores.call<BenchResults['logs']>('logs')
    // Done with: their Redis and queued jobs would only weigh on the rest of the run.
    await Promise.all([stores.stop(), storeSim.stop()])

    // Polling: many clients poll /history while jobs finish; the proxy should share one list call per LIST_TTL_MS.
    await sim.call('submit', { key: pollKey, count: options.pollJobs, steps: options.pollJobSteps })
    const primed = await getText(`${pollUrl}/history`)
    if (primed.status !== 200) throw new Error(`priming the polling proxy failed: ${primed.status}`)
    const pollBefore = await sim.call<Counts>('counts')
    const pollStart = Date.now()
    const pollCpu = cpuSnapshot(pids())
    const polled = await runPollers(`${pollUrl}/history`, options.pollClients, options.pollIntervalMs, options.pollDurationS * 1000)
    const pollOtherCpu = otherCores(pollCpu, cpuSnapshot(pids()))
    const pollEnd = Date.now()
    const pollCalls = countsBetween(pollBefore, await sim.call<Counts>('counts'))
    const jobs = await sim.call<{ finished: number, unfinished: number }>('finishedBetween', { key: pollKey, from: pollStart, to: pollEnd })
    const polling: PollingResult = {
      ...polled,
      cloudCalls: pollCalls.total,
      cloudCallsPerSecond: pollCalls.total / polled.durationS,
      cloudCallsByRoute: pollCalls.byRoute,
      jobsFinishedDuringRun: jobs.finished,
      jobsUnfinishedAtEnd: jobs.unfinished,
      listTtlMs: proxyStart.config.listTtlMs,
      otherCpuCores: pollOtherCpu
    }
    log(`polling: ${polled.clients} clients, ${polled.rps.toFixed(0)} req/s, ${polling.cloudCallsPerSecond.toFixed(2)} cloud calls/s ${JSON.stringify(pollCalls.byRoute)}, ${jobs.finished} jobs finished`)

    // The issue-9 workload: clients each waiting for their own job (submitted through the proxy) with GET /history/{id},
    // 10 polling GET /prompt and 5 GET /history, all every pollIntervalMs; the cloud cost should follow the jobs.
    const workload: WorkloadResult[] = []
    for (const idPollers of options.workloadIdPollers) {
      const ids: string[] = []
      for (let i = 0; i < options.workloadJobs; i++) {
        const submitted = await postJson(`${workUrl}/prompt`, { prompt: apiGraph(i, 0, 64, 64, options.workloadJobSteps), client_id: 'bench-workload' })
        if (submitted.status !== 200) throw new Error(`workload submit refused: ${submitted.status} ${submitted.text.slice(0, 200)}`)
        ids.push((JSON.parse(submitted.text) as { prompt_id: string }).prompt_id)
      }
      const before = await sim.call<Counts>('counts')
      const cpu = cpuSnapshot(pids())
      const run = await runWorkload({ origin: workUrl, ids, idPollers, promptPollers: 10, historyPollers: 5, intervalMs: options.pollIntervalMs, durationMs: options.workloadDurationS * 1000 })
      const otherCpu = otherCores(cpu, cpuSnapshot(pids()))
      const calls = countsBetween(before, await sim.call<Counts>('counts'))
      const ends = await sim.call<Record<string, number>>('jobEnds', { key: workKey, ids })
      const lags = Object.entries(run.firstSeen).flatMap(([id, seen]) => ends[id] === undefined ? [] : [seen - ends[id]])
      const localRequests = Object.values(run.requests).reduce((sum, n) => sum + n, 0)
      workload.push({
        idPollers,
        promptPollers: 10,
        historyPollers: 5,
        intervalMs: options.pollIntervalMs,
        durationS: run.durationS,
        requests: run.requests,
        localRequests,
        latencyMs: run.latencyMs,
        errors: run.errors,
        cloudCalls: calls.total,
        cloudCallsPerSecond: calls.total / run.durationS,
        cloudCallsByRoute: calls.byRoute,
        localRequestsPerCloudCall: localRequests / Math.max(1, calls.total),
        jobsFinished: Object.keys(ends).length,
        freshnessLagMs: summarize(lags),
        listTtlMs: auxStart.workConfig.listTtlMs,
        cloudMaxRps: auxStart.workConfig.cloudMaxRps,
        otherCpuCores: otherCpu
      })
      log(`workload: ${idPollers} /history/{id} pollers, ${localRequests} local requests, ${calls.total} cloud calls (${(calls.total / run.durationS).toFixed(2)}/s) ${JSON.stringify(calls.byRoute)}, ${Object.keys(ends).length} jobs finished, lag p99 ${Math.round(summarize(lags).p99)} ms`)
      // The next run starts on an empty queue.
      if (idPollers !== options.workloadIdPollers.at(-1)) await waitForIdle(workUrl)
    }

    // Fill a history cache to its default size with ~workflowBytes jobs, then weigh the process after a GC: first in a
    // fresh proxy process that did nothing else, then in the default proxy that served every case (the end of the run).
    const fillCount = options.fillJobs ?? proxyStart.config.cacheMaxEntries
    const fill = await sim.call<{ ids: string[] }>('seed', {
      key, template, spec: { count: fillCount, startTime: Date.now() - 3_600_000, spacingMs: 1_000, workflowBytes: options.workflowBytes }
    }, 120_000)
    const fillPaths = fill.ids.map(id => `/history/${id}`)
    const fillCache = async (origin: string): Promise<CacheStats> => {
      const fetched = await getEach(origin, fillPaths, c)
      const metrics = await getText(`${origin}/metrics`)
      return {
        entries: metricValue(metrics.text, 'comfy_proxy_history_cache_entries'),
        bytes: metricValue(metrics.text, 'comfy_proxy_history_cache_bytes'),
        jobsRequested: fillPaths.length,
        found: fetched.ok
      }
    }
    const freshAfterStart = await freshProxy.call<MemorySample>('memory')
    const freshCache = await fillCache(freshUrl)
    const freshFull = await freshProxy.call<MemorySample>('memory')
    const mainCache = await fillCache(proxyUrl)
    const endOfRun = await proxy.call<MemorySample>('memory')
    await sleep(options.settleS * 1000)
    const freshSettled = await freshProxy.call<MemorySample>('memory')
    const endOfRunSettled = await proxy.call<MemorySample>('memory')
    const freshLogs = await freshProxy.call<BenchResults['logs'][string]>('logs')
    await freshProxy.stop()
    const rss = (sample: MemorySample): string => `${(sample.rss / 1e6).toFixed(1)} MB`
    log(`fresh proxy, cache filled: ${freshCache.entries} entries, ${(freshCache.bytes / 1e6).toFixed(1)} MB of JSON; RSS ${rss(freshFull)}, ${rss(freshSettled)} after ${options.settleS} s idle`)
    log(`default proxy at the end of the run: ${mainCache.entries} entries; RSS ${rss(endOfRun)}, ${rss(endOfRunSettled)} after ${options.settleS} s idle`)

    const results: BenchResults = {
      version: 1,
      date: new Date().toISOString(),
      commit: measuredCommit(),
      machine,
      options: (({ log: _log, resultsPath: _r, docsPath: _d, ...rest }) => rest)(options),
      proxyConfig: proxyStart.config,
      totalSeconds: 0,
      cases,
      polling,
      workload,
      storeWrites,
      memory: {
        main: { afterStart, afterCases, endOfRun, endOfRunSettled, cache: mainCache },
        fresh: { afterStart: freshAfterStart, cacheFull: freshFull, cacheFullSettled: freshSettled, cache: freshCache },
        entryBytes
      },
      logs: {
        default: await proxy.call<BenchResults['logs'][string]>('logs'),
        ...await aux.call<BenchResults['logs']>('logs'),
        ...storeLogs,
        fresh: freshLogs
      },
      targets: []
    }
    machine.loadAverageAtEnd = loadavg().map(v => Math.round(v * 100) / 100)
    results.targets = evaluateTargets(results)
    results.totalSeconds = Math.round((performance.now() - startedAt) / 100) / 10
    if (options.resultsPath !== undefined) {
      mkdirSync(dirname(options.resultsPath), { recursive: true })
      writeFileSync(options.resultsPath, `${JSON.stringify(results, null, 2)}\n`)
    }
    if (options.docsPath !== undefined) {
      mkdirSync(dirname(options.docsPath), { recursive: true })
      writeFileSync(options.docsPath, renderMarkdown(results))
    }
    return results
  } finally {
    clearTimeout(watchdog)
    await Promise.all(children.map(async child => { await child.stop() }))
  }
}
