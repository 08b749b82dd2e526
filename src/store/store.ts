import { EventEmitter } from 'node:events'
/**
 * One small interface for everything the proxy must remember beyond a single request
 * (design §4 `store/`): records with a time to live, a fleet-wide token bucket for the cloud
 * budget, and fleet-wide messages. Three implementations share it: memory (one process),
 * file (an embedded SQLite database: survives a restart) and Redis (shared by replicas).
 * Values are JSON; every record expires, so no implementation grows without bound.
 */
export interface Reservation {
  /** whether a token was taken; false when the wait would exceed the caller's limit */
  granted: boolean
  /** how long the caller must wait before using the token (or would have had to) */
  waitMs: number
}

export type StoreKind = 'memory' | 'file' | 'redis'

export interface StateStore {
  readonly kind: StoreKind
  /** false while a shared backend is unreachable and this replica serves from memory alone */
  readonly healthy: boolean
  get: <T = unknown>(namespace: string, key: string) => Promise<T | undefined>
  set: (namespace: string, key: string, value: unknown, ttlMs: number) => Promise<void>
  delete: (namespace: string, key: string) => Promise<void>
  /**
   * Takes one token from a bucket shared by everyone using this store (refilled at `ratePerSecond`,
   * holding at most `burst`). Tokens are reserved in order: a granted reservation may ask the caller
   * to wait. One whose wait would exceed `maxWaitMs` takes nothing.
   */
  reserve: (bucket: string, ratePerSecond: number, burst: number, maxWaitMs: number) => Promise<Reservation>
  /** Sends a message to every subscriber of the channel on every replica, this one included. */
  publish: (channel: string, message: string) => Promise<void>
  subscribe: (channel: string, listener: (message: string) => void) => void
  close: () => Promise<void>
}

/** A token bucket kept in one process: the memory and file stores, and Redis's stand-in while it is down. */
export class LocalBucket {
  private tokens: number
  private updated: number

  constructor (private readonly now = Date.now, burst = 0) {
    this.tokens = burst
    this.updated = now()
  }

  reserve (ratePerSecond: number, burst: number, maxWaitMs: number): Reservation {
    const now = this.now()
    this.tokens = Math.min(burst, this.tokens + (now - this.updated) * ratePerSecond / 1000)
    this.updated = now
    const after = this.tokens - 1
    const waitMs = after >= 0 ? 0 : Math.ceil(-after * 1000 / ratePerSecond)
    if (waitMs > maxWaitMs) return { granted: false, waitMs }
    this.tokens = after
    return { granted: true, waitMs }
  }
}

/** Buckets by name, each created full. */
export class LocalBuckets {
  private readonly buckets = new Map<string, LocalBucket>()
  constructor (private readonly now = Date.now) {}

  reserve (bucket: string, ratePerSecond: number, burst: number, maxWaitMs: number): Reservation {
    let found = this.buckets.get(bucket)
    if (found === undefined) {
      found = new LocalBucket(this.now, burst)
      this.buckets.set(bucket, found)
    }
    return found.reserve(ratePerSecond, burst, maxWaitMs)
  }
}

/** What the memory and file stores share: one process is the whole fleet, so the bucket and messages are local. */
export abstract class SingleProcessStore implements StateStore {
  abstract readonly kind: StoreKind
  readonly healthy = true
  protected readonly buckets: LocalBuckets
  private readonly channels = new EventEmitter()

  constructor (now: () => number = Date.now) {
    this.buckets = new LocalBuckets(now)
    this.channels.setMaxListeners(0)
  }

  abstract get<T = unknown>(namespace: string, key: string): Promise<T | undefined>
  abstract set (namespace: string, key: string, value: unknown, ttlMs: number): Promise<void>
  abstract delete (namespace: string, key: string): Promise<void>

  async reserve (bucket: string, ratePerSecond: number, burst: number, maxWaitMs: number): Promise<Reservation> {
    return this.buckets.reserve(bucket, ratePerSecond, burst, maxWaitMs)
  }

  async publish (channel: string, message: string): Promise<void> {
    this.channels.emit(channel, message)
  }

  subscribe (channel: string, listener: (message: string) => void): void {
    this.channels.on(channel, listener)
  }

  async close (): Promise<void> {
    this.channels.removeAllListeners()
  }
}
