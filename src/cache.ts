/**
 * What the proxy remembers between requests, per replica (design §5: nothing that must be shared).
 * - finished history entries, which never change, as their JSON text in a bounded LRU (by entries
 *   and by bytes): serving one is a string copy, and text takes far less memory than objects;
 * - identical concurrent cloud reads coalesced into one call, whose answer other pollers reuse
 *   for a short window (listTtlMs).
 * Every change made through the proxy bumps a generation, so a read that started before a
 * delete can neither be reused nor written into the cache after it.
 */
import { LRUCache } from 'lru-cache'

export interface CacheOptions {
  maxEntries: number
  maxBytes: number
  ttlMs: number
  listTtlMs: number
}

interface Shared { value: Promise<unknown>, generation: number, expires: number }

export class ProxyCache {
  private readonly entries: LRUCache<string, string> | undefined
  private readonly reads = new Map<string, Shared>()
  private readonly listTtlMs: number
  private generationCounter = 0
  hits = 0
  misses = 0

  constructor (options: CacheOptions) {
    this.listTtlMs = options.listTtlMs
    if (options.maxEntries > 0 && options.maxBytes > 0) {
      this.entries = new LRUCache({
        max: options.maxEntries,
        maxSize: options.maxBytes,
        sizeCalculation: (json: string) => Math.max(json.length, 1),
        ttl: options.ttlMs > 0 ? options.ttlMs : undefined
      })
    }
  }

  get generation (): number {
    return this.generationCounter
  }

  getEntry (id: string): string | undefined {
    const entry = this.entries?.get(id)
    if (entry === undefined) this.misses++
    else this.hits++
    return entry
  }

  /** Stores a finished entry's JSON unless something changed since the read began. */
  setEntry (id: string, json: string, readGeneration: number): void {
    if (readGeneration === this.generationCounter) this.entries?.set(id, json)
  }

  /** The cloud says an entry is gone (404): drop it, and nothing else. */
  forgetEntry (id: string): void {
    this.entries?.delete(id)
  }

  deleteEntries (ids: Iterable<string>): void {
    for (const id of ids) this.entries?.delete(id)
    this.changed()
  }

  clearEntries (): void {
    this.entries?.clear()
    this.changed()
  }

  /** Something changed upstream through this proxy: shared answers from before are stale. */
  changed (): void {
    this.generationCounter++
    this.reads.clear()
  }

  private sweep (now: number): void {
    for (const [key, item] of this.reads) if (item.expires <= now) this.reads.delete(key)
  }

  get size (): { entries: number, bytes: number } {
    return { entries: this.entries?.size ?? 0, bytes: this.entries?.calculatedSize ?? 0 }
  }

  /**
   * Single flight: concurrent callers with the same key share one call; its result is reused
   * for ttlMs (listTtlMs by default; 0 shares only the in-flight call). Failures are not kept.
   */
  async shared<T> (key: string, load: () => Promise<T>, ttlMs = this.listTtlMs): Promise<T> {
    const now = Date.now()
    const found = this.reads.get(key)
    if (found !== undefined && found.generation === this.generationCounter && found.expires > now) return await (found.value as Promise<T>)
    const generation = this.generationCounter
    const item: Shared = { value: load(), generation, expires: Number.POSITIVE_INFINITY }
    if (this.reads.size >= 64) this.sweep(now)
    this.reads.set(key, item)
    try {
      const value = await item.value
      item.expires = Date.now() + ttlMs
      if (ttlMs <= 0 && this.reads.get(key) === item) this.reads.delete(key)
      return value as T
    } catch (err) {
      if (this.reads.get(key) === item) this.reads.delete(key)
      throw err
    }
  }
}
