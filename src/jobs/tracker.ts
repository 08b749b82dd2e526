/**
 * The job tracker: what the proxy knows about the account's unfinished jobs, so that a poll of
 * one can be answered without asking the cloud (issue "polling costs nothing").
 *
 * Three sources feed it, newest knowledge winning:
 * - submits through this proxy (the job is pending from the moment POST /prompt answers);
 * - the cloud's WebSocket events the proxy relays (a job starts or finishes the moment its event
 *   passes through, so a client that listens reads its entry at once);
 * - one shared list of the account's unfinished jobs (or the cloud queue), fetched only while
 *   someone asks and at most once per `listTtlMs`, so that a client that only polls learns of a
 *   finish within `listTtlMs` too.
 * A job the list no longer shows has finished (or was deleted): the caller reads its detail once.
 */
import type { JobStatus } from '../cloud/types.js'

export type TrackedState = 'pending' | 'in_progress' | 'finished'

/** The account's unfinished jobs as one cloud answer lists them. */
export interface UnfinishedList {
  jobs: Array<{ id: string, status: 'pending' | 'in_progress' }>
  /** false when the answer was cut short (more unfinished jobs than one page): absence then proves nothing */
  complete: boolean
  /** how many unfinished jobs the account has (the cloud's total) */
  total: number
}

interface Tracked {
  state: TrackedState
  /** when this proxy last learnt the state from a submit, an event or a detail (not a list) */
  learnt: number
}

export interface TrackerOptions {
  listTtlMs: number
  /** jobs remembered at most; finished ones are forgotten first */
  maxJobs: number
  /** one cloud call listing the unfinished jobs */
  list: () => Promise<UnfinishedList>
  now?: () => number
}

const EVENT_STATE: Record<string, TrackedState> = {
  execution_start: 'in_progress',
  execution_success: 'finished',
  execution_error: 'finished',
  execution_interrupted: 'finished'
}

export class JobTracker {
  private readonly jobs = new Map<string, Tracked>()
  private listedAt = Number.NEGATIVE_INFINITY
  private listComplete = false
  private listTotal = 0
  private refreshing: Promise<void> | undefined
  private clock = 0
  private readonly now: () => number

  constructor (private readonly options: TrackerOptions) {
    this.now = options.now ?? (() => performance.now())
  }

  state (id: string): TrackedState | undefined {
    return this.jobs.get(id)?.state
  }

  isUnfinished (id: string): boolean {
    const state = this.state(id)
    return state === 'pending' || state === 'in_progress'
  }

  /** Whether a list was fetched within the last listTtlMs. */
  get fresh (): boolean {
    return this.now() - this.listedAt < this.options.listTtlMs
  }

  /** Whether anything is known about the account's unfinished jobs at all (a list was fetched once). */
  get listedOnce (): boolean {
    return this.listedAt > Number.NEGATIVE_INFINITY
  }

  /** Unfinished jobs as far as the proxy knows (the cloud's total when its list was cut short). */
  get unfinishedCount (): number {
    let count = 0
    for (const job of this.jobs.values()) if (job.state !== 'finished') count++
    return this.listComplete ? count : Math.max(count, this.listTotal)
  }

  get size (): { unfinished: number, finished: number } {
    let unfinished = 0
    for (const job of this.jobs.values()) if (job.state !== 'finished') unfinished++
    return { unfinished, finished: this.jobs.size - unfinished }
  }

  /** What this proxy itself learnt: a submit, a WebSocket event, a job detail. */
  learn (id: string, state: TrackedState): void {
    this.jobs.delete(id)
    this.jobs.set(id, { state, learnt: ++this.clock })
    this.evict()
  }

  /** A job detail said so. Finished is final: a detail that still shows it running lags behind the event that finished it. */
  learnFromDetail (id: string, status: JobStatus): void {
    const state: TrackedState = status === 'pending' || status === 'in_progress' ? status : 'finished'
    if (state !== 'finished' && this.state(id) === 'finished') return
    this.learn(id, state)
  }

  /**
   * Submitted through this proxy: pending, unless its events came first (the cloud may start and
   * even finish a job before it answers the submit, and the relay sees those events at once).
   */
  submitted (id: string): void {
    if (this.state(id) === undefined) this.learn(id, 'pending')
  }

  /** Whether the last list showed every unfinished job (so that absence means finished). */
  get complete (): boolean {
    return this.listComplete
  }

  forget (id: string): void {
    this.jobs.delete(id)
  }

  /** Something changed through the proxy (a cancel): the next question refreshes the list. */
  invalidate (): void {
    this.listedAt = Number.NEGATIVE_INFINITY
  }

  /** A relayed cloud WebSocket frame (parsed JSON); what it taught the tracker, if anything. */
  observe (frame: unknown): { id: string, state: TrackedState } | undefined {
    const { type, data } = (frame ?? {}) as { type?: unknown, data?: { prompt_id?: unknown, node?: unknown } }
    if (typeof type !== 'string' || typeof data?.prompt_id !== 'string') return undefined
    // `executing` with node null is the last message of a prompt (contract §9).
    const state = type === 'executing' ? (data.node === null ? 'finished' : undefined) : EVENT_STATE[type]
    return state !== undefined && this.heard(data.prompt_id, state) ? { id: data.prompt_id, state } : undefined
  }

  /** News of a job, from an event here or from another replica of the fleet: true when it was news. */
  heard (id: string, state: TrackedState): boolean {
    const known = this.state(id)
    if (known === state || (known === 'finished' && state === 'in_progress') || (known !== undefined && state === 'pending')) return false
    this.learn(id, state)
    return true
  }

  /** Fetches the list unless it is fresh; concurrent callers share one call. */
  async refresh (): Promise<void> {
    if (this.fresh) return
    this.refreshing ??= this.fetchList().finally(() => { this.refreshing = undefined })
    await this.refreshing
  }

  /** An unfinished list fetched elsewhere (the cloud queue): as good as our own. */
  accept (list: UnfinishedList, since: number = this.clock, at: number = this.now()): void {
    const listed = new Map(list.jobs.map(job => [job.id, job.status]))
    for (const [id, job] of this.jobs) {
      // What the proxy learnt after the list was asked for is newer than the list.
      if (job.learnt > since || job.state === 'finished' || listed.has(id)) continue
      if (list.complete) job.state = 'finished'
      else this.jobs.delete(id)
    }
    for (const [id, status] of listed) {
      const known = this.jobs.get(id)
      // Finished is final: a list that still shows the job lags behind the event that finished it.
      if (known === undefined) this.jobs.set(id, { state: status, learnt: 0 })
      else if (known.learnt <= since && known.state !== 'finished') known.state = status
    }
    this.listedAt = at
    this.listComplete = list.complete
    this.listTotal = list.total
    this.evict()
  }

  /** A mark to pass to accept() for a list asked for now. */
  get mark (): number {
    return this.clock
  }

  private async fetchList (): Promise<void> {
    const since = this.clock
    const at = this.now()
    this.accept(await this.options.list(), since, at)
  }

  private evict (): void {
    if (this.jobs.size <= this.options.maxJobs) return
    for (const [id, job] of this.jobs) {
      if (job.state === 'finished') this.jobs.delete(id)
      if (this.jobs.size <= this.options.maxJobs) return
    }
    // Only unfinished jobs left (far more than the cloud lets an account queue): forget the oldest.
    for (const id of this.jobs.keys()) {
      this.jobs.delete(id)
      if (this.jobs.size <= this.options.maxJobs) return
    }
  }
}
