/**
 * The web UI's settings (`/settings`), which local ComfyUI keeps in `user/default/comfy.settings.json`.
 * One small asynchronous interface: in memory by default, on the state store with STATE_FILE or REDIS_URL.
 */

import type { StateStore } from './store.js'

export interface SettingsStore {
  /** every setting */
  all: () => Promise<Record<string, unknown>>
  /** one setting, undefined when never written */
  get: (id: string) => Promise<unknown>
  /** writes the given settings, keeping the others (local's `{**settings, **new_settings}`) */
  merge: (values: Record<string, unknown>) => Promise<void>
  /** true once anything was written: local's default user folder exists from then on */
  written: () => Promise<boolean>
}

export class SettingsFullError extends Error {
  constructor (readonly limit: number) {
    super(`The proxy keeps at most ${limit} settings`)
    this.name = 'SettingsFullError'
  }
}

/** Bounds the memory a client can fill with distinct setting ids (the UI has a few hundred). */
export const MAX_SETTINGS = 10_000

export class MemorySettingsStore implements SettingsStore {
  private readonly values = new Map<string, unknown>()
  private everWritten = false

  constructor (private readonly limit = MAX_SETTINGS) {}

  async all (): Promise<Record<string, unknown>> {
    return Object.fromEntries(this.values)
  }

  async get (id: string): Promise<unknown> {
    return this.values.get(id)
  }

  async merge (values: Record<string, unknown>): Promise<void> {
    const added = Object.keys(values).filter(id => !this.values.has(id)).length
    if (this.values.size + added > this.limit) throw new SettingsFullError(this.limit)
    for (const [id, value] of Object.entries(values)) this.values.set(id, value)
    this.everWritten = true
  }

  async written (): Promise<boolean> {
    return this.everWritten
  }
}

/** Settings kept in the state store, so that a restart (file) or another replica (Redis) has them too. */
export class StoredSettings implements SettingsStore {
  /** the store's records expire; settings are meant to last, so "never" is ten years */
  private static readonly TTL_MS = 10 * 365 * 24 * 3600_000

  /** merges in this process, one after the other: each reads what the one before wrote */
  private merging: Promise<unknown> = Promise.resolve()

  constructor (private readonly store: StateStore, private readonly limit = MAX_SETTINGS) {}

  async all (): Promise<Record<string, unknown>> {
    return await this.store.get<Record<string, unknown>>('settings', 'default') ?? {}
  }

  async get (id: string): Promise<unknown> {
    return (await this.all())[id]
  }

  /**
   * Read, merge, write: two merges at once in this process would each lose the other's keys, so they take
   * turns. Replicas sharing Redis can still race (the last write wins), as two browsers saving at once would.
   */
  async merge (values: Record<string, unknown>): Promise<void> {
    const turn = this.merging.then(async () => {
      const merged = { ...await this.all(), ...values }
      if (Object.keys(merged).length > this.limit) throw new SettingsFullError(this.limit)
      await this.store.set('settings', 'default', merged, StoredSettings.TTL_MS)
    })
    this.merging = turn.catch(() => {})
    await turn
  }

  async written (): Promise<boolean> {
    return await this.store.get('settings', 'default') !== undefined
  }
}
