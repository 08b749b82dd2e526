/**
 * The cloud budget: one limiter in front of every Comfy Cloud call the proxy makes.
 * - A token bucket of `maxRps` calls per second (bursts of one second's worth), so that no
 *   number of local clients can push the account past the cloud's per-account rate limit.
 * - Two priorities: writes (submits, cancels, deletes, uploads) are served before reads.
 * - One shared back-off: a 429 from any cloud route pauses the reads of every route for its
 *   Retry-After, instead of each request retrying on its own (a 429 storm).
 * A caller that would wait longer than it may (its CLOUD_TIMEOUT_MS) is refused at once with a
 * 503 and a Retry-After, never left hanging.
 */
import { ProxyError } from '../errors.js'
import { TokenBucket } from '../token-bucket.js'

export type Priority = 'write' | 'read'

/**
 * The budget of a fleet of replicas (issue 13): one token bucket for all of them (so N replicas do
 * not spend N times the account's limit) and a back-off that every replica hears. Each replica
 * still orders its own calls (writes first) before it takes a fleet token.
 */
export interface FleetBudget {
  reserve: (ratePerSecond: number, burst: number, maxWaitMs: number) => Promise<{ granted: boolean, waitMs: number }>
  announcePause: (ms: number) => void
}

/** Told of every admission, for /metrics. */
export interface BudgetObserver {
  /** a call was let through after `seconds` of waiting, or refused */
  admission: (priority: Priority, outcome: 'granted' | 'refused', seconds: number) => void
  /** the cloud answered 429: reads pause for `ms` */
  rateLimited: (ms: number) => void
}

interface Waiter {
  priority: Priority
  since: number
  resolve: () => void
  reject: (error: ProxyError) => void
  timer: NodeJS.Timeout
}

/** Without a Retry-After, a 429 pauses reads this long. */
const DEFAULT_PAUSE_MS = 1_000
/** A Retry-After beyond this is taken as this (a broken header must not stop the proxy for hours). */
export const MAX_PAUSE_MS = 300_000

export class CloudBudget {
  private readonly bucket: TokenBucket
  private pausedUntil = 0
  private readonly capacity: number
  private readonly queues: Record<Priority, Waiter[]> = { write: [], read: [] }
  private timer: NodeJS.Timeout | undefined

  constructor (
    private readonly maxRps: number,
    private readonly observer: BudgetObserver = { admission: () => {}, rateLimited: () => {} },
    private readonly fleet?: FleetBudget,
    private readonly now: () => number = () => performance.now()
  ) {
    this.capacity = Math.max(1, maxRps)
    this.bucket = new TokenBucket(now, this.capacity)
  }

  /** Milliseconds until reads may go out again (0: not paused). */
  get pausedForMs (): number {
    return Math.max(0, this.pausedUntil - this.now())
  }

  get waiting (): number {
    return this.queues.write.length + this.queues.read.length
  }

  /**
   * Resolves when the call may go out. Refuses with a 503 (and Retry-After) when that would take
   * longer than `maxWaitMs`: reads while the cloud has asked the proxy to back off, or any call
   * when too many are queued ahead of it.
   */
  async acquire (priority: Priority, maxWaitMs: number): Promise<void> {
    const since = this.now()
    await this.acquireHere(priority, maxWaitMs)
    if (this.fleet === undefined) return
    const reservation = await this.fleet.reserve(this.maxRps, this.capacity, Math.max(0, maxWaitMs - (this.now() - since)))
    if (!reservation.granted) throw this.refuse(priority, since, this.busyError(reservation.waitMs))
    if (reservation.waitMs > 0) await new Promise(resolve => setTimeout(resolve, reservation.waitMs))
  }

  /** Another replica of the fleet was told to back off: so is this one (without telling the fleet again). */
  pauseFromFleet (ms: number): void {
    this.pausedUntil = Math.max(this.pausedUntil, this.now() + Math.min(ms, MAX_PAUSE_MS))
    this.schedule()
  }

  private async acquireHere (priority: Priority, maxWaitMs: number): Promise<void> {
    const since = this.now()
    if (priority === 'read' && this.pausedForMs > maxWaitMs) throw this.refuse(priority, since, rateLimitedError(this.pausedForMs))
    if (this.mayGoNow(priority)) {
      this.bucket.take()
      this.observer.admission(priority, 'granted', 0)
      return
    }
    await new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        priority,
        since,
        resolve,
        reject,
        timer: setTimeout(() => {
          const queue = this.queues[priority]
          queue.splice(queue.indexOf(waiter), 1)
          reject(this.refuse(priority, since, this.pausedForMs > 0 && priority === 'read' ? rateLimitedError(this.pausedForMs) : this.busyError()))
        }, Math.max(0, maxWaitMs))
      }
      this.queues[priority].push(waiter)
      this.schedule()
    })
  }

  /** For the status page: the rate, how much of this second's allowance is spent, the calls waiting, and any pause. */
  snapshot (): { maxRps: number, inUse: number, waiting: number, pausedForMs: number } {
    return { maxRps: this.maxRps, inUse: Math.max(0, Math.round(this.capacity - this.tokens())), waiting: this.waiting, pausedForMs: Math.round(this.pausedForMs) }
  }

  /** The cloud answered 429: reads of every route wait `retryAfterMs` (or a second without a Retry-After). */
  pause (retryAfterMs: number | undefined): void {
    const ms = Math.min(retryAfterMs ?? DEFAULT_PAUSE_MS, MAX_PAUSE_MS)
    this.pausedUntil = Math.max(this.pausedUntil, this.now() + ms)
    this.observer.rateLimited(ms)
    this.fleet?.announcePause(ms)
    this.schedule()
  }

  /** Refuses every waiting call (shutdown). */
  close (): void {
    if (this.timer !== undefined) clearTimeout(this.timer)
    for (const queue of Object.values(this.queues)) {
      for (const waiter of queue.splice(0)) {
        clearTimeout(waiter.timer)
        waiter.reject(new ProxyError(503, 'shutting_down', 'The proxy is shutting down'))
      }
    }
  }

  private mayGoNow (priority: Priority): boolean {
    if (this.tokens() < 1 || this.queues.write.length > 0) return false
    return priority === 'write' || (this.queues.read.length === 0 && this.pausedForMs === 0)
  }

  private tokens (): number {
    return this.bucket.level(this.maxRps, this.capacity)
  }

  private drain (): void {
    this.timer = undefined
    while (this.tokens() >= 1) {
      const queue = this.queues.write.length > 0 ? this.queues.write : this.pausedForMs === 0 ? this.queues.read : undefined
      const waiter = queue?.shift()
      if (waiter === undefined) break
      this.bucket.take()
      clearTimeout(waiter.timer)
      this.observer.admission(waiter.priority, 'granted', (this.now() - waiter.since) / 1000)
      waiter.resolve()
    }
    this.schedule()
  }

  /** Wakes up when the next waiter can go: at the next token, and for reads not before the pause ends. */
  private schedule (): void {
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
    const readsWait = this.queues.read.length > 0
    if (this.queues.write.length === 0 && !readsWait) return
    const tokens = this.tokens()
    const untilToken = tokens >= 1 ? 0 : (1 - tokens) * 1000 / this.maxRps
    const delay = this.queues.write.length > 0 ? untilToken : Math.max(untilToken, this.pausedForMs)
    this.timer = setTimeout(() => { this.drain() }, Math.ceil(delay))
    this.timer.unref()
  }

  private busyError (fleetWaitMs?: number): ProxyError {
    const seconds = Math.max(1, Math.ceil(fleetWaitMs !== undefined ? fleetWaitMs / 1000 : this.waiting / this.maxRps))
    return new ProxyError(503, 'cloud_budget_exhausted',
      'Too many Comfy Cloud calls are waiting for the proxy\'s cloud budget (CLOUD_MAX_RPS); retry later', '', {},
      { 'retry-after': String(seconds) })
  }

  private refuse (priority: Priority, since: number, error: ProxyError): ProxyError {
    this.observer.admission(priority, 'refused', (this.now() - since) / 1000)
    return error
  }
}

export function rateLimitedError (pausedForMs: number): ProxyError {
  return new ProxyError(503, 'cloud_rate_limited', 'Comfy Cloud is rate-limiting this account; retry later', '', {},
    { 'retry-after': String(Math.max(1, Math.ceil(pausedForMs / 1000))) })
}
