/**
 * Prometheus metrics for /metrics, with prom-client (histograms and the text format are easy to
 * get subtly wrong by hand): requests by route and status with latency, requests answered without
 * a cloud call, cloud calls by route and outcome with latency, the cloud budget's waits and the
 * 429s it received, schema-validation failures, the history cache and the job tracker.
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { CloudObserver } from './cloud/client.js'
import type { BudgetObserver } from './cloud/budget.js'
import type { ProxyCache } from './cache.js'
import type { StateStore } from './store/index.js'
import type { Jobs } from './jobs/jobs.js'

/** The cloud calls one local request made. */
interface CallScope { calls: number }

export class Metrics {
  readonly registry = new Registry()
  readonly requests: Histogram<'method' | 'route' | 'status'>
  readonly cloudCalls: Histogram<'method' | 'route' | 'outcome'>
  readonly schemaFailures: Counter<'schema'>
  readonly localAnswers: Counter<'route'>
  readonly budgetWaits: Histogram<'priority' | 'outcome'>
  readonly rateLimited: Counter
  readonly itemsDropped: Counter<'schema'>
  private readonly callScope = new AsyncLocalStorage<CallScope>()
  private readonly scopes = new WeakMap<object, CallScope>()

  constructor () {
    const registers = [this.registry]
    this.requests = new Histogram({
      name: 'comfy_proxy_http_request_duration_seconds',
      help: 'Requests served by the proxy, by route and status',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers
    })
    this.cloudCalls = new Histogram({
      name: 'comfy_proxy_cloud_request_duration_seconds',
      help: 'Calls to Comfy Cloud, by route and outcome (HTTP status, error or circuit_open)',
      labelNames: ['method', 'route', 'outcome'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers
    })
    this.schemaFailures = new Counter({
      name: 'comfy_proxy_cloud_schema_failures_total',
      help: 'Cloud payloads that failed their schema, by schema',
      labelNames: ['schema'],
      registers
    })
    this.localAnswers = new Counter({
      name: 'comfy_proxy_local_answers_total',
      help: 'Requests answered without a cloud call of their own (from memory, or sharing another request\'s call), by route',
      labelNames: ['route'],
      registers
    })
    this.budgetWaits = new Histogram({
      name: 'comfy_proxy_cloud_budget_wait_seconds',
      help: 'Time cloud calls waited for the cloud budget (CLOUD_MAX_RPS, 429 back-off), by priority and outcome (granted or refused)',
      labelNames: ['priority', 'outcome'],
      buckets: [0, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers
    })
    this.itemsDropped = new Counter({
      name: 'comfy_proxy_cloud_items_dropped_total',
      help: 'Items of cloud lists dropped because they failed their schema, by schema',
      labelNames: ['schema'],
      registers
    })
    this.rateLimited = new Counter({
      name: 'comfy_proxy_cloud_rate_limited_total',
      help: 'Comfy Cloud answers 429 that paused the proxy\'s reads',
      registers
    })
    collectDefaultMetrics({ register: this.registry, prefix: 'comfy_proxy_' })
  }

  observer (): CloudObserver {
    return {
      call: (method, route, outcome, seconds) => {
        this.cloudCalls.observe({ method, route, outcome }, seconds)
        this.countCall()
      },
      schemaFailure: (schema) => { this.schemaFailures.inc({ schema }) },
      itemDropped: (schema) => { this.itemsDropped.inc({ schema }) }
    }
  }

  budgetObserver (): BudgetObserver {
    return {
      admission: (priority, outcome, seconds) => { this.budgetWaits.observe({ priority, outcome }, seconds) },
      rateLimited: () => { this.rateLimited.inc() }
    }
  }

  /** Runs the rest of a request's handling in a scope that counts its cloud calls (for localAnswers). */
  track (request: object, next: () => void): void {
    const scope = { calls: 0 }
    this.scopes.set(request, scope)
    this.callScope.run(scope, next)
  }

  /** A cloud call made for the current request (pass-through, where the cloud client is not involved). */
  countCall (request?: object): void {
    const scope = request === undefined ? this.callScope.getStore() : this.scopes.get(request)
    if (scope !== undefined) scope.calls++
  }

  /** A request has been answered: counted when it made no cloud call. */
  answered (request: object, route: string): void {
    if (this.scopes.get(request)?.calls === 0) this.localAnswers.inc({ route })
  }

  /** 1 while the state store answers; 0 while a shared one (Redis) is unreachable and this replica serves from memory. */
  watchStore (store: StateStore): void {
    new Gauge({
      name: 'comfy_proxy_state_store_healthy',
      help: 'Whether the state store (memory, file or redis) is reachable',
      labelNames: ['store'],
      registers: [this.registry],
      collect () { this.set({ store: store.kind }, store.healthy ? 1 : 0) }
    })
  }

  watchJobs (jobs: Jobs): void {
    const registers = [this.registry]
    new Gauge({
      name: 'comfy_proxy_jobs_tracked',
      help: 'Jobs the tracker knows, by state (unfinished: pending or running; finished: not yet forgotten)',
      labelNames: ['state'],
      registers,
      collect () {
        const size = jobs.tracker.size
        this.set({ state: 'unfinished' }, size.unfinished)
        this.set({ state: 'finished' }, size.finished)
      }
    })
    new Gauge({ name: 'comfy_proxy_jobs_absent', help: 'Ids remembered as not in the cloud (for LIST_TTL_MS)', registers, collect () { this.set(jobs.absentSize) } })
  }

  watchCache (cache: ProxyCache): void {
    const registers = [this.registry]
    new Counter({ name: 'comfy_proxy_history_cache_hits_total', help: 'History cache hits', registers, collect () { this.reset(); this.inc(cache.hits) } })
    new Counter({ name: 'comfy_proxy_history_cache_misses_total', help: 'History cache misses', registers, collect () { this.reset(); this.inc(cache.misses) } })
    new Gauge({ name: 'comfy_proxy_history_cache_entries', help: 'Finished history entries cached', registers, collect () { this.set(cache.size.entries) } })
    new Gauge({ name: 'comfy_proxy_history_cache_bytes', help: 'Size of the cached entries (JSON bytes)', registers, collect () { this.set(cache.size.bytes) } })
  }
}
