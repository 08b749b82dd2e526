/**
 * What the proxy knows of the prompts it submitted: the id the client uses for each and its number.
 *
 * Local ComfyUI keeps a client's `prompt_id` as given (any string) and accepts a reused one; the
 * cloud mints its own UUID when it does not take the client's (observed finding 4). The proxy
 * therefore answers with the client's id and maps it to the cloud's, both ways, wherever a prompt
 * id appears. Each prompt also gets one `number`, the same in POST /prompt, /queue, /history and
 * /api/jobs (observed finding 3); the cloud has no such counter that it shows everywhere.
 *
 * The state store keeps every prompt for a week (a restart or another replica maps the same ids, issue
 * 13); memory keeps the recent ones and is bounded: the oldest are forgotten first, and brought back
 * from the store when asked. A prompt neither knows is shown with the cloud's id and its creation time
 * as number.
 */
import { randomUUID } from 'node:crypto'
import { LRUCache } from 'lru-cache'
import type { StateStore } from '../store/index.js'

export interface SubmittedPrompt {
  /** the id the cloud gave the job */
  cloudId: string
  /** the id the client knows it by (the cloud's id when the client chose none) */
  clientId: string
  number: number
}

/** Ids to bring into memory before the synchronous lookups: ids clients sent, and cloud ids about to be shown. */
export interface IdsToLoad {
  client?: Iterable<string>
  cloud?: Iterable<string>
}

/** The small interface the routes use. Lookups are synchronous; `load` first brings what the state store knows into memory. */
export interface PromptIdMap {
  /** Remembers a submitted prompt; resolves once the state store holds it (an acknowledged prompt survives a restart). */
  remember: (prompt: SubmittedPrompt) => Promise<void>
  /** Brings what the state store knows of these ids (an earlier run's or another replica's prompts) into memory. */
  load: (ids: IdsToLoad) => Promise<void>
  /** the cloud id for an id a client sent; the id itself when the proxy knows no other */
  toCloud: (clientId: string) => string
  /** the id a client knows a cloud job by; the cloud id itself when the proxy knows no other */
  toClient: (cloudId: string) => string
  /** the prompt's number, when this proxy submitted it */
  numberOf: (cloudId: string) => number | undefined
  /** true when a client id was reused since: a newer cloud job answers to it (local keeps one entry per id) */
  superseded: (cloudId: string) => boolean
  /** true when a client already used this id */
  isTaken: (clientId: string) => boolean
  /** the number of the next prompt: it only grows, and is on the scale of a creation time in ms */
  nextNumber: () => number
}

interface Known { clientId: string, number: number }

/** State store records: the prompt by cloud id, and the cloud id a client's own id answers to now. */
const BY_CLOUD = 'prompt'
const BY_CLIENT = 'prompt-client'
/** Fleet messages: a replica remembered a prompt (every replica maps its ids from then on). */
const CHANNEL = 'prompt-ids'
/** Local ComfyUI forgets ids at a restart; a week outlives any client still polling. */
const TTL_MS = 7 * 24 * 3600_000
/** Ids the store did not know, not asked again for this long (jobs started elsewhere than through the proxy). */
const UNKNOWN_TTL_MS = 60_000

interface Remembered extends SubmittedPrompt { replica: string }

export interface PromptIdsOptions {
  /** where prompts are kept beyond this process; none (or memory) keeps them here alone */
  store?: StateStore
  /** prompts remembered at most */
  maxPrompts?: number
  /** characters of ids remembered at most */
  maxChars?: number
}

export class PromptIds implements PromptIdMap {
  private readonly byCloud: LRUCache<string, Known>
  /** only ids that differ from the cloud's; every value is a key of byCloud */
  private readonly byClient = new Map<string, string>()
  private readonly unknown = new LRUCache<string, true>({ max: 10_000, ttl: UNKNOWN_TTL_MS })
  private readonly store: StateStore | undefined
  private readonly replica = randomUUID()
  private lastNumber = 0

  constructor ({ store, maxPrompts = 10_000, maxChars = 4 * 1024 * 1024 }: PromptIdsOptions = {}) {
    this.byCloud = new LRUCache<string, Known>({
      max: maxPrompts,
      maxSize: maxChars,
      sizeCalculation: (known, cloudId) => cloudId.length + (known.clientId === cloudId ? 0 : known.clientId.length) + 1,
      dispose: (known, cloudId) => {
        if (this.byClient.get(known.clientId) === cloudId) this.byClient.delete(known.clientId)
      }
    })
    this.store = store?.durable === true ? store : undefined
    if (store?.shared === true) store.subscribe(CHANNEL, message => { this.heard(message) })
  }

  async remember (prompt: SubmittedPrompt): Promise<void> {
    this.keep(prompt)
    const { store } = this
    if (store === undefined) return
    const { cloudId, clientId, number } = prompt
    try {
      await Promise.all([
        store.set(BY_CLOUD, cloudId, { clientId, number } satisfies Known, TTL_MS),
        clientId === cloudId ? undefined : store.set(BY_CLIENT, clientId, cloudId, TTL_MS)
      ])
    } catch {
      // The store keeps serving from memory when its backend is down (and catches up): nothing to add here.
    }
    if (store.shared) await store.publish(CHANNEL, JSON.stringify({ ...prompt, replica: this.replica } satisfies Remembered)).catch(() => {})
  }

  async load ({ client = [], cloud = [] }: IdsToLoad): Promise<void> {
    if (this.store === undefined) return
    const tasks: Array<Promise<void>> = []
    for (const id of client) if (!this.byClient.has(id) && !this.byCloud.has(id) && !this.unknown.has(id)) tasks.push(this.fetchClient(id))
    for (const id of cloud) if (!this.byCloud.has(id) && !this.unknown.has(id)) tasks.push(this.fetchCloud(id))
    await Promise.all(tasks)
  }

  toCloud (clientId: string): string {
    return this.byClient.get(clientId) ?? clientId
  }

  toClient (cloudId: string): string {
    return this.byCloud.peek(cloudId)?.clientId ?? cloudId
  }

  numberOf (cloudId: string): number | undefined {
    return this.byCloud.peek(cloudId)?.number
  }

  superseded (cloudId: string): boolean {
    const clientId = this.byCloud.peek(cloudId)?.clientId
    return clientId !== undefined && this.toCloud(clientId) !== cloudId
  }

  isTaken (clientId: string): boolean {
    return this.byClient.has(clientId) || this.byCloud.has(clientId)
  }

  nextNumber (): number {
    this.lastNumber = Math.max(Date.now(), this.lastNumber + 1)
    return this.lastNumber
  }

  get size (): number {
    return this.byCloud.size
  }

  private keep ({ cloudId, clientId, number }: SubmittedPrompt): void {
    this.unknown.delete(cloudId)
    this.unknown.delete(clientId)
    this.byCloud.set(cloudId, { clientId, number })
    if (clientId !== cloudId && this.byCloud.has(cloudId)) this.byClient.set(clientId, cloudId)
  }

  private heard (message: string): void {
    let prompt: Remembered
    try { prompt = JSON.parse(message) as Remembered } catch { return }
    if (prompt.replica === this.replica || typeof prompt.cloudId !== 'string' || typeof prompt.clientId !== 'string' || typeof prompt.number !== 'number') return
    this.keep(prompt)
  }

  private async read<T> (namespace: string, key: string): Promise<T | undefined> {
    try {
      return await this.store?.get<T>(namespace, key)
    } catch {
      return undefined
    }
  }

  /** An id a client sent: its own id for a cloud job, or a cloud id itself. */
  private async fetchClient (clientId: string): Promise<void> {
    const cloudId = await this.read<string>(BY_CLIENT, clientId)
    await this.fetchCloud(cloudId ?? clientId)
  }

  private async fetchCloud (cloudId: string): Promise<void> {
    const known = await this.read<Known>(BY_CLOUD, cloudId)
    // Heard from another replica meanwhile: that is newer than what was read.
    if (this.byCloud.has(cloudId)) return
    if (known === undefined) {
      this.unknown.set(cloudId, true)
      return
    }
    this.byCloud.set(cloudId, known)
    if (known.clientId === cloudId || this.byClient.has(known.clientId)) return
    // The client id answers to this job unless it was reused since (then this run is superseded).
    const current = await this.read<string>(BY_CLIENT, known.clientId)
    if (current === cloudId && this.byCloud.has(cloudId) && !this.byClient.has(known.clientId)) this.byClient.set(known.clientId, cloudId)
  }
}

/** How clients know a cloud job: its client id and number, else the cloud id and the given number (its creation time). */
export function identityOf (ids: PromptIdMap, cloudId: string, fallbackNumber: number): { promptId: string, number: number } {
  return { promptId: ids.toClient(cloudId), number: ids.numberOf(cloudId) ?? fallbackNumber }
}
