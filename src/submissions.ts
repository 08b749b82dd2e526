/**
 * Prompts submitted through this proxy: who submitted them (client_id) and their extra_data.
 * The WebSocket relay uses the owner to keep one client's execution events from another's socket,
 * as local ComfyUI does (contract §9); /queue uses extra_data, which the cloud queue lacks (notes §4.7).
 */
import { LRUCache } from 'lru-cache'
import type { Json } from './cloud/types.js'

export interface Submission {
  clientId: string | undefined
  extraData: Json
}

export class Submissions {
  private readonly byId = new LRUCache<string, Submission>({ max: 10_000, ttl: 24 * 3600_000 })
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
    this.byId.set(promptId, { clientId, extraData })
  }

  get (promptId: string): Submission | undefined {
    return this.byId.get(promptId)
  }

  /** true when this proxy knows the prompt was submitted by a different client_id */
  ownedByAnother (promptId: string, clientId: string): boolean {
    const owner = this.byId.get(promptId)?.clientId
    return owner !== undefined && owner !== clientId
  }
}
