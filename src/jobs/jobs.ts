/**
 * What the proxy knows about the account's jobs, between the routes and the cloud client: the
 * tracker of unfinished jobs, the cache of finished history entries, and a short memory of ids
 * the cloud does not have. Routes ask here; this asks the cloud only when what it knows is not
 * enough, and then once for all the clients asking (issue "polling costs nothing", rule 2).
 */
import { randomUUID } from 'node:crypto'
import { LRUCache } from 'lru-cache'
import type { Config } from '../config.js'
import { cloudPathSegment, type CloudClient } from '../cloud/client.js'
import type { JobDetail, JobsList, Json, QueueInfo } from '../cloud/types.js'
import { historyEntryFromHistoryV2Detail, historyEntryFromJob, unwrapHistoryV2Detail, withIdentity, type LocalHistoryEntry } from '../compat/history.js'
import type { ProxyCache } from '../cache.js'
import { ProxyError } from '../errors.js'
import type { StateStore } from '../store/index.js'
import { JobTracker, type TrackedState, type UnfinishedList } from './tracker.js'
import { identityOf, type PromptIdMap } from './prompt-ids.js'

/** Ids the cloud answered "not there" for, remembered for LIST_TTL_MS; bounded so that random ids cannot grow memory. */
const MAX_ABSENT = 10_000
/** Jobs the tracker remembers; unfinished ones are bounded by the cloud's queue cap of 100 (drift §1.4). */
const MAX_TRACKED = 10_000
/** One page holds every unfinished job an account can have (100 queued plus the running ones). */
const UNFINISHED_PAGE = 1000
/** Cloud answers for ids that are not the account's, or not ids at all: all read as "not in history" (contract §3). */
const NOT_THERE = [400, 403, 404, 414]
const EMPTY_QUEUE: QueueInfo = { queue_running: [], queue_pending: [] }

/** The cloud asked the proxy to back off (or its budget is spent): answer from memory where possible. */
function isBackOff (error: unknown): boolean {
  return error instanceof ProxyError && (error.type === 'cloud_rate_limited' || error.type === 'cloud_budget_exhausted')
}

function unfinishedFromQueue (queue: QueueInfo): UnfinishedList {
  const jobs = [
    ...queue.queue_running.map(item => ({ id: item[1], status: 'in_progress' as const })),
    ...queue.queue_pending.map(item => ({ id: item[1], status: 'pending' as const }))
  ]
  return { jobs, complete: true, total: jobs.length }
}

/**
 * Fleet messages (issue 13): what one replica learnt about a job, for every replica's tracker; and
 * history entries deleted or cleared through one replica, which no replica may show again.
 */
const CHANNEL = 'jobs'
type JobNews = { replica: string } & ({ id: string, state: TrackedState } | { forget: string[] } | { clearedAt: number })
/** State store records of ids the cloud answered "not there" for. */
const ABSENT = 'absent'
/**
 * Finished entries in the state store, for every replica: each replica keeps its own in memory (a hit
 * costs nothing), and a miss asks the store before the cloud, so a finished job costs the fleet one
 * detail call rather than one per replica. Entries larger than this stay per replica.
 */
const ENTRIES = 'entry'
const SHARED_ENTRY_MAX_CHARS = 1024 * 1024
interface SharedEntry { at: number, json: string }

export class Jobs {
  readonly tracker: JobTracker
  private readonly absent: LRUCache<string, true> | undefined
  private lastQueue: QueueInfo | undefined
  private readonly replica = randomUUID()
  /** when this replica last learnt something itself: a shared list older than that is not used */
  private lastNews = 0
  /** when the history was last cleared through any replica: shared entries from before are not used */
  private clearedAt = 0

  constructor (private readonly cloud: CloudClient, private readonly cache: ProxyCache, private readonly config: Config, private readonly promptIds: PromptIdMap, private readonly store?: StateStore) {
    this.tracker = new JobTracker({ listTtlMs: config.listTtlMs, maxJobs: MAX_TRACKED, list: async () => await this.listUnfinished() })
    if (config.listTtlMs > 0) this.absent = new LRUCache({ max: MAX_ABSENT, ttl: config.listTtlMs })
    store?.subscribe(CHANNEL, message => { this.heard(message) })
    this.fleet?.get<number>(ENTRIES, 'cleared-at').then(at => { this.clearedAt = Math.max(this.clearedAt, at ?? 0) }, () => {})
  }

  /** The fleet shares what each replica learns (Redis); a single proxy has nobody to tell. */
  private get fleet (): StateStore | undefined {
    return this.store?.shared === true ? this.store : undefined
  }

  private tell (id: string, state: TrackedState): void {
    this.lastNews = Date.now()
    void this.announce({ replica: this.replica, id, state })
  }

  private async announce (news: JobNews): Promise<void> {
    await this.fleet?.publish(CHANNEL, JSON.stringify(news)).catch(() => {})
  }

  private heard (message: string): void {
    let news: JobNews
    try { news = JSON.parse(message) as JobNews } catch { return }
    if (news.replica === this.replica) return
    if ('forget' in news && Array.isArray(news.forget)) {
      this.cache.deleteEntries(news.forget.filter(id => typeof id === 'string'))
    } else if ('clearedAt' in news && typeof news.clearedAt === 'number') {
      this.clearedAt = Math.max(this.clearedAt, news.clearedAt)
      this.cache.clearEntries()
    } else if ('id' in news && typeof news.id === 'string') {
      this.absent?.delete(news.id)
      if (this.tracker.heard(news.id, news.state)) this.lastNews = Date.now()
    }
  }

  /** POST /history deleted these entries: no replica shows them again (every replica has heard it when this resolves). */
  async deleteEntries (ids: string[]): Promise<void> {
    this.cache.deleteEntries(ids)
    if (this.fleet === undefined) return
    await Promise.all([...ids.map(async id => { await this.forgetShared(id) }), this.announce({ replica: this.replica, forget: ids })])
  }

  /** POST /history cleared the history: no replica shows an entry from before. */
  async clearEntries (): Promise<void> {
    this.cache.clearEntries()
    const fleet = this.fleet
    if (fleet === undefined) return
    this.clearedAt = Date.now()
    await Promise.all([
      fleet.set(ENTRIES, 'cleared-at', this.clearedAt, Math.max(this.config.cacheTtlMs, 1)).catch(() => {}),
      this.announce({ replica: this.replica, clearedAt: this.clearedAt })
    ])
  }

  private async forgetShared (id: string): Promise<void> {
    await Promise.all(['jobs', 'history_v2'].map(async source => { await this.fleet?.delete(ENTRIES, `${source}:${id}`).catch(() => {}) }))
  }

  /**
   * A list every replica may use for LIST_TTL_MS: one replica asks the cloud, the others read the
   * state store. A list older than what this replica learnt since is not used (it could undo it).
   */
  private async sharedRead<T> (name: string, load: () => Promise<T>): Promise<T> {
    const fleet = this.fleet
    if (fleet === undefined || this.config.listTtlMs <= 0) return await load()
    const found = await fleet.get<{ at: number, value: T }>('shared-read', name)
    if (found !== undefined && found.at >= this.lastNews && Date.now() - found.at < this.config.listTtlMs) return found.value
    const at = Date.now()
    const value = await load()
    await fleet.set('shared-read', name, { at, value }, this.config.listTtlMs)
    return value
  }

  /** Another replica heard "not there" for this id within LIST_TTL_MS (one cloud call for the fleet, issue 13). */
  private async absentInFleet (id: string): Promise<boolean> {
    const fleet = this.fleet
    if (fleet === undefined || this.absent === undefined) return false
    const found = await fleet.get<true>(ABSENT, id).catch(() => undefined)
    if (found === undefined) return false
    this.absent.set(id, true)
    return true
  }

  get absentSize (): number {
    return this.absent?.size ?? 0
  }

  /**
   * The most entries one GET /history shows from the jobs source (issue 14 rule 5). Each entry needs
   * its detail once; a window larger than the cache would evict its own entries and fetch all of them
   * again on every request (3,003 calls per request at 3,000 jobs). Kept within the cache, the first
   * request costs at most the list pages and CACHE_MAX_ENTRIES details, and every later one the list
   * pages only. With the cache off, HISTORY_MAX_ENTRIES alone bounds it.
   */
  get historyCap (): number {
    const { historyMaxEntries, cacheMaxEntries } = this.config
    return cacheMaxEntries > 0 ? Math.min(historyMaxEntries, cacheMaxEntries) : historyMaxEntries
  }

  /** POST /prompt accepted a job: it is unfinished from now on, without asking. */
  submitted (id: string): void {
    this.absent?.delete(id)
    if (this.absent !== undefined) this.fleet?.delete(ABSENT, id).catch(() => {})
    this.tracker.submitted(id)
    this.tell(id, 'pending')
  }

  /** A cancel, interrupt or queue change went through the proxy: what the list said may be stale. */
  changed (): void {
    this.tracker.invalidate()
  }

  /** A frame the cloud sent on a relayed WebSocket. */
  observe (frame: unknown): void {
    const learnt = this.tracker.observe(frame)
    if (learnt !== undefined) this.tell(learnt.id, learnt.state)
  }

  /**
   * The local history entry of one job as JSON text, or undefined while it is unfinished, unknown
   * or not the account's (local answers `{}` then). An unfinished job costs no call of its own: the
   * shared list, at most once per LIST_TTL_MS, tells when it has finished.
   */
  async historyEntry (id: string): Promise<string | undefined> {
    const cached = this.cache.getEntry(id)
    if (cached !== undefined) return cached
    if (this.tracker.isUnfinished(id)) {
      if (!await this.refreshed() || this.tracker.isUnfinished(id)) return undefined
      // A /history list may have fetched it meanwhile.
      return await this.finishedEntry(id)
    }
    if (this.absent?.has(id) === true || await this.absentInFleet(id)) return undefined
    return await this.load(id)
  }

  /** The entry of a job a finished list named: from the cache, else its detail. */
  async finishedEntry (id: string): Promise<string | undefined> {
    return this.cache.getEntry(id) ?? await this.load(id)
  }

  /**
   * The entry from the job itself (GET /api/jobs/{id}) whatever the history source: what confirms a
   * history_v2 record without a finished status (issue 16), once for a finished job, through the cache.
   */
  async jobEntry (id: string): Promise<string | undefined> {
    return this.cache.getEntry(id) ?? await this.load(id, 'jobs')
  }

  /** GET /prompt's queue_remaining: the account's unfinished jobs, from the tracker. */
  async queueRemaining (): Promise<number> {
    try {
      await this.tracker.refresh()
    } catch (error) {
      // While the cloud asks the proxy to back off, the last count it knows (kept current by submits and events).
      if (!isBackOff(error) || !this.tracker.listedOnce) throw error
    }
    return this.tracker.unfinishedCount
  }

  /** The cloud queue, shared between pollers for LIST_TTL_MS; no call when the tracker knows it is empty. */
  async queue (): Promise<QueueInfo> {
    if (this.tracker.fresh && this.tracker.complete && this.tracker.unfinishedCount === 0) return EMPTY_QUEUE
    try {
      return await this.sharedQueue()
    } catch (error) {
      if (!isBackOff(error) || this.lastQueue === undefined) throw error
      // The last queue seen, without the jobs that have finished since (the WebSocket may have said so).
      const stillUnfinished = (item: QueueInfo['queue_running'][number]): boolean => this.tracker.state(item[1]) !== 'finished'
      return { queue_running: this.lastQueue.queue_running.filter(stillUnfinished), queue_pending: this.lastQueue.queue_pending.filter(stillUnfinished) }
    }
  }

  private async sharedQueue (): Promise<QueueInfo> {
    return await this.cache.shared('queue', async () => {
      const mark = this.tracker.mark
      const at = performance.now()
      const queue = await this.sharedRead('queue', async () => (await this.cloud.call<QueueInfo>({ method: 'GET', path: '/api/queue', schema: 'QueueInfo', fallback: true })).body)
      // The queue lists every unfinished job: it refreshes the tracker as well as the jobs list would.
      this.tracker.accept(unfinishedFromQueue(queue), mark, at)
      this.lastQueue = queue
      return queue
    })
  }

  /** Refreshes the tracker's list if it is stale; false when the cloud asked the proxy to back off (answer from memory). */
  private async refreshed (): Promise<boolean> {
    try {
      await this.tracker.refresh()
      return true
    } catch (error) {
      if (isBackOff(error)) return false
      throw error
    }
  }

  private async listUnfinished (): Promise<UnfinishedList> {
    // HISTORY_SOURCE=history_v2 stays off /api/jobs altogether: the queue lists the same jobs.
    if (this.config.historySource === 'history_v2') return unfinishedFromQueue(await this.sharedQueue())
    const body = await this.sharedRead('unfinished', async () => (await this.cloud.call<JobsList>({
      method: 'GET',
      path: '/api/jobs',
      query: { status: 'pending,in_progress', sort_by: 'create_time', sort_order: 'desc', offset: 0, limit: UNFINISHED_PAGE },
      schema: 'JobsListResponse',
      fallback: true
    })).body)
    const jobs = body.jobs.flatMap(job => job.status === 'pending' || job.status === 'in_progress' ? [{ id: job.id, status: job.status }] : [])
    return { jobs, complete: !body.pagination.has_more, total: body.pagination.total }
  }

  /** One detail call per id, shared by everyone asking at that moment, and by the fleet once one replica has made it. */
  private async load (id: string, source = this.config.historySource): Promise<string | undefined> {
    return await this.cache.shared(`entry:${source}:${id}`, async () => {
      const generation = this.cache.generation
      const shared = await this.sharedEntry(`${source}:${id}`)
      if (shared !== undefined) {
        this.cache.setEntry(id, shared, generation)
        return shared
      }
      return source === 'history_v2' ? await this.loadHistoryV2(id) : await this.loadJob(id)
    }, 0)
  }

  private async sharedEntry (key: string): Promise<string | undefined> {
    if (this.fleet === undefined || this.config.cacheTtlMs <= 0) return undefined
    const found = await this.fleet.get<SharedEntry>(ENTRIES, key).catch(() => undefined)
    return found !== undefined && found.at > this.clearedAt && typeof found.json === 'string' ? found.json : undefined
  }

  /** A finished entry fetched from the cloud: kept here, and for the fleet (unless something changed meanwhile). */
  private keepEntry (key: string, id: string, json: string, generation: number): void {
    this.cache.setEntry(id, json, generation)
    if (this.fleet === undefined) return
    // Replicas that heard of the submit still count the job unfinished: from now on it shows everywhere.
    this.tell(id, 'finished')
    if (this.config.cacheTtlMs <= 0 || json.length > SHARED_ENTRY_MAX_CHARS || generation !== this.cache.generation) return
    this.fleet.set(ENTRIES, key, { at: Date.now(), json } satisfies SharedEntry, this.config.cacheTtlMs).catch(() => {})
  }

  private notThere (id: string, status: number): undefined {
    // 404: deleted elsewhere; 403/400/414: another account's or a malformed id.
    if (status === 404) {
      this.cache.forgetEntry(id)
      void this.forgetShared(id)
    }
    this.tracker.forget(id)
    this.absent?.set(id, true)
    if (this.absent !== undefined) this.fleet?.set(ABSENT, id, true, this.config.listTtlMs).catch(() => {})
    return undefined
  }

  /** The entry under the id and number its client knows: both are fixed at submit, so the cached text can carry them. */
  private localJson (id: string, entry: LocalHistoryEntry): string {
    return JSON.stringify(withIdentity(entry, identityOf(this.promptIds, id, entry.prompt[0])))
  }

  private async loadJob (id: string): Promise<string | undefined> {
    const generation = this.cache.generation
    const response = await this.cloud.call<JobDetail | Json>({
      method: 'GET', path: `/api/jobs/${cloudPathSegment(id)}`, route: '/api/jobs/:id', schema: 'JobDetailResponse', accept: NOT_THERE
    })
    if (response.status !== 200) return this.notThere(id, response.status)
    const job = response.body as JobDetail
    this.tracker.learnFromDetail(id, job.status)
    // The entry is cached with the id and number its client knows: bring them from the state store first.
    await this.promptIds.load({ cloud: [id] })
    const entry = historyEntryFromJob(job)
    if (entry === null) return undefined
    const json = this.localJson(id, entry)
    this.keepEntry(`jobs:${id}`, id, json, generation)
    return json
  }

  private async loadHistoryV2 (id: string): Promise<string | undefined> {
    const generation = this.cache.generation
    const response = await this.cloud.call<Json>({
      method: 'GET', path: `/api/history_v2/${cloudPathSegment(id)}`, route: '/api/history_v2/:id', schema: 'HistoryDetailResponse', accept: NOT_THERE
    })
    if (response.status !== 200) return this.notThere(id, response.status)
    const detail = unwrapHistoryV2Detail(id, response.body)
    const entry = detail === undefined ? null : historyEntryFromHistoryV2Detail(id, detail)
    // A record without a finished status may be running (it exists once execution starts, notes §2.4) or
    // have finished without one (notes §4.1): the job says which (issue 16).
    if (entry === null) return await this.loadJob(id)
    this.tracker.learnFromDetail(id, 'completed')
    await this.promptIds.load({ cloud: [id] })
    const json = this.localJson(id, entry)
    this.keepEntry(`history_v2:${id}`, id, json, generation)
    return json
  }
}
