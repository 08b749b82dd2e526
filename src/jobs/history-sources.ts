/**
 * Where local history comes from (notes §4.2): the current `/api/jobs` (HISTORY_SOURCE=jobs) or the
 * deprecated `/api/history_v2` (HISTORY_SOURCE=history_v2). Both answer the same thing: the finished
 * jobs of the local `max_items`/`offset` window, oldest first, as entry JSON.
 */
import type { FastifyInstance } from 'fastify'
import type { HistoryV2Entry, JobEntry, JobsList } from '../cloud/types.js'
import { historyEntryFromHistoryV2, withIdentity } from '../compat/history.js'
import { historyWindow } from '../compat/params.js'
import { mapLimit } from '../concurrency.js'
import { ProxyError } from '../errors.js'
import { identityOf } from './prompt-ids.js'

/** [prompt_id, JSON text of its entry]: what a local history answer is made of. */
export type EntryJson = [string, string]

const FINISHED_STATUSES = 'completed,failed,cancelled'
const CLOUD_PAGE = 1000
const DETAIL_CONCURRENCY = 8

/** The finished entries of the local window (contract §1.3), oldest first, keyed by cloud id. */
export async function historyList (fastify: FastifyInstance, maxItems: number | undefined, offset: number | undefined): Promise<EntryJson[]> {
  return fastify.config.historySource === 'history_v2'
    ? await historyFromHistoryV2(fastify, maxItems, offset)
    : await historyFromJobs(fastify, maxItems, offset)
}

/** Local max_items without an offset (or with a negative one): the newest max_items (contract §1.3). */
function newestOnly (maxItems: number | undefined, offset: number | undefined): maxItems is number {
  return maxItems !== undefined && (offset === undefined || offset < 0)
}

// ---------------------------------------------------------------------------------------------
// HISTORY_SOURCE=jobs

/** One page of finished jobs, newest first, asked for by offset or by the cloud's cursor. */
type PageRequest = { offset: number, limit: number } | { after: string, limit: number }

interface FinishedPage {
  ids: string[]
  /** jobs the cloud listed, including any dropped for failing their schema */
  listed: number
  offset: number
  total: number
  hasMore: boolean
  nextCursor?: string
}

async function finishedJobsPage (fastify: FastifyInstance, request: PageRequest): Promise<FinishedPage> {
  const key = 'after' in request ? `jobs:after:${request.after}:${request.limit}` : `jobs:${request.offset}:${request.limit}`
  return await fastify.cache.shared(key, async () => {
    const { body, dropped = 0 } = await fastify.cloud.call<JobsList>({
      method: 'GET',
      path: '/api/jobs',
      query: { status: FINISHED_STATUSES, sort_by: 'create_time', sort_order: 'desc', ...request },
      schema: 'JobsListResponse'
    })
    const { offset, total, has_more: hasMore, next_cursor: nextCursor } = body.pagination
    return { ids: body.jobs.map(job => job.id), listed: body.jobs.length + dropped, offset, total, hasMore, nextCursor: nextCursor === '' ? undefined : nextCursor }
  })
}

/**
 * Ids of finished jobs, newest first, `count` of them from position `skip`. Pages go on with the cloud's
 * cursor when it offers one and with `offset` when it does not (drift §2.1), so they stay exact either way.
 */
async function newestFinishedJobIds (fastify: FastifyInstance, skip: number, count: number): Promise<string[]> {
  const ids: string[] = []
  let listed = 0
  let request: PageRequest = { offset: skip, limit: Math.min(count, CLOUD_PAGE) }
  for (;;) {
    const page = await finishedJobsPage(fastify, request)
    if ('offset' in request && page.offset !== request.offset) {
      // The cloud ignored offset. From the newest, its cursor reaches any position; without one nothing does.
      if (listed === 0 && skip > 0) return (await newestFinishedJobIds(fastify, 0, skip + count)).slice(skip)
      throw new ProxyError(502, 'cloud_paging_unsupported', 'Comfy Cloud ignored the list offset and offered no cursor to page with', 'GET /api/jobs')
    }
    ids.push(...page.ids)
    listed += page.listed
    if (!page.hasMore || page.listed === 0 || listed >= count) break
    const limit = Math.min(count - listed, CLOUD_PAGE)
    request = page.nextCursor !== undefined ? { after: page.nextCursor, limit } : { offset: skip + listed, limit }
  }
  return ids.slice(0, count)
}

/** How many finished jobs the cloud holds, when it says: under cursor paging `total` may be 0 (drift §2.1c). */
async function finishedJobTotal (fastify: FastifyInstance): Promise<number | undefined> {
  const page = await finishedJobsPage(fastify, { offset: 0, limit: 1 })
  if (page.total >= page.listed && (page.total > 0 || !page.hasMore)) return page.total
  return undefined
}

/** Newest-first ids of the local window. Offsets count from the oldest retained entry (notes §4.2). */
async function windowJobIds (fastify: FastifyInstance, maxItems: number | undefined, offset: number | undefined): Promise<string[]> {
  const cap = fastify.jobs.historyCap
  if (newestOnly(maxItems, offset)) return maxItems > 0 ? await newestFinishedJobIds(fastify, 0, Math.min(maxItems, cap)) : []
  if (offset === undefined || offset < 0) return await newestFinishedJobIds(fastify, 0, cap)
  const total = await finishedJobTotal(fastify)
  if (total === undefined) {
    // No total to count from the oldest: list the retained jobs by cursor and cut the window here.
    const retained = await newestFinishedJobIds(fastify, 0, cap)
    const { start, count } = historyWindow(maxItems, offset, retained.length)
    return retained.slice(retained.length - start - count, retained.length - start)
  }
  const retained = Math.min(total, cap)
  const { start, count } = historyWindow(maxItems, offset, retained)
  return count > 0 ? await newestFinishedJobIds(fastify, retained - start - count, count) : []
}

async function historyFromJobs (fastify: FastifyInstance, maxItems: number | undefined, offset: number | undefined): Promise<EntryJson[]> {
  const newestFirst = await windowJobIds(fastify, maxItems, offset)
  const entries = await mapLimit(newestFirst, DETAIL_CONCURRENCY, async id => await fastify.jobs.finishedEntry(id))
  return oldestFirst(newestFirst.map((id, i) => [id, entries[i]]))
}

function oldestFirst (newestFirst: Array<[string, string | undefined]>): EntryJson[] {
  const history: EntryJson[] = []
  for (let i = newestFirst.length - 1; i >= 0; i--) {
    const [id, entry] = newestFirst[i]
    if (entry !== undefined) history.push([id, entry])
  }
  return history
}

// ---------------------------------------------------------------------------------------------
// HISTORY_SOURCE=history_v2

async function historyV2Page (fastify: FastifyInstance, offset: number, maxItems: number): Promise<{ items: HistoryV2Entry[], listed: number }> {
  return await fastify.cache.shared(`history_v2:${offset}:${maxItems}`, async () => {
    const { body } = await fastify.cloud.call<{ history: unknown[] }>({
      method: 'GET',
      path: '/api/history_v2',
      query: { max_items: maxItems, offset },
      schema: 'HistoryResponse'
    })
    return { items: fastify.cloud.validItems<HistoryV2Entry>(body.history, 'HistoryEntry', 'GET /api/history_v2'), listed: body.history.length }
  })
}

/**
 * A history_v2 list record as entry JSON. One without a finished status may be a running job (the record
 * exists from the moment execution starts, notes §2.3–2.4) or one that finished without a status (notes
 * §4.1): the job says which, through the same cached lookup as HISTORY_SOURCE=jobs, so a finished job costs
 * that call once.
 */
async function historyV2ItemEntry (fastify: FastifyInstance, item: HistoryV2Entry): Promise<string | undefined> {
  const entry = historyEntryFromHistoryV2(item)
  if (entry === null) return await fastify.jobs.jobEntry(item.prompt_id)
  await fastify.promptIds.load({ cloud: [item.prompt_id] })
  return JSON.stringify(withIdentity(entry, identityOf(fastify.promptIds, item.prompt_id, entry.prompt[0])))
}

/** The newest `count` finished entries, newest first. Records that turn out unfinished do not count, so more are asked for. */
async function newestFinishedFromHistoryV2 (fastify: FastifyInstance, count: number): Promise<Array<[string, string | undefined]>> {
  const found: Array<[string, string | undefined]> = []
  const seen = new Set<string>()
  let finished = 0
  let offset = 0
  while (finished < count) {
    const want = count - finished
    const { items, listed } = await historyV2Page(fastify, offset, want)
    const fresh = items.filter(item => !seen.has(item.prompt_id))
    const entries = await mapLimit(fresh, DETAIL_CONCURRENCY, async item => await historyV2ItemEntry(fastify, item))
    for (const [i, item] of fresh.entries()) {
      seen.add(item.prompt_id)
      if (entries[i] !== undefined && finished < count) {
        found.push([item.prompt_id, entries[i]])
        finished++
      }
    }
    if (listed < want || listed === 0) break
    offset += listed
  }
  return found
}

async function historyFromHistoryV2 (fastify: FastifyInstance, maxItems: number | undefined, offset: number | undefined): Promise<EntryJson[]> {
  const cap = fastify.config.historyMaxEntries
  if (newestOnly(maxItems, offset)) return maxItems > 0 ? oldestFirst(await newestFinishedFromHistoryV2(fastify, Math.min(maxItems, cap))) : []
  // history_v2 has no total: take every retained finished entry and cut the window here.
  const history = oldestFirst(await newestFinishedFromHistoryV2(fastify, cap))
  const { start, count } = historyWindow(maxItems, offset, history.length)
  return history.slice(start, start + count)
}
