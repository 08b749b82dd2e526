/**
 * GET /history, GET /history/{id}, POST /history (contract §1–4) from Comfy Cloud's /api/jobs
 * (default) or the deprecated /api/history_v2 (HISTORY_SOURCE=history_v2; notes §4.2 option B).
 */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import type { HistoryV2Entry, JobsList, Json } from '../cloud/types.js'
import { historyEntryFromHistoryV2, withIdentity, type LocalHistoryEntry } from '../compat/history.js'
import { identityOf } from '../jobs/prompt-ids.js'
import { firstValue, historyWindow, parsePythonInt, pythonTruthy } from '../compat/params.js'
import { badRequest, sendLocalNotFound } from '../errors.js'
import { INVALID_JSON } from '../body.js'
import { mapLimit } from '../concurrency.js'

/** [prompt_id, JSON text of its entry], oldest first: what a local history answer is made of. */
type EntryJson = [string, string]

/** `{"<id>": <entry>, …}` in the given order, from already serialised entries. */
function historyJson (entries: EntryJson[]): string {
  return `{${entries.map(([id, json]) => `${JSON.stringify(id)}:${json}`).join(',')}}`
}

/** Entries keyed by the ids clients know; a prompt whose client id was reused since shows once, as its newest run (observed finding 4). */
function clientKeyed (fastify: FastifyInstance, entries: EntryJson[]): EntryJson[] {
  const { promptIds } = fastify
  return entries.filter(([cloudId]) => !promptIds.superseded(cloudId)).map(([cloudId, json]) => [promptIds.toClient(cloudId), json])
}

const FINISHED_STATUSES = 'completed,failed,cancelled'
const CLOUD_PAGE = 1000
const DETAIL_CONCURRENCY = 8

function integerParam (query: Record<string, unknown>, name: string): number | undefined {
  const raw = firstValue(query[name])
  if (raw === undefined) return undefined
  const value = parsePythonInt(raw)
  // Local ComfyUI answers these with a bare 500 (contract §1.3); a client deserves to know which parameter is wrong.
  if (value === undefined) throw badRequest('invalid_query', `${name} must be an integer`, { parameter: name, value: raw })
  return value
}

/** Ids of finished jobs, newest first, starting `skip` from the newest: as many as `count`, fewer if the cloud has fewer. */
async function newestFinishedJobIds (fastify: FastifyInstance, skip: number, count: number): Promise<string[]> {
  const ids: string[] = []
  while (ids.length < count) {
    const offset = skip + ids.length
    const limit = Math.min(count - ids.length, CLOUD_PAGE)
    const page = await fastify.cache.shared(`jobs:${offset}:${limit}`, async () => (await fastify.cloud.call<JobsList>({
      method: 'GET',
      path: '/api/jobs',
      query: { status: FINISHED_STATUSES, sort_by: 'create_time', sort_order: 'desc', offset, limit },
      schema: 'JobsListResponse'
    })).body)
    for (const job of page.jobs) ids.push(job.id)
    if (!page.pagination.has_more || page.jobs.length === 0) break
  }
  return ids.slice(0, count)
}

async function finishedJobTotal (fastify: FastifyInstance): Promise<number> {
  const page = await fastify.cache.shared('jobs:total', async () => (await fastify.cloud.call<JobsList>({
    method: 'GET',
    path: '/api/jobs',
    query: { status: FINISHED_STATUSES, sort_by: 'create_time', sort_order: 'desc', offset: 0, limit: 1 },
    schema: 'JobsListResponse'
  })).body)
  return page.pagination.total
}

async function historyFromJobs (fastify: FastifyInstance, maxItems: number | undefined, offset: number | undefined): Promise<EntryJson[]> {
  const cap = fastify.jobs.historyCap
  let newestFirst: string[]
  if (maxItems !== undefined && (offset === undefined || offset < 0)) {
    // The newest max_items (contract §1.3): no total needed.
    newestFirst = maxItems > 0 ? await newestFinishedJobIds(fastify, 0, Math.min(maxItems, cap)) : []
  } else if (offset === undefined || offset < 0) {
    newestFirst = await newestFinishedJobIds(fastify, 0, cap)
  } else {
    // Offsets count from the oldest retained entry: the window needs the total first (notes §4.2).
    const total = Math.min(await finishedJobTotal(fastify), cap)
    const { start, count } = historyWindow(maxItems, offset, total)
    newestFirst = count > 0 ? await newestFinishedJobIds(fastify, total - start - count, count) : []
  }
  const entries = await mapLimit(newestFirst, DETAIL_CONCURRENCY, async id => await fastify.jobs.finishedEntry(id))
  const history: EntryJson[] = []
  for (let i = newestFirst.length - 1; i >= 0; i--) {
    const entry = entries[i]
    if (entry !== undefined) history.push([newestFirst[i], entry])
  }
  return history
}

async function historyFromHistoryV2 (fastify: FastifyInstance, maxItems: number | undefined, offset: number | undefined): Promise<EntryJson[]> {
  const cap = fastify.config.historyMaxEntries
  const newestOnly = maxItems !== undefined && (offset === undefined || offset < 0)
  if (newestOnly && maxItems <= 0) return []
  // history_v2 has no total: take the newest max_items, or everything up to the cap and slice locally.
  const fetchCount = newestOnly ? Math.min(maxItems, cap) : cap
  const body = await fastify.cache.shared(`history_v2:${fetchCount}`, async () => (await fastify.cloud.call<{ history: HistoryV2Entry[] }>({
    method: 'GET',
    path: '/api/history_v2',
    query: { max_items: fetchCount, offset: 0 },
    schema: 'HistoryResponse'
  })).body)
  const oldestFirst: Array<[string, LocalHistoryEntry]> = []
  for (let i = Math.min(body.history.length, fetchCount) - 1; i >= 0; i--) {
    const entry = historyEntryFromHistoryV2(body.history[i])
    if (entry !== null) oldestFirst.push([body.history[i].prompt_id, entry])
  }
  const { start, count } = newestOnly ? { start: 0, count: oldestFirst.length } : historyWindow(maxItems, offset, oldestFirst.length)
  return oldestFirst.slice(start, start + count).map(([id, entry]) => [id, JSON.stringify(withIdentity(entry, identityOf(fastify.promptIds, id, entry.prompt[0])))])
}

function deleteList (value: unknown): string[] {
  // Local iterates a string's characters and deletes nothing; anything else but a list crashes it (contract §4).
  if (typeof value === 'string') return []
  if (!Array.isArray(value)) throw badRequest('invalid_request', 'delete must be a list of prompt ids', { field: 'delete' })
  return value.filter((id): id is string => typeof id === 'string')
}

const historyRoutes: FastifyPluginAsync = async (fastify) => {
  fastify.get('/history', async (request, reply) => {
    const query = request.query as Record<string, unknown>
    const maxItems = integerParam(query, 'max_items')
    const offset = integerParam(query, 'offset')
    const entries = fastify.config.historySource === 'history_v2'
      ? await historyFromHistoryV2(fastify, maxItems, offset)
      : await historyFromJobs(fastify, maxItems, offset)
    return await reply.type('application/json; charset=utf-8').send(historyJson(clientKeyed(fastify, entries)))
  })

  fastify.get<{ Params: { id: string } }>('/history/:id', async (request, reply) => {
    const { id } = request.params
    // `/history/` is no route of local's (observed finding 14): its text 404, as for every unknown route.
    if (id === '') return await sendLocalNotFound(reply)
    // Pending, running, unknown, deleted and foreign ids all answer {} (contract §3): clients poll until the id appears.
    const entry = await fastify.jobs.historyEntry(fastify.promptIds.toCloud(id))
    return await reply.type('application/json; charset=utf-8').send(historyJson(entry === undefined ? [] : [[id, entry]]))
  })

  fastify.post('/history', async (request, reply) => {
    const body = request.body
    if (body === INVALID_JSON) throw badRequest('invalid_json', 'The request body is not valid JSON')
    const cloudBody: { clear?: true, delete?: string[] } = {}
    if (typeof body === 'object' && body !== null && !Array.isArray(body)) {
      const { clear, delete: toDelete } = body as Json
      if (pythonTruthy(clear)) cloudBody.clear = true
      if (toDelete !== undefined) {
        const ids = deleteList(toDelete).map(id => fastify.promptIds.toCloud(id))
        if (ids.length > 0) cloudBody.delete = ids
      }
    } else if (body !== undefined && !Array.isArray(body)) {
      throw badRequest('invalid_request', 'The request body must be a JSON object')
    }
    if (cloudBody.clear !== undefined || cloudBody.delete !== undefined) {
      try {
        await fastify.cloud.call({ method: 'POST', path: '/api/history', body: cloudBody })
      } finally {
        // Whatever the cloud answered, nothing cached from before may be shown again.
        if (cloudBody.clear === true) fastify.cache.clearEntries()
        else fastify.cache.deleteEntries(cloudBody.delete ?? [])
      }
    }
    return await reply.code(200).type('application/octet-stream').send()
  })
}

export default historyRoutes
