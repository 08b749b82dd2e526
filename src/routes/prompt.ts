/** GET /prompt and POST /prompt (contract §5) through GET/POST /api/prompt (notes §2.1, §2.2, §4.6). */
import type { FastifyPluginAsync } from 'fastify'
import type { Json } from '../cloud/types.js'
import { localPromptError, localSubmit, offerableId } from '../compat/prompt.js'
import { INVALID_JSON } from '../body.js'
import { ProxyError } from '../errors.js'

interface PromptResponse { prompt_id: string, number?: number, node_errors?: Json }

const promptRoutes: FastifyPluginAsync = async (fastify) => {
  // queue_remaining is the account's unfinished jobs, which the job tracker knows: no call of its own.
  fastify.get('/prompt', async () => ({ exec_info: { queue_remaining: await fastify.jobs.queueRemaining() } }))

  fastify.post('/prompt', { config: { promptEnvelope: true } }, async (request, reply) => {
    if (request.body === INVALID_JSON) throw new ProxyError(400, 'invalid_json', 'The request body is not valid JSON')
    const submit = localSubmit(request.body)
    const { cloudRequest } = submit
    const { promptIds } = fastify
    if (submit.promptId !== undefined) await promptIds.load({ client: [submit.promptId] })
    // A client's id goes to the cloud only when it could take it as a job id; otherwise, or when the id
    // is reused (local accepts that, observed finding 4), the cloud mints one and the proxy maps the two.
    if (submit.promptId !== undefined && offerableId(submit.promptId) && !promptIds.isTaken(submit.promptId)) {
      cloudRequest.prompt_id = submit.promptId
    }
    // One number per prompt, shown the same in /queue, /history and /api/jobs (observed finding 3);
    // front puts it ahead of every pending prompt, as local's -counter does.
    const number = submit.number ?? (submit.front ? -promptIds.nextNumber() : promptIds.nextNumber())
    // A submit is never retried: once it may have reached the cloud, a second one could queue the job twice.
    const ticket = fastify.submissions.begin()
    let response
    let cloudId: string | undefined
    try {
      response = await fastify.cloud.call<PromptResponse | Json>({
        method: 'POST',
        path: '/api/prompt',
        body: cloudRequest,
        schema: 'PromptResponse',
        accept: [400, 401, 402, 403, 404, 409, 413, 422, 429, 500, 502, 503, 504]
      })
      if (response.status < 300) {
        cloudId = (response.body as PromptResponse).prompt_id
        // In the state store before the client hears of it: a restart or another replica knows the prompt.
        await Promise.all([
          promptIds.remember({ cloudId, clientId: submit.promptId ?? cloudId, number }),
          fastify.submissions.record(cloudId, cloudRequest.extra_data as Json)
        ])
        fastify.jobs.submitted(cloudId)
      }
    } finally {
      fastify.submissions.end(ticket, cloudId)
    }
    if (response.status >= 300) {
      const retryAfter = response.headers['retry-after']
      const { statusCode, body } = localPromptError(response.status, response.body, typeof retryAfter === 'string' ? retryAfter : undefined)
      if (typeof retryAfter === 'string' && (statusCode === 429 || statusCode === 503)) reply.header('retry-after', retryAfter)
      request.log.info({ cloudStatus: response.status, errorType: body.error.type }, 'prompt refused')
      return await reply.code(statusCode).send(body)
    }
    const accepted = response.body as PromptResponse
    fastify.cache.changed()
    return {
      prompt_id: submit.promptId ?? accepted.prompt_id,
      number,
      node_errors: typeof accepted.node_errors === 'object' && accepted.node_errors !== null ? accepted.node_errors : {}
    }
  })
}

export default promptRoutes
