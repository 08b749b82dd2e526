/**
 * Prompts submitted through this proxy (or any replica sharing its state store): who submitted
 * them (client_id) and their extra_data. The WebSocket relay uses the owner to keep one client's
 * execution events from another's socket, as local ComfyUI does (contract §9); /queue uses
 * extra_data, which the cloud queue lacks (notes §4.7).
 *
 * The state store holds every record (so a restart or another replica knows it); this process
 * keeps the recent ones in memory, because the relay decides frame by frame. A frame naming a
 * prompt this process does not know is held while the store is asked, the same way frames are
 * held while a submit is in flight, so that filtering is never a race.
 * Memory is bounded in bytes (issue 14 rule 6): extra_data is kept as JSON text, without the keys
 * local ComfyUI hides, and not at all past EXTRA_DATA_MAX_BYTES (/queue then shows what the cloud
 * keeps); the in-memory map holds at most MAX_BYTES, oldest dropped first.
 */
import { randomUUID } from 'node:crypto'
import { LRUCache } from 'lru-cache'
import type { Json } from '../cloud/types.js'
import { localExtraData } from '../compat/history.js'
import type { StateStore } from '../store/index.js'
import { MemoryStore } from '../store/memory.js'

export interface Submission {
  clientId: string | undefined
  extraData: Json | undefined
}

/** What is kept, in memory and in the store: extra_data as JSON text, or nothing when it was too large. */
interface Kept { clientId: string | undefined, extraData: string | undefined }

const MAX_BYTES = 16 * 1024 * 1024
const EXTRA_DATA_MAX_BYTES = 256 * 1024

const TTL_MS = 24 * 3600_000
const NAMESPACE = 'submission'
/** Fleet messages: a submit began or ended on some replica (its frames must be held there too). */
const CHANNEL = 'submits'
/** Ids the store did not know, not asked again for this long (a job started from the web UI, say). */
const UNKNOWN_TTL_MS = 60_000

interface SubmitMessage { replica: string, ticket: number, ended: boolean, promptId?: string, clientId?: string }

export class Submissions {
  private readonly byId = new LRUCache<string, Kept>({
    max: 10_000,
    maxSize: MAX_BYTES,
    sizeCalculation: (kept, id) => 64 + id.length + (kept.clientId?.length ?? 0) + (kept.extraData?.length ?? 0),
    ttl: TTL_MS
  })
  /** owners announced by other replicas; their extra_data stays in the store until /queue asks */
  private readonly owners = new LRUCache<string, { clientId: string | undefined }>({ max: 10_000, ttl: TTL_MS })
  private readonly unknown = new LRUCache<string, true>({ max: 10_000, ttl: UNKNOWN_TTL_MS })
  private readonly lookingUp = new Set<string>()
  private readonly inFlight = new Set<string>()
  private readonly replica = randomUUID()
  private nextTicket = 0
  private waiters: Array<{ pending: Set<string>, callback: () => void }> = []

  /**
   * @param store where records live beyond this process (memory: nowhere else)
   * @param remoteSubmitMs how long another replica's submit may hold frames here at most
   */
  constructor (private readonly store: StateStore = new MemoryStore(), private readonly remoteSubmitMs = 30_000) {
    if (store.shared) store.subscribe(CHANNEL, message => { this.remote(message) })
  }

  /**
   * A submit is on its way to the cloud. The cloud may start the job, and send its first events,
   * before it answers with the prompt id; sockets hold frames of unknown prompts until then.
   */
  begin (): number {
    const ticket = this.nextTicket++
    this.inFlight.add(`${this.replica}:${ticket}`)
    this.announce({ replica: this.replica, ticket, ended: false })
    return ticket
  }

  /** The submit ended; `promptId` when the cloud accepted it (and record() was called). */
  end (ticket: number, promptId?: string): void {
    this.settle(`${this.replica}:${ticket}`)
    const clientId = promptId === undefined ? undefined : this.byId.get(promptId)?.clientId
    this.announce({ replica: this.replica, ticket, ended: true, promptId, clientId })
  }

  get busy (): boolean {
    return this.inFlight.size > 0
  }

  /** Calls back once every submit in flight now has ended (later submits do not delay it). */
  whenSettled (callback: () => void): void {
    if (this.inFlight.size === 0) callback()
    else this.waiters.push({ pending: new Set(this.inFlight), callback })
  }

  has (promptId: string): boolean {
    return this.byId.has(promptId) || this.owners.has(promptId)
  }

  /** Resolves once the state store holds the record (an acknowledged prompt keeps its owner across a restart). */
  async record (promptId: string, extraData: Json): Promise<void> {
    const clientId = typeof extraData.client_id === 'string' && extraData.client_id !== '' ? extraData.client_id : undefined
    const text = JSON.stringify(localExtraData(extraData, undefined))
    const kept: Kept = { clientId, extraData: text.length <= EXTRA_DATA_MAX_BYTES ? text : undefined }
    this.byId.set(promptId, kept)
    this.unknown.delete(promptId)
    if (this.store.durable) await this.store.set(NAMESPACE, promptId, kept, TTL_MS).catch(() => {})
  }

  get (promptId: string): Submission | undefined {
    const kept = this.byId.get(promptId)
    return kept === undefined ? undefined : { clientId: kept.clientId, extraData: kept.extraData === undefined ? undefined : JSON.parse(kept.extraData) as Json }
  }

  /** bytes held (approximately: characters of JSON text and ids) */
  get bytes (): number {
    return this.byId.calculatedSize
  }

  /** Brings the records of these prompts into memory from the store (another replica's or an earlier run's). */
  async load (promptIds: Iterable<string>): Promise<void> {
    if (!this.store.durable) return
    const missing = [...promptIds].filter(id => !this.byId.has(id) && (this.owners.has(id) || !this.unknown.has(id)))
    await Promise.all(missing.map(async id => { await this.fetch(id) }))
  }

  /**
   * A relayed frame names a prompt this process does not know: ask the store, holding frames
   * (busy) until it answers (and until `alsoLoad`, what else the frame needs, is done). Nothing to
   * ask when memory is the store.
   */
  lookUp (promptId: string, alsoLoad?: () => Promise<void>): void {
    if (!this.store.durable || this.has(promptId) || this.unknown.has(promptId) || this.lookingUp.has(promptId)) return
    const ticket = `lookup:${promptId}`
    this.lookingUp.add(promptId)
    this.inFlight.add(ticket)
    void Promise.all([this.fetch(promptId), alsoLoad?.().catch(() => {})]).finally(() => {
      this.lookingUp.delete(promptId)
      this.settle(ticket)
    })
  }

  /** true when the prompt is known to have been submitted by a different client_id */
  ownedByAnother (promptId: string, clientId: string): boolean {
    const owner = (this.byId.get(promptId) ?? this.owners.get(promptId))?.clientId
    return owner !== undefined && owner !== clientId
  }

  private async fetch (promptId: string): Promise<void> {
    let found: Kept | undefined
    try {
      found = await this.store.get<Kept>(NAMESPACE, promptId)
    } catch {
      found = undefined
    }
    if (found !== undefined) this.byId.set(promptId, found)
    // An answer read before another replica's write landed: its announcement says otherwise.
    else if (!this.owners.has(promptId)) this.unknown.set(promptId, true)
  }

  private settle (ticket: string): void {
    this.inFlight.delete(ticket)
    const ready = this.waiters.filter(waiter => waiter.pending.delete(ticket) && waiter.pending.size === 0)
    if (ready.length === 0) return
    this.waiters = this.waiters.filter(waiter => waiter.pending.size > 0)
    for (const waiter of ready) waiter.callback()
  }

  private announce (message: SubmitMessage): void {
    if (this.store.shared) this.store.publish(CHANNEL, JSON.stringify(message)).catch(() => {})
  }

  /** Another replica's submit: hold frames here as well until it ends (never longer than remoteSubmitMs). */
  private remote (text: string): void {
    let message: SubmitMessage
    try { message = JSON.parse(text) as SubmitMessage } catch { return }
    if (message.replica === this.replica) return
    const ticket = `${message.replica}:${message.ticket}`
    if (!message.ended) {
      this.inFlight.add(ticket)
      setTimeout(() => { this.settle(ticket) }, this.remoteSubmitMs).unref()
      return
    }
    if (message.promptId !== undefined) {
      // The owner is known at once; extra_data comes from the store when /queue needs it.
      this.unknown.delete(message.promptId)
      this.owners.set(message.promptId, { clientId: message.clientId })
    }
    this.settle(ticket)
  }
}
