/**
 * What the proxy knows of the prompts it submitted: the id the client uses for each and its number.
 *
 * Local ComfyUI keeps a client's `prompt_id` as given (any string) and accepts a reused one; the
 * cloud mints its own UUID when it does not take the client's (observed finding 4). The proxy
 * therefore answers with the client's id and maps it to the cloud's, both ways, wherever a prompt
 * id appears. Each prompt also gets one `number`, the same in POST /prompt, /queue, /history and
 * /api/jobs (observed finding 3); the cloud has no such counter that it shows everywhere.
 *
 * Memory is bounded: the oldest prompts are forgotten first, and a forgotten prompt is shown with
 * the cloud's id and its creation time as number.
 */
import { LRUCache } from 'lru-cache'

export interface SubmittedPrompt {
  /** the id the cloud gave the job */
  cloudId: string
  /** the id the client knows it by (the cloud's id when the client chose none) */
  clientId: string
  number: number
}

/** The small interface the routes use; issue 13 may put it behind the state store. */
export interface PromptIdMap {
  remember: (prompt: SubmittedPrompt) => void
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

export interface PromptIdsOptions {
  /** prompts remembered at most */
  maxPrompts?: number
  /** characters of ids remembered at most */
  maxChars?: number
}

export class PromptIds implements PromptIdMap {
  private readonly byCloud: LRUCache<string, Known>
  /** only ids that differ from the cloud's; every value is a key of byCloud */
  private readonly byClient = new Map<string, string>()
  private lastNumber = 0

  constructor ({ maxPrompts = 10_000, maxChars = 4 * 1024 * 1024 }: PromptIdsOptions = {}) {
    this.byCloud = new LRUCache<string, Known>({
      max: maxPrompts,
      maxSize: maxChars,
      sizeCalculation: (known, cloudId) => cloudId.length + (known.clientId === cloudId ? 0 : known.clientId.length) + 1,
      dispose: (known, cloudId) => {
        if (this.byClient.get(known.clientId) === cloudId) this.byClient.delete(known.clientId)
      }
    })
  }

  remember ({ cloudId, clientId, number }: SubmittedPrompt): void {
    this.byCloud.set(cloudId, { clientId, number })
    if (clientId !== cloudId && this.byCloud.has(cloudId)) this.byClient.set(clientId, cloudId)
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
}

/** How clients know a cloud job: its client id and number, else the cloud id and the given number (its creation time). */
export function identityOf (ids: PromptIdMap, cloudId: string, fallbackNumber: number): { promptId: string, number: number } {
  return { promptId: ids.toClient(cloudId), number: ids.numberOf(cloudId) ?? fallbackNumber }
}
