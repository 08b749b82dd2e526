/**
 * /api/jobs, /api/jobs/{id} and the cancel routes in local ComfyUI's shape (observed finding 23,
 * contract §8): ComfyUI's own frontend reads its queue and history here, so the cloud's answers are
 * translated rather than passed through. Ids are the ones clients know (see src/jobs/prompt-ids.ts).
 */
import type { FastifyInstance, FastifyPluginAsync, FastifyReply } from 'fastify'
import { cloudPathSegment } from '../cloud/client.js'
import type { JobDetail, JobsList, Json } from '../cloud/types.js'
import { cloudJobsQuery, JobsQueryError, localJob, localJobDetail, parseJobsQuery } from '../compat/jobs.js'
import { toMs } from '../compat/history.js'
import { identityOf } from '../jobs/prompt-ids.js'
import { INVALID_JSON } from '../body.js'
import { mapLimit } from '../concurrency.js'

/** The cloud's largest page (notes §2.6). */
const CLOUD_PAGE = 1000
const CLOUD_CONCURRENCY = 8
/** ids one batch cancel may name: each costs a cloud call */
const MAX_CANCEL = 100

async function localError (reply: FastifyReply, status: number, error: string): Promise<FastifyReply> {
  return await reply.code(status).send({ error })
}

async function cancelOne (fastify: FastifyInstance, clientId: string): Promise<boolean> {
  await fastify.promptIds.load({ client: [clientId] })
  const cloudId = fastify.promptIds.toCloud(clientId)
  const response = await fastify.cloud.call<{ cancelled?: unknown }>({
    method: 'POST', path: `/api/jobs/${cloudPathSegment(cloudId)}/cancel`, route: '/api/jobs/:id/cancel', accept: [400, 403, 404, 409, 414]
  })
  // Unknown, foreign and finished jobs are "not cancelled", never an error (contract §8.3).
  return response.status === 200 && response.body?.cancelled === true
}

const jobsRoutes: FastifyPluginAsync = async (fastify) => {
  const { promptIds } = fastify

  fastify.get('/jobs', async (request, reply) => {
    let query
    try {
      query = parseJobsQuery(request.query as Record<string, unknown>)
    } catch (error) {
      if (error instanceof JobsQueryError) return await localError(reply, error.statusCode, error.message)
      throw error
    }
    // No limit means every job (local); the cloud pages at most 1000, and HISTORY_MAX_ENTRIES bounds the walk.
    const wanted = Math.min(query.limit ?? Number.POSITIVE_INFINITY, fastify.config.historyMaxEntries)
    const jobs: Json[] = []
    let total = 0
    for (;;) {
      const offset = query.offset + jobs.length
      const limit = Math.min(wanted - jobs.length, CLOUD_PAGE)
      const cloudQuery = cloudJobsQuery(query, offset, limit)
      const page = await fastify.cache.shared(`jobs-list:${JSON.stringify(cloudQuery)}`, async () => (await fastify.cloud.call<JobsList>({
        method: 'GET', path: '/api/jobs', query: cloudQuery, schema: 'JobsListResponse'
      })).body)
      total = page.pagination.total
      await promptIds.load({ cloud: page.jobs.map(job => job.id) })
      for (const job of page.jobs) jobs.push(localJob(job, identityOf(promptIds, job.id, toMs(job.create_time))))
      if (!page.pagination.has_more || page.jobs.length === 0 || jobs.length >= wanted) break
    }
    return {
      jobs,
      pagination: { offset: query.offset, limit: query.limit ?? null, total, has_more: query.offset + jobs.length < total }
    }
  })

  fastify.get<{ Params: { id: string } }>('/jobs/:id', async (request, reply) => {
    await promptIds.load({ client: [request.params.id] })
    const cloudId = promptIds.toCloud(request.params.id)
    const response = await fastify.cloud.call<JobDetail | Json>({
      method: 'GET', path: `/api/jobs/${cloudPathSegment(cloudId)}`, route: '/api/jobs/:id', schema: 'JobDetailResponse', accept: [400, 403, 404, 414]
    })
    // A foreign or malformed id is as unknown as a missing one.
    if (response.status !== 200) return await localError(reply, 404, 'Job not found')
    const job = response.body as JobDetail
    return localJobDetail(job, identityOf(promptIds, job.id, toMs(job.create_time)))
  })

  fastify.post<{ Params: { id: string } }>('/jobs/:id/cancel', async (request) => {
    try {
      return { cancelled: await cancelOne(fastify, request.params.id) }
    } finally {
      fastify.cache.changed()
      fastify.jobs.changed()
    }
  })

  fastify.post('/jobs/cancel', async (request, reply) => {
    const body = request.body
    if (body === INVALID_JSON || body === undefined) return await localError(reply, 400, 'Request body must be valid JSON')
    const ids = typeof body === 'object' && body !== null ? (body as Json).job_ids : undefined
    if (!Array.isArray(ids)) return await localError(reply, 400, 'job_ids must be a list')
    const invalid = ids.filter(id => typeof id !== 'string' || id === '')
    if (invalid.length > 0) return await reply.code(400).send({ error: 'job_ids contains invalid id(s)', invalid_ids: invalid })
    if (ids.length > MAX_CANCEL) return await localError(reply, 400, `job_ids takes at most ${MAX_CANCEL} ids`)
    try {
      const cancelled = await mapLimit(ids as string[], CLOUD_CONCURRENCY, async id => await cancelOne(fastify, id))
      return { cancelled: cancelled.includes(true) }
    } finally {
      fastify.cache.changed()
      fastify.jobs.changed()
    }
  })
}

export default jobsRoutes
