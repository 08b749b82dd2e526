/** The part of autocannon@8 the harness uses (the package ships no types). */
declare module 'autocannon' {
  import type { EventEmitter } from 'node:events'

  namespace autocannon {
    interface Request {
      method?: string
      path?: string
      headers?: Record<string, string>
      body?: string | Buffer
      /** called before each send; may return a changed copy of the request (falsy stops the sequence) */
      setupRequest?: (request: Request & { path: string, headers: Record<string, string> }, context: Record<string, unknown>) => Request | undefined
      /** called with each response of this step (the body is collected only when this is set) */
      onResponse?: (status: number, body: string, context: Record<string, unknown>, headers: Record<string, string | string[]>) => void
    }

    interface Options {
      url: string
      connections?: number
      pipelining?: number
      duration?: number
      amount?: number
      timeout?: number
      /** ms between samples of the requests/throughput histograms (the end of a run is noticed at a sample) */
      sampleInt?: number
      method?: string
      headers?: Record<string, string>
      requests?: Request[]
      /** status codes other than 2xx count as errors in the latency histogram unless this is true */
      excludeErrorStats?: boolean
      skipAggregateResult?: boolean
      bailout?: number
    }

    interface Histogram {
      average: number
      mean: number
      stddev: number
      min: number
      max: number
      total: number
      p50: number
      p90: number
      p99: number
      [percentile: string]: number
    }

    interface Result {
      url: string
      latency: Histogram
      requests: Histogram
      throughput: Histogram
      errors: number
      timeouts: number
      non2xx: number
      resets: number
      duration: number
      start: Date
      finish: Date
      statusCodeStats: Record<string, { count: number }>
      '2xx': number
      '3xx': number
      '4xx': number
      '5xx': number
    }

    interface Instance extends EventEmitter {
      stop: () => void
    }
  }

  function autocannon (options: autocannon.Options, callback: (error: Error | null, result: autocannon.Result) => void): autocannon.Instance

  export = autocannon
}
