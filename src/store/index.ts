/** Chooses the state store from the configuration: Redis for a fleet, a file for one proxy that restarts, else memory. */
import { createHash } from 'node:crypto'
import { MemoryStore } from './memory.js'
import { FileStore } from './file.js'
import { RedisStore } from './redis.js'
import type { StateStore } from './store.js'

export type { StateStore, Reservation, StoreKind } from './store.js'

export interface StoreSettings {
  stateFile: string
  redisUrl: string
  /** state is per cloud account: replicas with another key sharing the Redis keep theirs apart */
  apiKey: string
  onHealthChange?: (healthy: boolean, first: boolean) => void
}

export function createStore (settings: StoreSettings): StateStore {
  if (settings.redisUrl !== '') {
    const account = createHash('sha256').update(settings.apiKey).digest('hex').slice(0, 16)
    return new RedisStore({ url: settings.redisUrl, prefix: `comfy-compat-proxy:${account}:`, onHealthChange: settings.onHealthChange })
  }
  if (settings.stateFile !== '') return new FileStore(settings.stateFile)
  return new MemoryStore()
}
