/** The memory store: one process, bounded by record count and by bytes, lost on restart (the default for `npm start`). */
import { LRUCache } from 'lru-cache'
import { SingleProcessStore } from './store.js'

export class MemoryStore extends SingleProcessStore {
  readonly kind = 'memory' as const
  readonly durable = false
  private readonly records: LRUCache<string, string>

  constructor ({ maxRecords = 100_000, maxBytes = 64 * 1024 * 1024, now = Date.now }: { maxRecords?: number, maxBytes?: number, now?: () => number } = {}) {
    super(now)
    this.records = new LRUCache({ max: maxRecords, maxSize: maxBytes, sizeCalculation: (json, key) => json.length + key.length, perf: { now } })
  }

  async get<T = unknown>(namespace: string, key: string): Promise<T | undefined> {
    const json = this.records.get(`${namespace}\u0000${key}`)
    return json === undefined ? undefined : JSON.parse(json) as T
  }

  async set (namespace: string, key: string, value: unknown, ttlMs: number): Promise<void> {
    this.setJson(namespace, key, JSON.stringify(value), ttlMs)
  }

  /** A value already serialised (the Redis store keeps its copy here without a second JSON.stringify). */
  setJson (namespace: string, key: string, json: string, ttlMs: number): void {
    this.records.set(`${namespace}\u0000${key}`, json, { ttl: ttlMs })
  }

  async delete (namespace: string, key: string): Promise<void> {
    this.records.delete(`${namespace}\u0000${key}`)
  }
}
