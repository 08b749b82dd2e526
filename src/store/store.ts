/**
 * One small interface for everything the proxy must remember beyond a single request
 * (design §4 `store/`): records with a time to live, a fleet-wide token bucket for the cloud
 * budget, and fleet-wide messages. Three implementations share it: memory (one process),
 * file (an embedded SQLite database: survives a restart) and Redis (shared by replicas).
 * Values are JSON; every record expires, so no implementation grows without bound.
 */
import { EventEmitter } from 'node:events'
import { TokenBucket, type Reservation } from '../token-bucket.js'

export type { Reservation }

export type StoreKind = 'memory' | 'file' | 'redis'

export interface StateStore {
  readonly kind: StoreKind
  /** records outlive this process (file, Redis): worth writing what a restart must know */
  readonly durable: boolean
  /** other replicas read the same records and hear the same messages (Redis) */
  readonly shared: boolean
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

/** Buckets by name, each created full. */
export class LocalBuckets {
  private readonly buckets = new Map<string, TokenBucket>()
  constructor (private readonly now = Date.now) {}

  reserve (bucket: string, ratePerSecond: number, burst: number, maxWaitMs: number): Reservation {
    let found = this.buckets.get(bucket)
    if (found === undefined) {
      found = new TokenBucket(this.now, burst)
      this.buckets.set(bucket, found)
    }
    return found.reserve(ratePerSecond, burst, maxWaitMs)
  }
}

/** What the memory and file stores share: one process is the whole fleet, so the bucket and messages are local. */
export abstract class SingleProcessStore implements StateStore {
  abstract readonly kind: StoreKind
  abstract readonly durable: boolean
  readonly shared = false
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
