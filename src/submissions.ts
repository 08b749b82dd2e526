/**
 * Prompts submitted through this proxy: who submitted them (client_id) and their extra_data.
 * The WebSocket relay uses the owner to keep one client's execution events from another's socket,
 * as local ComfyUI does (contract §9); /queue uses extra_data, which the cloud queue lacks (notes §4.7).
 * Memory is bounded in bytes (issue 14 rule 6): extra_data is kept as JSON text, without the keys
 * local ComfyUI hides, and not at all past EXTRA_DATA_MAX_BYTES (/queue then shows what the cloud
 * keeps); the whole map holds at most MAX_BYTES, oldest dropped first.
 */
import { LRUCache } from 'lru-cache'
import type { Json } from './cloud/types.js'
import { localExtraData } from './compat/history.js'

export interface Submission {
  clientId: string | undefined
  extraData: Json | undefined
}

interface Kept { clientId: string | undefined, extraData: string | undefined }

const MAX_BYTES = 16 * 1024 * 1024
const EXTRA_DATA_MAX_BYTES = 256 * 1024

export class Submissions {
  private readonly byId = new LRUCache<string, Kept>({
    max: 10_000,
    maxSize: MAX_BYTES,
    sizeCalculation: (kept, id) => 64 + id.length + (kept.clientId?.length ?? 0) + (kept.extraData?.length ?? 0),
    ttl: 24 * 3600_000
  })
  private readonly inFlight = new Set<number>()
  private nextTicket = 0
  private waiters: Array<{ pending: Set<number>, callback: () => void }> = []

  /**
   * A submit is on its way to the cloud. The cloud may start the job, and send its first events,
   * before it answers with the prompt id; sockets hold frames of unknown prompts until then.
   */
  begin (): number {
    const ticket = this.nextTicket++
    this.inFlight.add(ticket)
    return ticket
  }

  end (ticket: number): void {
    this.inFlight.delete(ticket)
    const ready = this.waiters.filter(waiter => waiter.pending.delete(ticket) && waiter.pending.size === 0)
    if (ready.length === 0) return
    this.waiters = this.waiters.filter(waiter => waiter.pending.size > 0)
    for (const waiter of ready) waiter.callback()
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
    return this.byId.has(promptId)
  }

  record (promptId: string, extraData: Json): void {
    const clientId = typeof extraData.client_id === 'string' && extraData.client_id !== '' ? extraData.client_id : undefined
    const text = JSON.stringify(localExtraData(extraData, undefined))
    this.byId.set(promptId, { clientId, extraData: text.length <= EXTRA_DATA_MAX_BYTES ? text : undefined })
  }

  get (promptId: string): Submission | undefined {
    const kept = this.byId.get(promptId)
    return kept === undefined ? undefined : { clientId: kept.clientId, extraData: kept.extraData === undefined ? undefined : JSON.parse(kept.extraData) as Json }
  }

  /** bytes held (approximately: characters of JSON text and ids) */
  get bytes (): number {
    return this.byId.calculatedSize
  }

  /** true when this proxy knows the prompt was submitted by a different client_id */
  ownedByAnother (promptId: string, clientId: string): boolean {
    const owner = this.byId.get(promptId)?.clientId
    return owner !== undefined && owner !== clientId
  }
}
