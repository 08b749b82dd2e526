/**
 * The benchmark's servers, one role per child process (argv[2]):
 * - `sim`: the Comfy Cloud simulator, which counts every HTTP request it receives (the "cloud calls");
 * - `proxy`: the proxy with its default configuration, alone in its process so its RSS is its own;
 * - `aux`: the proxy with the history cache off, a plain @fastify/http-proxy hop in front of the
 *   simulator that only injects the key, and a default proxy on a second account for the polling run;
 * - `stores`: three proxies that differ only in their state store (memory, STATE_FILE, REDIS_URL with a
 *   redis-server of their own), for POST /prompt side by side.
 * The harness (bench/harness.ts) drives them over IPC (bench/ipc.ts).
 */
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import type { IncomingMessage } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify, { type FastifyInstance } from 'fastify'
import httpProxy from '@fastify/http-proxy'
import { buildApp } from '../src/app.js'
import { loadConfig, type Config } from '../src/config.js'
import { startSimulator, type JobDetail } from '../src/simulator/app.js'
import { serveCalls, type Handlers } from './ipc.js'
import { finishedJobs, workflowContainer, type SeedSpec } from './data.js'
import { summarize } from './load.js'
import { startRedis } from '../test/fixtures/redis.js'

const role = process.argv[2]
const closers: Array<() => Promise<void>> = []

function urlOf (app: FastifyInstance): string {
  return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
}

/** Log lines are serialised as in production (default level) and dropped; warnings and errors are counted by message. */
class LogSink {
  lines = 0
  problems = 0
  readonly kinds: Record<string, number> = {}
  write (line: string): void {
    this.lines++
    if (!/"level":(40|50|60)/.test(line)) return
    this.problems++
    let kind = line.slice(0, 120)
    try {
      const entry = JSON.parse(line) as { level: number, msg?: string, err?: { type?: string }, error?: string }
      kind = `${entry.level >= 50 ? 'error' : 'warn'}: ${entry.msg ?? ''}${entry.err?.type !== undefined ? ` (${entry.err.type})` : ''}${entry.error !== undefined ? ` (${entry.error})` : ''}`
    } catch {}
    this.kinds[kind] = (this.kinds[kind] ?? 0) + 1
  }

  summary (): { lines: number, problems: number, kinds: Record<string, number> } {
    return { lines: this.lines, problems: this.problems, kinds: this.kinds }
  }
}

/**
 * The throughput cases measure the proxy, not the cloud budget: their proxies' CLOUD_MAX_RPS is lifted.
 * The polling proxy keeps the default, since what a poll costs under it is what that run measures.
 */
const UNLIMITED_RPS = 1_000_000

async function startProxy (config: Partial<Config> & Pick<Config, 'cloudUrl' | 'apiKey'>): Promise<{ url: string, app: FastifyInstance, sink: LogSink, config: Config }> {
  const sink = new LogSink()
  const full: Config = { ...loadConfig({}), cloudMaxRps: UNLIMITED_RPS, ...config }
  const app = buildApp(full, { logStream: sink })
  await app.listen({ port: 0, host: '127.0.0.1' })
  closers.push(async () => { await app.close() })
  return { url: urlOf(app), app, sink, config: full }
}

async function memory (): Promise<Record<string, number>> {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc !== undefined) {
    gc()
    await sleep(50)
    gc()
  }
  const usage = process.memoryUsage()
  return {
    rss: usage.rss,
    heapUsed: usage.heapUsed,
    heapTotal: usage.heapTotal,
    external: usage.external,
    arrayBuffers: usage.arrayBuffers,
    maxRss: process.resourceUsage().maxRSS * 1024,
    gcExposed: gc === undefined ? 0 : 1
  }
}

const common: Handlers = {
  memory,
  /** RSS now and at its peak, without a GC */
  rss: async () => ({ rss: process.memoryUsage.rss(), maxRss: process.resourceUsage().maxRSS * 1024 }),
  stop: async () => {
    for (const close of closers.reverse()) await close().catch(() => {})
    setTimeout(() => process.exit(0), 20).unref()
    return true
  }
}

/** The cloud route a request counts under: ids and file names left out. */
function routeOf (request: IncomingMessage): string {
  const path = (request.url ?? '').split('?')[0]
  const route = path
    .replace(/^\/api\/jobs\/[^/]+$/, '/api/jobs/:id')
    .replace(/^\/api\/jobs\/[^/]+\/cancel$/, '/api/jobs/:id/cancel')
    .replace(/^\/api\/history_v2\/[^/]+$/, '/api/history_v2/:id')
    .replace(/^\/storage\/.+$/, '/storage/:file')
  return `${request.method ?? 'GET'} ${route}`
}

async function simRole (): Promise<Handlers> {
  let sim: Awaited<ReturnType<typeof startSimulator>> | undefined
  const counts = new Map<string, number>()
  let total = 0
  const need = (): NonNullable<typeof sim> => {
    if (sim === undefined) throw new Error('simulator not started')
    return sim
  }
  return {
    ...common,
    start: async ({ keys, stepMs, concurrency }: { keys: string[], stepMs: number, concurrency: number }) => {
      sim = await startSimulator({ apiKeys: keys, stepMs, concurrency, host: '127.0.0.1', port: 0 })
      closers.push(need().close)
      // Every HTTP request that reaches the simulator is one cloud call; the harness's own set-up uses inject() and is not counted.
      need().app.server.on('request', (request: IncomingMessage) => {
        total++
        const route = routeOf(request)
        counts.set(route, (counts.get(route) ?? 0) + 1)
      })
      return { url: need().url }
    },
    counts: async () => ({ total, byRoute: Object.fromEntries(counts) }),
    /** Drops every job (and file) of every account; the request counts go on. */
    reset: async () => {
      need().app.simulator.reset()
      return true
    },
    /** Runs one real job (the simulator renders its PNG) and answers its detail once finished. */
    realJob: async ({ key, width, height, steps }: { key: string, width: number, height: number, steps: number }) => {
      const app = need().app
      const container = workflowContainer(7, 1, 'bench-template', true, width, height)
      const graph = container.prompt
      // The simulator's node set has no LoraLoader: run the plain graph, keep the container for the record.
      delete graph[10]
      graph[3].inputs.model = ['4', 0]
      graph[6].inputs.clip = ['4', 1]
      graph[7].inputs.clip = ['4', 1]
      graph[3].inputs.steps = steps
      const response = await app.inject({ method: 'POST', url: '/api/prompt', headers: { 'x-api-key': key }, payload: { prompt: graph, extra_data: { client_id: 'bench-template' } } })
      if (response.statusCode !== 200) throw new Error(`template job refused: ${response.statusCode} ${response.body}`)
      const id = (response.json() as { prompt_id: string }).prompt_id
      const deadline = Date.now() + 30_000
      for (;;) {
        const detail = await app.inject({ method: 'GET', url: `/api/jobs/${id}`, headers: { 'x-api-key': key } })
        const job = detail.json() as JobDetail
        if (job.status === 'completed') return job
        if (job.status === 'failed' || job.status === 'cancelled') throw new Error(`template job ${job.status}`)
        if (Date.now() > deadline) throw new Error('template job did not finish in 30 s')
        await sleep(20)
      }
    },
    seed: async ({ key, template, spec }: { key: string, template: JobDetail, spec: SeedSpec }) => {
      const control = need().app.simulator
      const ids: string[] = []
      for (const job of finishedJobs(template, spec)) ids.push(control.seedJob(key, job).id)
      return { ids }
    },
    /** Submits real jobs (they queue and run on the simulator's timers); not counted as cloud calls. */
    submit: async ({ key, count, steps }: { key: string, count: number, steps: number }) => {
      const app = need().app
      const ids: string[] = []
      for (let i = 0; i < count; i++) {
        const graph = { ...workflowContainer(i, 0, 'bench-poller', false, 64, 64).prompt }
        graph[3] = { ...graph[3], inputs: { ...graph[3].inputs, steps } }
        const response = await app.inject({ method: 'POST', url: '/api/prompt', headers: { 'x-api-key': key }, payload: { prompt: graph, extra_data: { client_id: 'bench-submitter' } } })
        if (response.statusCode !== 200) throw new Error(`submit refused: ${response.statusCode} ${response.body}`)
        ids.push((response.json() as { prompt_id: string }).prompt_id)
      }
      return { ids }
    },
    /** When each of these jobs finished (epoch ms), for the ones that did. */
    jobEnds: async ({ key, ids }: { key: string, ids: string[] }) => {
      const wanted = new Set(ids)
      const ends: Record<string, number> = {}
      for (const job of need().app.simulator.jobs(key)) {
        if (wanted.has(job.id) && job.status === 'completed' && job.execution_end_time !== undefined) ends[job.id] = job.execution_end_time
      }
      return ends
    },
    /** Finished jobs of an account whose execution ended within [from, to]. */
    finishedBetween: async ({ key, from, to }: { key: string, from: number, to: number }) => {
      const jobs = need().app.simulator.jobs(key)
      return {
        finished: jobs.filter(job => job.status === 'completed' && (job.execution_end_time ?? 0) >= from && (job.execution_end_time ?? 0) <= to).length,
        unfinished: jobs.filter(job => job.status === 'pending' || job.status === 'in_progress').length
      }
    }
  }
}

async function proxyRole (): Promise<Handlers> {
  let sink: LogSink | undefined
  return {
    ...common,
    start: async ({ cloudUrl, key }: { cloudUrl: string, key: string }) => {
      const proxy = await startProxy({ cloudUrl, apiKey: key })
      sink = proxy.sink
      const { cacheMaxEntries, cacheMaxBytes, listTtlMs, logLevel, cloudConnections } = proxy.config
      return { url: proxy.url, config: { cacheMaxEntries, cacheMaxBytes, listTtlMs, logLevel, cloudConnections } }
    },
    logs: async () => sink?.summary() ?? { lines: 0, problems: 0, kinds: {} }
  }
}

async function auxRole (): Promise<Handlers> {
  const sinks: Record<string, LogSink> = {}
  return {
    ...common,
    start: async ({ cloudUrl, key, pollKey, workKey }: { cloudUrl: string, key: string, pollKey: string, workKey: string }) => {
      const uncached = await startProxy({ cloudUrl, apiKey: key, cacheMaxEntries: 0 })
      const poll = await startProxy({ cloudUrl, apiKey: pollKey, cloudMaxRps: loadConfig({}).cloudMaxRps })
      const work = await startProxy({ cloudUrl, apiKey: workKey, cloudMaxRps: loadConfig({}).cloudMaxRps })
      sinks.uncached = uncached.sink
      sinks.poll = poll.sink
      sinks.workload = work.sink
      // The plain hop: the least a proxy in front of the cloud can do (route, inject the key, stream back).
      const hop = Fastify({ logger: false })
      await hop.register(httpProxy, {
        upstream: cloudUrl,
        replyOptions: { rewriteRequestHeaders: (_request, headers) => ({ ...headers, 'x-api-key': key }) }
      })
      await hop.listen({ port: 0, host: '127.0.0.1' })
      closers.push(async () => { await hop.close() })
      return { uncachedUrl: uncached.url, pollUrl: poll.url, workUrl: work.url, hopUrl: urlOf(hop), workConfig: { listTtlMs: work.config.listTtlMs, cloudMaxRps: work.config.cloudMaxRps } }
    },
    logs: async () => Object.fromEntries(Object.entries(sinks).map(([name, sink]) => [name, sink.summary()]))
  }
}

async function storesRole (): Promise<Handlers> {
  const sinks: Record<string, LogSink> = {}
  const apps: Record<string, FastifyInstance> = {}
  return {
    ...common,
    /** Answers each proxy's URL by store; REDIS_URL's is absent where no redis-server is installed. */
    start: async ({ cloudUrl, key }: { cloudUrl: string, key: string }) => {
      const dir = mkdtempSync(join(tmpdir(), 'comfy-bench-state-'))
      closers.push(async () => { rmSync(dir, { recursive: true, force: true }) })
      const memory = await startProxy({ cloudUrl, apiKey: key })
      const file = await startProxy({ cloudUrl, apiKey: key, stateFile: join(dir, 'state.db') })
      sinks['memory store'] = memory.sink
      sinks.STATE_FILE = file.sink
      apps.memory = memory.app
      apps.file = file.app
      const urls: Record<string, string> = { memory: memory.url, file: file.url }
      if (spawnSync('redis-server', ['--version']).error === undefined) {
        const redis = await startRedis({ teardown: close => { closers.push(close) } })
        const shared = await startProxy({ cloudUrl, apiKey: key, redisUrl: redis.url })
        sinks.REDIS_URL = shared.sink
        apps.redis = shared.app
        urls.redis = shared.url
      }
      return urls
    },
    /** The store's write alone, store after store: `count` sets in a row of a record the size of a submission's. */
    writes: async ({ count }: { count: number }) => {
      const record = { clientId: 'bench-store', extraData: JSON.stringify({ client_id: 'bench-store', extra_pnginfo: { workflow: { nodes: 'x'.repeat(200) } } }) }
      const latencies: Record<string, ReturnType<typeof summarize>> = {}
      for (const [store, app] of Object.entries(apps)) {
        const samples: number[] = []
        for (let i = 0; i < count; i++) {
          const started = performance.now()
          await app.store.set('bench-writes', String(i), record, 60_000)
          samples.push(performance.now() - started)
        }
        latencies[store] = summarize(samples)
      }
      return latencies
    },
    logs: async () => Object.fromEntries(Object.entries(sinks).map(([name, sink]) => [name, sink.summary()]))
  }
}

const roles: Record<string, () => Promise<Handlers>> = { sim: simRole, proxy: proxyRole, aux: auxRole, stores: storesRole }
const make = roles[role ?? '']
if (make === undefined) {
  process.stderr.write(`unknown role ${role ?? '(none)'}; expected sim, proxy, aux or stores\n`)
  process.exit(2)
}
serveCalls(await make())
