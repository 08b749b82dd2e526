/**
 * The Redis store: state shared by every replica of a fleet (ioredis: reconnection, pipelines and
 * Lua scripts done right). While Redis is unreachable this replica keeps serving from its own
 * memory (reads and writes, a local token bucket, local messages), reports itself unhealthy, and
 * replays the writes it made meanwhile as soon as Redis is back.
 */
import { Redis } from 'ioredis'
import { MemoryStore } from './memory.js'
import { LocalBuckets, type Reservation, type StateStore } from './store.js'

/** One token bucket, atomic for the whole fleet; the time is Redis's own, so replicas' clocks do not matter. */
const RESERVE_SCRIPT = `
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local max_wait = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then tokens = burst; ts = now end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate / 1000)
local after = tokens - 1
local wait = 0
if after < 0 then wait = math.ceil(-after * 1000 / rate) end
if wait > max_wait then after = tokens end
redis.call('HSET', KEYS[1], 'tokens', tostring(after), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 60000)
if wait > max_wait then return {0, wait} end
return {1, wait}
`

interface PendingWrite { namespace: string, key: string, json: string | undefined, expiresAt: number }

/** Writes remembered while Redis is down; past this the oldest are dropped (they expire anyway). */
const MAX_PENDING = 10_000
const MAX_PENDING_BYTES = 64 * 1024 * 1024

export interface RedisStoreOptions {
  url: string
  /** prefix of every key and channel, so that several proxies (or tests) can share one Redis */
  prefix?: string
  /** Redis became reachable or unreachable; `first` for the first answer or failure after start. */
  onHealthChange?: (healthy: boolean, first: boolean) => void
  commandTimeoutMs?: number
}

function pendingId (namespace: string, key: string): string {
  return `${namespace}\u0000${key}`
}

export class RedisStore implements StateStore {
  readonly kind = 'redis' as const
  readonly durable = true
  readonly shared = true
  private readonly client: Redis
  private readonly subscriber: Redis
  private readonly prefix: string
  private readonly local = new MemoryStore()
  private readonly localBuckets = new LocalBuckets()
  private readonly pending = new Map<string, PendingWrite>()
  private pendingBytes = 0
  private readonly listeners = new Map<string, Set<(message: string) => void>>()
  /** undefined until Redis first answered or first failed */
  private wasHealthy: boolean | undefined
  private closed = false

  constructor (private readonly options: RedisStoreOptions) {
    this.prefix = options.prefix ?? 'comfy-compat-proxy:'
    const connection = {
      // Fail at once while disconnected (the memory fallback answers) instead of queueing behind a dead socket.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: options.commandTimeoutMs ?? 1000,
      connectTimeout: 2000,
      retryStrategy: (times: number) => Math.min(100 * times, 2000),
      lazyConnect: false
    }
    this.client = new Redis(options.url, connection)
    this.subscriber = new Redis(options.url, { ...connection, enableOfflineQueue: true, commandTimeout: undefined })
    this.client.defineCommand('reserveToken', { numberOfKeys: 1, lua: RESERVE_SCRIPT })
    // Errors are reported through healthy/onHealthChange; an 'error' event without a listener would crash the process.
    this.client.on('error', () => {})
    this.subscriber.on('error', () => {})
    this.client.on('ready', () => { void this.catchUp() })
    this.client.on('close', () => { this.healthChanged() })
    this.subscriber.on('message', (channel: string, message: string) => {
      for (const listener of this.listeners.get(channel.slice(this.prefix.length)) ?? []) listener(message)
    })
  }

  get healthy (): boolean {
    return this.client.status === 'ready'
  }

  /** Resolves once Redis answered (true) or after timeoutMs (false): the store works either way. */
  async connected (timeoutMs = 2000): Promise<boolean> {
    if (this.healthy) return true
    return await new Promise(resolve => {
      const timer = setTimeout(() => { this.client.off('ready', onReady); resolve(false) }, timeoutMs)
      const onReady = (): void => { clearTimeout(timer); resolve(true) }
      this.client.once('ready', onReady)
    })
  }

  private healthChanged (): void {
    const healthy = this.healthy
    if (healthy === this.wasHealthy || this.closed) return
    const first = this.wasHealthy === undefined
    this.wasHealthy = healthy
    this.options.onHealthChange?.(healthy, first)
  }

  private redisKey (namespace: string, key: string): string {
    return `${this.prefix}${namespace}:${key}`
  }

  /** A write to replay when Redis returns; the oldest are dropped past MAX_PENDING writes or MAX_PENDING_BYTES. */
  private remember (write: PendingWrite): void {
    const id = pendingId(write.namespace, write.key)
    this.forgetPending(id)
    this.pending.set(id, write)
    this.pendingBytes += write.json?.length ?? 0
    while (this.pending.size > MAX_PENDING || this.pendingBytes > MAX_PENDING_BYTES) this.forgetPending(this.pending.keys().next().value!)
  }

  private forgetPending (id: string): void {
    this.pendingBytes -= this.pending.get(id)?.json?.length ?? 0
    this.pending.delete(id)
  }

  /**
   * Redis is back: replay what was written meanwhile, then report healthy. A replayed write wins over
   * one another replica made during the outage: the proxy writes most keys once (a prompt's ids, its
   * submitter), and the rest are short-lived caches or a setting the user last changed here.
   */
  private async catchUp (): Promise<void> {
    const writes = [...this.pending.values()]
    this.pending.clear()
    this.pendingBytes = 0
    const now = Date.now()
    const pipeline = this.client.pipeline()
    for (const write of writes) {
      const key = this.redisKey(write.namespace, write.key)
      if (write.json === undefined) pipeline.del(key)
      else if (write.expiresAt > now) pipeline.set(key, write.json, 'PX', write.expiresAt - now)
    }
    try {
      if (writes.length > 0) await pipeline.exec()
    } catch {
      for (const write of writes) this.remember(write)
    }
    this.healthChanged()
  }

  async get<T = unknown>(namespace: string, key: string): Promise<T | undefined> {
    if (this.healthy) {
      try {
        const json = await this.client.get(this.redisKey(namespace, key))
        if (json !== null) return JSON.parse(json) as T
        // Redis is the truth while it answers (another replica may have deleted the record); memory
        // only for a write of this replica's that has not reached Redis yet.
        if (!this.pending.has(pendingId(namespace, key))) return undefined
      } catch {
        this.healthChanged()
      }
    }
    return await this.local.get<T>(namespace, key)
  }

  // Commands go to Redis in the order they are called (nothing awaited before), so a read made
  // after a write that is not awaited yet still sees it.
  async set (namespace: string, key: string, value: unknown, ttlMs: number): Promise<void> {
    const json = JSON.stringify(value)
    this.local.setJson(namespace, key, json, ttlMs)
    const write = { namespace, key, json, expiresAt: Date.now() + ttlMs }
    if (!this.healthy) return this.remember(write)
    try {
      await this.client.set(this.redisKey(namespace, key), json, 'PX', Math.max(1, Math.round(ttlMs)))
    } catch {
      this.remember(write)
      this.healthChanged()
    }
  }

  async delete (namespace: string, key: string): Promise<void> {
    const dropped = this.local.delete(namespace, key)
    const write = { namespace, key, json: undefined, expiresAt: 0 }
    if (!this.healthy) {
      this.remember(write)
      return await dropped
    }
    try {
      await Promise.all([dropped, this.client.del(this.redisKey(namespace, key))])
    } catch {
      this.remember(write)
      this.healthChanged()
    }
  }

  async reserve (bucket: string, ratePerSecond: number, burst: number, maxWaitMs: number): Promise<Reservation> {
    if (this.healthy) {
      try {
        const [granted, waitMs] = await (this.client as unknown as {
          reserveToken: (key: string, ...args: number[]) => Promise<[number, number]>
        }).reserveToken(this.redisKey('bucket', bucket), ratePerSecond, burst, maxWaitMs)
        return { granted: granted === 1, waitMs: Number(waitMs) }
      } catch {
        this.healthChanged()
      }
    }
    // Redis down: this replica spends from its own bucket until it is back.
    return this.localBuckets.reserve(bucket, ratePerSecond, burst, maxWaitMs)
  }

  async publish (channel: string, message: string): Promise<void> {
    if (this.healthy) {
      try {
        await this.client.publish(this.prefix + channel, message)
        return
      } catch {
        this.healthChanged()
      }
    }
    for (const listener of this.listeners.get(channel) ?? []) listener(message)
  }

  subscribe (channel: string, listener: (message: string) => void): void {
    let set = this.listeners.get(channel)
    if (set === undefined) {
      set = new Set()
      this.listeners.set(channel, set)
      // ioredis subscribes again by itself after a reconnect.
      this.subscriber.subscribe(this.prefix + channel).catch(() => {})
    }
    set.add(listener)
  }

  async close (): Promise<void> {
    this.closed = true
    this.listeners.clear()
    this.client.disconnect()
    this.subscriber.disconnect()
    await this.local.close()
  }
}
