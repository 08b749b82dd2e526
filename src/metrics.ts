/**
 * Prometheus metrics for /metrics, with prom-client (histograms and the text format are easy to
 * get subtly wrong by hand): requests by route and status with latency, cloud calls by route and
 * outcome with latency, schema-validation failures, and the history cache.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { CloudObserver } from './cloud/client.js'
import type { ProxyCache } from './cache.js'

export class Metrics {
  readonly registry = new Registry()
  readonly requests: Histogram<'method' | 'route' | 'status'>
  readonly cloudCalls: Histogram<'method' | 'route' | 'outcome'>
  readonly schemaFailures: Counter<'schema'>

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
    collectDefaultMetrics({ register: this.registry, prefix: 'comfy_proxy_' })
  }

  observer (): CloudObserver {
    return {
      call: (method, route, outcome, seconds) => { this.cloudCalls.observe({ method, route, outcome }, seconds) },
      schemaFailure: (schema) => { this.schemaFailures.inc({ schema }) }
    }
  }

  watchCache (cache: ProxyCache): void {
    const registers = [this.registry]
    new Counter({ name: 'comfy_proxy_history_cache_hits_total', help: 'History cache hits', registers, collect () { this.reset(); this.inc(cache.hits) } })
    new Counter({ name: 'comfy_proxy_history_cache_misses_total', help: 'History cache misses', registers, collect () { this.reset(); this.inc(cache.misses) } })
    new Gauge({ name: 'comfy_proxy_history_cache_entries', help: 'Finished history entries cached', registers, collect () { this.set(cache.size.entries) } })
    new Gauge({ name: 'comfy_proxy_history_cache_bytes', help: 'Size of the cached entries (JSON bytes)', registers, collect () { this.set(cache.size.bytes) } })
  }
}
