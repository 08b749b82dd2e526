/** The proxy's own routes: /healthz never calls the cloud; /readyz checks the cloud accepts the key (cached briefly); /metrics. */
import type { FastifyPluginAsync } from 'fastify'
import { ProxyError } from '../errors.js'

const READY_TTL_MS = 5_000

const healthRoutes: FastifyPluginAsync = async (fastify) => {
  fastify.get('/healthz', async () => ({ status: 'ok' }))

  fastify.get('/metrics', async (_request, reply) => {
    return await reply.type(fastify.metrics.registry.contentType).send(await fastify.metrics.registry.metrics())
  })

  fastify.get('/readyz', async (_request, reply) => {
    try {
      await fastify.cache.shared('readyz', async () => await fastify.cloud.call({ method: 'GET', path: '/api/prompt', schema: 'PromptInfo' }), READY_TTL_MS)
      return { status: 'ready' }
    } catch (err) {
      const failure = err instanceof ProxyError ? err : new ProxyError(503, 'not_ready', 'Comfy Cloud is not reachable')
      return await reply.code(503).send({ status: 'not ready', error: failure.toLocal() })
    }
  })
}

export default healthRoutes
