/**
 * GET /history, GET /history/{id}, POST /history (contract §1–4) from Comfy Cloud's /api/jobs
 * (default) or the deprecated /api/history_v2 (HISTORY_SOURCE=history_v2; notes §4.2 option B).
 */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import type { Json } from '../cloud/types.js'
import { firstValue, parsePythonInt, pythonTruthy } from '../compat/params.js'
import { badRequest, sendLocalNotFound } from '../errors.js'
import { INVALID_JSON } from '../body.js'
import { historyList, type EntryJson } from '../jobs/history-sources.js'

/** `{"<id>": <entry>, …}` in the given order, from already serialised entries. */
function historyJson (entries: EntryJson[]): string {
  return `{${entries.map(([id, json]) => `${JSON.stringify(id)}:${json}`).join(',')}}`
}

/** Entries keyed by the ids clients know; a prompt whose client id was reused since shows once, as its newest run (observed finding 4). */
function clientKeyed (fastify: FastifyInstance, entries: EntryJson[]): EntryJson[] {
  const { promptIds } = fastify
  return entries.filter(([cloudId]) => !promptIds.superseded(cloudId)).map(([cloudId, json]) => [promptIds.toClient(cloudId), json])
}

function integerParam (query: Record<string, unknown>, name: string): number | undefined {
  const raw = firstValue(query[name])
  if (raw === undefined) return undefined
  const value = parsePythonInt(raw)
  // Local ComfyUI answers these with a bare 500 (contract §1.3); a client deserves to know which parameter is wrong.
  if (value === undefined) throw badRequest('invalid_query', `${name} must be an integer`, { parameter: name, value: raw })
  return value
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
    const entries = await historyList(fastify, maxItems, offset)
    await fastify.promptIds.load({ cloud: entries.map(([cloudId]) => cloudId) })
    return await reply.type('application/json; charset=utf-8').send(historyJson(clientKeyed(fastify, entries)))
  })

  fastify.get<{ Params: { id: string } }>('/history/:id', async (request, reply) => {
    const { id } = request.params
    // `/history/` is no route of local's (observed finding 14): its text 404, as for every unknown route.
    if (id === '') return await sendLocalNotFound(reply)
    // Pending, running, unknown, deleted and foreign ids all answer {} (contract §3): clients poll until the id appears.
    await fastify.promptIds.load({ client: [id] })
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
        const clientIds = deleteList(toDelete)
        await fastify.promptIds.load({ client: clientIds })
        const ids = clientIds.map(id => fastify.promptIds.toCloud(id))
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
        if (cloudBody.clear === true) await fastify.jobs.clearEntries()
        else await fastify.jobs.deleteEntries(cloudBody.delete ?? [])
      }
    }
    return await reply.code(200).type('application/octet-stream').send()
  })
}

export default historyRoutes
