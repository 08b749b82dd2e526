/**
 * Load generation for the harness: closed-loop autocannon runs whose latencies are taken from each
 * response's own high-resolution time (autocannon's histogram keeps whole milliseconds only), a
 * two-step variant for a client that follows /api/view's redirect itself, and timer-driven pollers.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import autocannon from 'autocannon'
import { Agent, request } from 'undici'

export interface LatencySummary { p50: number, p90: number, p99: number, mean: number, max: number }

export interface LoadResult {
  /** completed client requests (2xx; for a redirect pair, completed pairs) */
  requests: number
  durationS: number
  rps: number
  latencyMs: LatencySummary
  /** answers that were not the expected status, and socket errors/timeouts */
  non2xx: number
  errors: number
  bytesPerRequest: number
}

/** One run's result with its raw latencies, so that runs interleaved with other cases can be pooled. */
export interface LoadRun extends LoadResult { samples: number[] }

/** Several runs of one case as if they were one (latency percentiles over all their samples). */
export function mergeRuns (runs: LoadRun[]): LoadResult {
  const samples = runs.flatMap(run => run.samples)
  const requests = runs.reduce((sum, run) => sum + run.requests, 0)
  const durationS = runs.reduce((sum, run) => sum + run.durationS, 0)
  const bytes = runs.reduce((sum, run) => sum + run.bytesPerRequest * run.requests, 0)
  return {
    requests,
    durationS,
    rps: durationS > 0 ? requests / durationS : Number.NaN,
    latencyMs: summarize(samples),
    non2xx: runs.reduce((sum, run) => sum + run.non2xx, 0),
    errors: runs.reduce((sum, run) => sum + run.errors, 0),
    bytesPerRequest: requests === 0 ? 0 : bytes / requests
  }
}

export function summarize (values: number[]): LatencySummary {
  if (values.length === 0) return { p50: Number.NaN, p90: Number.NaN, p99: Number.NaN, mean: Number.NaN, max: Number.NaN }
  const sorted = Float64Array.from(values).sort()
  const at = (p: number): number => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]
  let sum = 0
  for (const value of sorted) sum += value
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), mean: sum / sorted.length, max: sorted[sorted.length - 1] }
}

export interface LoadSpec {
  origin: string
  /** one path, or several used in turn across all connections (e.g. different job ids) */
  paths: string[]
  headers?: Record<string, string>
  /** a JSON body, sent with POST (default: GET without a body) */
  body?: string
  connections: number
  /**
   * Two steps per client request: paths[i] answers a redirect (carrying `headers`), then its Location
   * is fetched with no headers at all, on the same connection (it must be on the same origin).
   */
  followRedirect?: boolean
}

type Tracker = autocannon.Instance & { on: (event: 'response', listener: (client: object, status: number, bytes: number, responseTime: number) => void) => unknown }

/** One closed-loop run of `durationS` seconds. */
export async function runLoad (spec: LoadSpec, durationS: number): Promise<LoadRun> {
  let next = 0
  const nextPath = (): string => spec.paths[next++ % spec.paths.length]
  const latencies: number[] = []
  let non2xx = 0
  let bytes = 0
  let started = 0
  const requests: autocannon.Request[] = spec.followRedirect === true
    ? [
        {
          method: 'GET',
          path: spec.paths[0],
          headers: spec.headers ?? {},
          setupRequest: request => ({ ...request, path: nextPath() }),
          onResponse: (_status, _body, context, headers) => { context.location = headers.location }
        },
        {
          method: 'GET',
          path: '/',
          headers: {},
          setupRequest: (request, context) => {
            const location = context.location
            if (typeof location !== 'string') return undefined
            const target = new URL(location, spec.origin)
            return { ...request, path: target.pathname + target.search }
          }
        }
      ]
    : [{
        ...(spec.body === undefined ? { method: 'GET', headers: spec.headers ?? {} } : { method: 'POST', headers: { ...spec.headers, 'content-type': 'application/json' }, body: spec.body }),
        path: spec.paths[0],
        ...(spec.paths.length > 1 ? { setupRequest: request => ({ ...request, path: nextPath() }) } : {})
      }]
  const redirected = new Map<object, number>()
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    started = performance.now()
    const instance = autocannon({
      url: spec.origin,
      connections: spec.connections,
      pipelining: 1,
      duration: durationS,
      timeout: 10,
      // autocannon only checks for the end of a run when it samples: sample often enough for short runs.
      sampleInt: durationS < 2 ? 50 : 1000,
      requests,
      skipAggregateResult: false
    }, (error, outcome) => { if (error !== null) reject(error); else resolve(outcome) }) as Tracker
    instance.on('response', (client, status, size, responseTime) => {
      if (spec.followRedirect === true) {
        if (status === 302) {
          redirected.set(client, responseTime)
          return
        }
        const first = redirected.get(client)
        redirected.delete(client)
        if (status === 200 && first !== undefined) {
          latencies.push(first + responseTime)
          bytes += size
        } else {
          non2xx++
        }
        return
      }
      if (status >= 200 && status < 300) {
        latencies.push(responseTime)
        bytes += size
      } else {
        non2xx++
      }
    })
  })
  const durationS_ = result.duration > 0 ? result.duration : (performance.now() - started) / 1000
  return {
    requests: latencies.length,
    durationS: durationS_,
    rps: latencies.length / durationS_,
    latencyMs: summarize(latencies),
    non2xx,
    errors: result.errors + result.timeouts,
    bytesPerRequest: latencies.length === 0 ? 0 : bytes / latencies.length,
    samples: latencies
  }
}

export interface PollResult {
  clients: number
  intervalMs: number
  durationS: number
  requests: number
  rps: number
  latencyMs: LatencySummary
  errors: number
  bytesPerRequest: number
}

/** `clients` independent pollers, each GETting `url` every `intervalMs` (or right after a slower answer), for `durationMs`. */
export async function runPollers (url: string, clients: number, intervalMs: number, durationMs: number): Promise<PollResult> {
  const agent = new Agent({ connections: clients, keepAliveTimeout: 10_000 })
  const latencies: number[] = []
  let errors = 0
  let bytes = 0
  const started = performance.now()
  const deadline = started + durationMs
  try {
    await Promise.all(Array.from({ length: clients }, async (_, i) => {
      // Pollers are not in step: each starts at its own point of the first interval.
      await sleep(Math.floor(intervalMs * i / clients))
      while (performance.now() < deadline) {
        const t0 = performance.now()
        try {
          const response = await request(url, { dispatcher: agent, signal: AbortSignal.timeout(5_000) })
          const body = await response.body.arrayBuffer()
          if (response.statusCode === 200) {
            latencies.push(performance.now() - t0)
            bytes += body.byteLength
          } else {
            errors++
          }
        } catch {
          errors++
        }
        const wait = intervalMs - (performance.now() - t0)
        if (wait > 0) await sleep(wait)
      }
    }))
  } finally {
    await agent.close()
  }
  const durationS = (performance.now() - started) / 1000
  return {
    clients,
    intervalMs,
    durationS,
    requests: latencies.length,
    rps: latencies.length / durationS,
    latencyMs: summarize(latencies),
    errors,
    bytesPerRequest: latencies.length === 0 ? 0 : bytes / latencies.length
  }
}

/** GETs every path once, `concurrency` at a time; answers how many were 200 with a non-empty JSON object. */
export async function getEach (origin: string, paths: string[], concurrency: number): Promise<{ ok: number, failed: number }> {
  const agent = new Agent({ connections: concurrency })
  let next = 0
  let ok = 0
  let failed = 0
  try {
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (next < paths.length) {
        const path = paths[next++]
        try {
          const response = await request(origin + path, { dispatcher: agent, signal: AbortSignal.timeout(10_000) })
          const text = await response.body.text()
          if (response.statusCode === 200 && text !== '{}') ok++
          else failed++
        } catch {
          failed++
        }
      }
    }))
  } finally {
    await agent.close()
  }
  return { ok, failed }
}

export interface WorkloadSpec {
  origin: string
  /** the jobs being waited for; pollers of GET /history/{id} are spread over them */
  ids: string[]
  idPollers: number
  promptPollers: number
  historyPollers: number
  intervalMs: number
  durationMs: number
}

export interface WorkloadRun {
  durationS: number
  /** answered requests by local route */
  requests: Record<string, number>
  latencyMs: LatencySummary
  errors: number
  /** per job id: when the first poll that got its entry was sent (epoch ms) */
  firstSeen: Record<string, number>
}

/**
 * The polling workload of issue 9: clients each waiting for their own job with GET /history/{id}, and
 * others looping on GET /prompt and GET /history, all every `intervalMs`.
 */
export async function runWorkload (spec: WorkloadSpec): Promise<WorkloadRun> {
  const pollers = spec.idPollers + spec.promptPollers + spec.historyPollers
  const agent = new Agent({ connections: pollers, keepAliveTimeout: 10_000 })
  const latencies: number[] = []
  const requests: Record<string, number> = {}
  const firstSeen: Record<string, number> = {}
  let errors = 0
  const started = performance.now()
  const deadline = started + spec.durationMs
  const poll = async (i: number, route: string, path: string, seen?: (body: Record<string, unknown>, sentAt: number) => void): Promise<void> => {
    await sleep(Math.floor(spec.intervalMs * i / pollers))
    while (performance.now() < deadline) {
      const t0 = performance.now()
      const sentAt = Date.now()
      try {
        const response = await request(`${spec.origin}${path}`, { dispatcher: agent, signal: AbortSignal.timeout(10_000) })
        const text = await response.body.text()
        if (response.statusCode === 200) {
          latencies.push(performance.now() - t0)
          requests[route] = (requests[route] ?? 0) + 1
          seen?.(JSON.parse(text) as Record<string, unknown>, sentAt)
        } else {
          errors++
        }
      } catch {
        errors++
      }
      const wait = spec.intervalMs - (performance.now() - t0)
      if (wait > 0) await sleep(wait)
    }
  }
  try {
    await Promise.all([
      ...Array.from({ length: spec.idPollers }, async (_, i) => {
        const id = spec.ids[i % spec.ids.length]
        await poll(i, 'GET /history/{id}', `/history/${id}`, (body, sentAt) => {
          if (body[id] !== undefined && (firstSeen[id] === undefined || sentAt < firstSeen[id])) firstSeen[id] = sentAt
        })
      }),
      ...Array.from({ length: spec.promptPollers }, async (_, i) => { await poll(spec.idPollers + i, 'GET /prompt', '/prompt') }),
      ...Array.from({ length: spec.historyPollers }, async (_, i) => { await poll(spec.idPollers + spec.promptPollers + i, 'GET /history', '/history') })
    ])
  } finally {
    await agent.close()
  }
  return { durationS: (performance.now() - started) / 1000, requests, latencyMs: summarize(latencies), errors, firstSeen }
}
