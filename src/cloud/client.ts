/**
 * The Comfy Cloud client: one keep-alive undici pool to the configured origin, the API key
 * injected as X-API-Key (and only there), the cloud budget in front of every call, timeouts,
 * bounded retries of idempotent calls, and ajv validation of every payload before a mapper sees
 * it. It knows cloud shapes only.
 */
import { Pool, errors as undiciErrors, type Dispatcher } from 'undici'
import type { FastifyBaseLogger } from 'fastify'
import { ProxyError } from '../errors.js'
import { cloudValidator, describeSchemaError, type CloudSchemaName } from './schemas.js'
import { CircuitBreaker } from './breaker.js'
import { accountRefusal, accountRefusalError } from './refusals.js'
import { CloudBudget, MAX_PAUSE_MS, type Priority } from './budget.js'
import { Gate, GateTimeoutError } from './gate.js'

/** Told of every cloud call, for /metrics. */
export interface CloudObserver {
  call: (method: string, route: string, outcome: string, seconds: number) => void
  schemaFailure: (schema: string) => void
  itemDropped: (schema: string) => void
}

const noObserver: CloudObserver = { call: () => {}, schemaFailure: () => {}, itemDropped: () => {} }

export interface CloudClientOptions {
  baseUrl: string
  apiKey: string
  timeoutMs: number
  connections: number
  retries: number
  /** connections of the second pool, for answers streamed to clients (pass-through, /view); default: connections */
  streamingConnections?: number
  /** largest JSON answer read into memory (CLOUD_MAX_JSON_BYTES); beyond it a 502 */
  maxJsonBytes?: number
  logger: FastifyBaseLogger
  breaker?: CircuitBreaker
  observer?: CloudObserver
  /** every call waits for it; without one, calls are not limited */
  budget?: CloudBudget
}

export interface CloudCall {
  method: 'GET' | 'POST'
  /** path below the origin, already encoded, e.g. `/api/jobs/${cloudPathSegment(id)}` */
  path: string
  query?: Record<string, string | number | undefined>
  body?: unknown
  /** schema of a 2xx JSON answer; a payload that fails it becomes a 502 naming the field */
  schema?: CloudSchemaName
  /** the path with its ids left out, for counting calls by route (e.g. /api/jobs/:id) */
  route?: string
  /** statuses handed back to the caller instead of becoming an upstream error (2xx always are) */
  accept?: number[]
  /**
   * The caller can answer from what it knows: while the cloud asks the proxy to back off, fail at
   * once (503 cloud_rate_limited) instead of waiting for the back-off to end.
   */
  fallback?: boolean
}

export interface CloudResponse<T = unknown> {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: T
  /** list items the cloud sent that failed their own schema and were dropped from `body` */
  dropped?: number
}

/** Lists whose items are checked one by one, so that one bad item costs that item, not the page (drift §1.6). */
const LIST_ITEMS: Partial<Record<CloudSchemaName, { field: string, schema: CloudSchemaName }>> = {
  JobsListResponse: { field: 'jobs', schema: 'JobEntry' }
}

/** Encodes one path segment so that no id can change which cloud path is called (`..`, `/`, `?`, `#`). */
export function cloudPathSegment (value: string): string {
  return encodeURIComponent(value).replace(/\./g, '%2E')
}

const RETRYABLE_STATUS = new Set([502, 503, 504])

/** Reads wait behind writes (submits, cancels, deletes) in the cloud budget. */
export function priorityOf (method: string): Priority {
  return method === 'GET' || method === 'HEAD' ? 'read' : 'write'
}

/**
 * Whether a cloud 429 means "too many requests" (pause every read) rather than a refusal of this
 * one submit: POST /api/prompt answers QUEUE_LIMIT and billing refusals as 429 in the prompt
 * envelope, with an error.type (notes §1.5); those say nothing about the request rate.
 */
export function isRateLimit (status: number, body: unknown): boolean {
  if (status !== 429) return false
  const error = (body as { error?: { type?: unknown } } | undefined)?.error
  return typeof error?.type !== 'string'
}

/** An undici pool and its connections as slots: a call waits for a slot at most until its own timeout. */
export interface GatedPool { pool: Pool, gate: Gate }

/**
 * Two pools to the one origin (issue 14 rule 2): JSON calls of the translated routes, which are
 * short, and streams a client paces (pass-through bodies and uploads, /view files), so that slow
 * clients can hold at most the streaming pool and translated routes always get a connection.
 */
export class CloudClient {
  readonly pool: Pool
  readonly gate: Gate
  readonly streaming: GatedPool
  readonly origin: string
  readonly apiKey: string
  readonly timeoutMs: number
  private readonly maxJsonBytes: number
  private readonly retries: number
  private readonly log: FastifyBaseLogger
  readonly breaker: CircuitBreaker
  readonly budget: CloudBudget
  private readonly observer: CloudObserver
  private accountProbe: Promise<boolean> | undefined

  constructor (options: CloudClientOptions) {
    this.origin = new URL(options.baseUrl).origin
    this.apiKey = options.apiKey
    this.timeoutMs = options.timeoutMs
    this.maxJsonBytes = options.maxJsonBytes ?? Number.POSITIVE_INFINITY
    this.retries = options.retries
    this.log = options.logger
    this.breaker = options.breaker ?? new CircuitBreaker(Number.POSITIVE_INFINITY, 0)
    this.observer = options.observer ?? noObserver
    this.budget = options.budget ?? new CloudBudget(Number.POSITIVE_INFINITY)
    const pool = (connections: number): Pool => new Pool(this.origin, {
      connections,
      headersTimeout: options.timeoutMs,
      bodyTimeout: options.timeoutMs,
      connectTimeout: Math.min(options.timeoutMs, 10_000),
      keepAliveTimeout: 30_000,
      // TLS certificates are verified (undici's default); stated so that nobody turns it off quietly.
      connect: { rejectUnauthorized: true }
    })
    this.pool = pool(options.connections)
    const streamingConnections = options.streamingConnections ?? options.connections
    this.streaming = { pool: pool(streamingConnections), gate: new Gate(streamingConnections) }
    this.gate = new Gate(options.connections)
  }

  /** Headers for any request to the cloud: the server's key, never a client's credentials. */
  authHeaders (): Record<string, string> {
    return { 'x-api-key': this.apiKey }
  }

  async call<T = unknown> (call: CloudCall): Promise<CloudResponse<T>> {
    const idempotent = call.method === 'GET'
    // Waiting for the budget counts against the call's timeout: a caller never waits longer than CLOUD_TIMEOUT_MS to start.
    const deadline = performance.now() + this.timeoutMs
    for (let attempt = 0; ; attempt++) {
      const retriesLeft = idempotent ? this.retries - attempt : 0
      const paused = this.budget.pausedForMs > 0 && priorityOf(call.method) === 'read'
      await this.budget.acquire(priorityOf(call.method), call.fallback === true && paused ? 0 : deadline - performance.now())
      let response: CloudResponse<T>
      try {
        response = await this.once<T>(call, deadline)
      } catch (err) {
        if (retriesLeft > 0 && err instanceof ProxyError && !['cloud_bad_response', 'cloud_circuit_open', 'cloud_response_too_large'].includes(err.type)) {
          await sleep(backoff(attempt))
          continue
        }
        throw err
      }
      const accepted = (call.accept ?? []).includes(response.status)
      if (isRateLimit(response.status, response.body)) {
        // One shared back-off for every route; a read retried now waits in the budget until it ends (or is refused).
        this.budget.pause(retryAfterMs(response.headers['retry-after']))
        if (retriesLeft > 0 && !accepted && call.fallback !== true) continue
      } else if (retriesLeft > 0 && RETRYABLE_STATUS.has(response.status) && !accepted) {
        await sleep(backoff(attempt))
        continue
      }
      if (response.status === 403) await this.throwIfAccountRefused(call, response)
      return this.check(call, response)
    }
  }

  /** A 403 that refuses the account is an error on every route, even where a 403 otherwise means "not yours" (drift §1.3). */
  private async throwIfAccountRefused (call: CloudCall, response: CloudResponse): Promise<void> {
    const refusal = accountRefusal(response.status, response.body)
    if (refusal === undefined) return
    if (refusal.ambiguous && (call.accept ?? []).includes(403) && !await this.accountRefused()) return
    this.log.warn({ cloud: { method: call.method, path: call.path, code: refusal.code } }, 'Comfy Cloud refused the account')
    throw accountRefusalError(refusal, `${call.method} ${call.path}`)
  }

  /**
   * Whether an account-wide read is refused too: one call, shared by the 403s that arrive while it runs.
   * Only another account's job costs it, so its answer is not kept: an account's state can change at any time.
   */
  private async accountRefused (): Promise<boolean> {
    this.accountProbe ??= this.call({ method: 'GET', path: '/api/jobs', query: { limit: 1 }, schema: 'JobsListResponse' }).then(
      () => false,
      (err: unknown) => { if (err instanceof ProxyError && err.type === 'cloud_account_refused') return true; throw err })
      .finally(() => { this.accountProbe = undefined })
    return await this.accountProbe
  }

  /**
   * The items of a list answer that pass `schema`. Each one that does not is dropped, logged and counted:
   * one bad job must not turn a whole history page into a 502 (drift §1.6).
   */
  validItems<T> (items: unknown[], schema: CloudSchemaName, where: string): T[] {
    const validate = cloudValidator(schema)
    const valid: T[] = []
    for (const [index, item] of items.entries()) {
      if (validate(item)) {
        valid.push(item as T)
        continue
      }
      const { field, message } = describeSchemaError(validate.errors![0])
      const id = typeof item === 'object' && item !== null ? (item as Record<string, unknown>).id ?? (item as Record<string, unknown>).prompt_id : undefined
      this.log.warn({ cloud: { where, schema, index, id: typeof id === 'string' ? id : undefined, field, message } }, 'cloud list item failed its schema; dropped')
      this.observer.itemDropped(schema)
    }
    return valid
  }

  /**
   * A GET whose body is streamed to the client as it arrives (files); redirects are not followed.
   * The wait for a connection and for the headers is bounded by CLOUD_TIMEOUT_MS; the body then by
   * undici's bodyTimeout. The connection's slot is given back once the body is read or dropped.
   */
  async stream (path: string, route: string): Promise<Dispatcher.ResponseData> {
    const call = { method: 'GET' as const, path: path.split('?')[0], route }
    const deadline = performance.now() + this.timeoutMs
    await this.budget.acquire('read', this.timeoutMs)
    const release = await this.slot(this.streaming.gate, call, deadline)
    const started = this.admit(call, release)
    const abort = new AbortController()
    const timer = setTimeout(() => { abort.abort(new undiciErrors.HeadersTimeoutError()) }, Math.max(1, deadline - performance.now()))
    try {
      const response = await this.streaming.pool.request({ method: 'GET', path, headers: this.authHeaders(), signal: abort.signal })
      clearTimeout(timer)
      this.settle(call, started, response.statusCode)
      if (response.statusCode === 429) this.budget.pause(retryAfterMs(response.headers['retry-after']))
      response.body.once('close', release)
      return response
    } catch (err) {
      clearTimeout(timer)
      release()
      this.settle(call, started, 'error')
      throw this.transportError(call, err)
    }
  }

  /** Waits for a free connection until the deadline; a wait that runs out is a 504 like any cloud timeout. */
  async slot (gate: Gate, call: { method: string, path: string, route?: string }, deadline: number, signal?: AbortSignal): Promise<() => void> {
    try {
      return await gate.acquire(deadline - performance.now(), signal)
    } catch (err) {
      if (!(err instanceof GateTimeoutError)) throw err
      this.observer.call(call.method, call.route ?? call.path, 'no_connection', this.timeoutMs / 1000)
      this.log.warn({ cloud: { method: call.method, path: call.path, waiting: gate.stats.waiting } }, 'no connection to Comfy Cloud came free in time')
      throw new ProxyError(504, 'cloud_timeout', `No connection to Comfy Cloud came free within ${this.timeoutMs} ms`, `${call.method} ${call.path}`)
    }
  }

  /** Fails fast while the circuit is open (giving back the connection slot, if any); returns the start time of the call. */
  admit (call: Pick<CloudCall, 'method' | 'path' | 'route'>, release?: () => void): number {
    if (!this.breaker.allow()) {
      release?.()
      this.observer.call(call.method, call.route ?? call.path, 'circuit_open', 0)
      throw new ProxyError(503, 'cloud_circuit_open', 'Comfy Cloud is failing; the proxy is not calling it for a moment', `${call.method} ${call.path}`, {},
        { 'retry-after': String(this.breaker.retryAfterSeconds()) })
    }
    return performance.now()
  }

  /** Records a call's outcome: 5xx answers and transport errors count against the circuit. */
  settle (call: Pick<CloudCall, 'method' | 'path' | 'route'>, started: number, outcome: number | 'error'): void {
    if (outcome === 'error' || outcome >= 500) this.breaker.failure()
    else this.breaker.success()
    this.observer.call(call.method, call.route ?? call.path, String(outcome), (performance.now() - started) / 1000)
  }

  /** One request; its wait for a connection ends by `startBy` at the latest (the call's wait for the budget came first). */
  private async once<T> (call: CloudCall, startBy: number): Promise<CloudResponse<T>> {
    const headers: Record<string, string> = { ...this.authHeaders(), accept: 'application/json' }
    let body: string | undefined
    if (call.body !== undefined) {
      try {
        body = JSON.stringify(call.body)
      } catch {
        // JSON.stringify recurses: a body nested a few thousand levels deep overflows the stack.
        throw new ProxyError(400, 'invalid_request', 'The request body is nested too deeply to forward')
      }
      headers['content-type'] = 'application/json'
    }
    const deadline = performance.now() + this.timeoutMs
    const release = await this.slot(this.gate, call, Math.min(deadline, startBy))
    // Admitted only once nothing can fail before settle(): an unsettled half-open trial would keep the circuit shut.
    const started = this.admit(call, release)
    let status: number
    let responseHeaders: CloudResponse['headers']
    let text: string
    try {
      const res = await this.pool.request({
        method: call.method,
        path: call.path + queryString(call.query),
        headers,
        body,
        signal: AbortSignal.timeout(Math.max(1, Math.ceil(deadline - performance.now())))
      })
      status = res.statusCode
      responseHeaders = res.headers
      text = await this.readCapped(call, res)
    } catch (err) {
      this.settle(call, started, 'error')
      throw err instanceof ProxyError ? err : this.transportError(call, err)
    } finally {
      release()
    }
    this.settle(call, started, status)
    this.log.debug({ cloud: { method: call.method, path: call.path, status, ms: Math.round(performance.now() - started) } }, 'cloud call')
    let parsed: unknown = text
    const type = String(responseHeaders['content-type'] ?? '')
    if (text !== '' && (type.includes('json') || status < 300)) {
      try {
        parsed = JSON.parse(text)
      } catch {
        if (type.includes('json') || call.schema !== undefined) {
          this.log.warn({ cloud: { method: call.method, path: call.path, status } }, 'cloud answered malformed JSON')
          throw new ProxyError(502, 'cloud_bad_response', 'Comfy Cloud answered with malformed JSON', `${call.method} ${call.path}`)
        }
      }
    }
    return { status, headers: responseHeaders, body: parsed as T }
  }

  /** The answer's text, refused past CLOUD_MAX_JSON_BYTES without reading the rest (issue 14 rule 11). */
  private async readCapped (call: CloudCall, res: Dispatcher.ResponseData): Promise<string> {
    const tooLarge = (): ProxyError => {
      res.body.destroy()
      this.log.warn({ cloud: { method: call.method, path: call.path, limit: this.maxJsonBytes } }, 'cloud answer larger than CLOUD_MAX_JSON_BYTES')
      return new ProxyError(502, 'cloud_response_too_large', `Comfy Cloud answered more than CLOUD_MAX_JSON_BYTES (${this.maxJsonBytes} bytes)`, `${call.method} ${call.path}`)
    }
    if (Number(res.headers['content-length'] ?? 0) > this.maxJsonBytes) throw tooLarge()
    const chunks: Buffer[] = []
    let bytes = 0
    for await (const chunk of res.body) {
      bytes += (chunk as Buffer).length
      if (bytes > this.maxJsonBytes) throw tooLarge()
      chunks.push(chunk as Buffer)
    }
    return Buffer.concat(chunks).toString('utf8')
  }

  private check<T> (call: CloudCall, response: CloudResponse<T>): CloudResponse<T> {
    const { status } = response
    if (status >= 200 && status < 300) {
      if (call.schema !== undefined) {
        const validate = cloudValidator(call.schema)
        if (!validate(response.body)) {
          const { field, message } = describeSchemaError(validate.errors![0])
          this.log.warn({ cloud: { method: call.method, path: call.path, schema: call.schema, field } }, 'cloud payload failed its schema')
          this.observer.schemaFailure(call.schema)
          throw new ProxyError(502, 'cloud_schema_mismatch', `Comfy Cloud answered an unexpected ${call.schema}: field ${field} ${message}`,
            `${call.method} ${call.path}`, { field, schema: call.schema })
        }
        const list = LIST_ITEMS[call.schema]
        if (list !== undefined) {
          const items = (response.body as Record<string, unknown[]>)[list.field]
          const valid = this.validItems(items, list.schema, `${call.method} ${call.path}`)
          return { ...response, body: { ...response.body, [list.field]: valid }, dropped: items.length - valid.length }
        }
      }
      return response
    }
    if ((call.accept ?? []).includes(status)) return response
    throw upstreamStatusError(call, response)
  }

  private transportError (call: Pick<CloudCall, 'method' | 'path'>, err: unknown): ProxyError {
    const error = err as NodeJS.ErrnoException
    const where = `${call.method} ${call.path}`
    const timedOut = error instanceof undiciErrors.HeadersTimeoutError || error instanceof undiciErrors.BodyTimeoutError ||
      error.name === 'TimeoutError' || error.name === 'AbortError' || error instanceof undiciErrors.ConnectTimeoutError
    this.log.warn({ cloud: { method: call.method, path: call.path, code: error.code ?? error.name } }, 'cloud call failed')
    if (timedOut) return new ProxyError(504, 'cloud_timeout', `Comfy Cloud did not answer within ${this.timeoutMs} ms`, where)
    if (error.code === 'ECONNREFUSED' || error.code === 'ENOTFOUND' || error.code === 'EAI_AGAIN' || error.code === 'EHOSTUNREACH') {
      return new ProxyError(503, 'cloud_unreachable', 'Comfy Cloud cannot be reached', where)
    }
    return new ProxyError(502, 'cloud_connection_failed', 'The connection to Comfy Cloud failed', where)
  }

  async close (): Promise<void> {
    this.budget.close()
    await Promise.all([this.pool.close(), this.streaming.pool.close()])
  }
}

/** A cloud answer the caller did not expect, as the status a local client should see (issue: 502/503/504 upstream). */
export function upstreamStatusError (call: Pick<CloudCall, 'method' | 'path'>, response: CloudResponse): ProxyError {
  const where = `${call.method} ${call.path}`
  const { status } = response
  const refusal = accountRefusal(status, typeof response.body === 'string' ? parseJson(response.body) : response.body)
  if (refusal !== undefined) return accountRefusalError(refusal, where)
  if (status === 401) {
    return new ProxyError(502, 'cloud_auth_failed',
      'Comfy Cloud rejected the proxy\'s API key: check COMFY_CLOUD_API_KEY (or COMFY_CLOUD_API_KEY_FILE) on the proxy', where)
  }
  if (status === 429) {
    const retryAfter = response.headers['retry-after']
    return new ProxyError(503, 'cloud_rate_limited', 'Comfy Cloud is rate-limiting the proxy; retry later', where, {},
      typeof retryAfter === 'string' ? { 'retry-after': retryAfter } : {})
  }
  if (status === 503) return new ProxyError(503, 'cloud_unavailable', 'Comfy Cloud is unavailable', where)
  if (status === 504) return new ProxyError(504, 'cloud_timeout', 'Comfy Cloud timed out', where)
  return new ProxyError(502, 'cloud_error', `Comfy Cloud answered ${status}`, where, { status })
}

function parseJson (text: string): unknown {
  try { return JSON.parse(text) } catch { return undefined }
}

function queryString (query: CloudCall['query']): string {
  if (query === undefined) return ''
  const params = new URLSearchParams()
  for (const [key, value] of Object.entries(query)) if (value !== undefined) params.set(key, String(value))
  const text = params.toString()
  return text === '' ? '' : `?${text}`
}

function backoff (attempt: number): number {
  return Math.round((100 * 2 ** attempt) * (0.5 + Math.random()))
}

export function retryAfterMs (header: string | string[] | undefined): number | undefined {
  const value = Array.isArray(header) ? header[0] : header
  if (value === undefined) return undefined
  const seconds = Number(value)
  const ms = Number.isFinite(seconds) ? seconds * 1000 : Date.parse(value) - Date.now()
  return Number.isFinite(ms) ? Math.min(Math.max(ms, 0), MAX_PAUSE_MS) : undefined
}

async function sleep (ms: number): Promise<void> {
  await new Promise(resolve => setTimeout(resolve, ms))
}
