/**
 * GET /queue, POST /queue and POST /interrupt (contract §6) on the cloud's queue and jobs API.
 * Local semantics are kept where the cloud's differ (notes §4.7, §4.8): POST /queue touches only
 * pending jobs, /interrupt only running ones, and both answer 200 with an empty body.
 */
import type { FastifyInstance, FastifyPluginAsync, FastifyReply } from 'fastify'
import { cloudPathSegment } from '../cloud/client.js'
import type { JobDetail, JobsList, Json } from '../cloud/types.js'
import { localQueue } from '../compat/queue.js'
import { pythonTruthy } from '../compat/params.js'
import { INVALID_JSON } from '../body.js'
import { badRequest } from '../errors.js'
import { mapLimit } from '../concurrency.js'

/** Each id costs up to two cloud calls: bound the work one request can cause. */
const MAX_DELETE = 1000
const CLOUD_CONCURRENCY = 8

async function jobStatus (fastify: FastifyInstance, id: string): Promise<string | undefined> {
  const response = await fastify.cloud.call<JobDetail>({
    method: 'GET', path: `/api/jobs/${cloudPathSegment(id)}`, route: '/api/jobs/:id', schema: 'JobDetailResponse', accept: [400, 403, 404, 414]
  })
  return response.status === 200 ? response.body.status : undefined
}

async function cancel (fastify: FastifyInstance, id: string): Promise<void> {
  await fastify.cloud.call({
    method: 'POST', path: `/api/jobs/${cloudPathSegment(id)}/cancel`, route: '/api/jobs/:id/cancel', accept: [400, 403, 404, 409]
  })
}

async function emptyOk (reply: FastifyReply): Promise<FastifyReply> {
  return await reply.code(200).type('application/octet-stream').send()
}

function objectBody (body: unknown, { invalidJsonIsEmpty }: { invalidJsonIsEmpty: boolean }): Json {
  if (body === undefined || (body === INVALID_JSON && invalidJsonIsEmpty)) return {}
  if (body === INVALID_JSON) throw badRequest('invalid_json', 'The request body is not valid JSON')
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw badRequest('invalid_request', 'The request body must be a JSON object')
  return body as Json
}

const queueRoutes: FastifyPluginAsync = async (fastify) => {
  fastify.get('/queue', async () => {
    const { promptIds, submissions } = fastify
    const queue = await fastify.jobs.queue()
    // Prompts submitted through another replica, or before a restart: their extra_data is in the state store.
    const ids = [...queue.queue_running, ...queue.queue_pending].map(item => item[1])
    await Promise.all([submissions.load(ids), promptIds.load({ cloud: ids })])
    return localQueue(queue, id => ({ promptId: promptIds.toClient(id), number: promptIds.numberOf(id), extraData: submissions.get(id)?.extraData }))
  })

  fastify.post('/queue', async (request, reply) => {
    const body = objectBody(request.body, { invalidJsonIsEmpty: false })
    const toDelete = body.delete === undefined ? [] : body.delete
    if (!Array.isArray(toDelete)) throw badRequest('invalid_request', 'delete must be a list of prompt ids', { field: 'delete' })
    if (toDelete.length > MAX_DELETE) throw badRequest('invalid_request', `delete takes at most ${MAX_DELETE} prompt ids at once`, { field: 'delete' })
    try {
      if (pythonTruthy(body.clear)) {
        await fastify.cloud.call({ method: 'POST', path: '/api/queue', body: { clear: true }, schema: 'QueueManageResponse' })
      }
      // Local deletes only pending prompts and ignores running ones; the cloud's queue delete may cancel both.
      const clientIds = toDelete.filter((id): id is string => typeof id === 'string')
      await fastify.promptIds.load({ client: clientIds })
      const ids = clientIds.map(id => fastify.promptIds.toCloud(id))
      await mapLimit(ids, CLOUD_CONCURRENCY, async id => {
        if (await jobStatus(fastify, id) === 'pending') await cancel(fastify, id)
      })
    } finally {
      fastify.cache.changed()
      fastify.jobs.changed()
    }
    return await emptyOk(reply)
  })

  fastify.post('/interrupt', async (request, reply) => {
    // Local treats an empty or non-JSON body as {} (contract §6.3).
    const { prompt_id: promptId } = objectBody(request.body, { invalidJsonIsEmpty: true })
    try {
      if (typeof promptId === 'string' && promptId !== '') {
        await fastify.promptIds.load({ client: [promptId] })
        const cloudId = fastify.promptIds.toCloud(promptId)
        if (await jobStatus(fastify, cloudId) === 'in_progress') await cancel(fastify, cloudId)
      } else if (!pythonTruthy(promptId)) {
        // Local interrupts the one running prompt; the cloud may run several at once: interrupt them all.
        const running = await fastify.cloud.call<JobsList>({
          method: 'GET', path: '/api/jobs', query: { status: 'in_progress', limit: 100 }, schema: 'JobsListResponse'
        })
        for (const job of running.body.jobs) await cancel(fastify, job.id)
      } else {
        throw badRequest('invalid_request', 'prompt_id must be a string', { field: 'prompt_id' })
      }
    } finally {
      fastify.cache.changed()
      fastify.jobs.changed()
    }
    return await emptyOk(reply)
  })
}

export default queueRoutes
