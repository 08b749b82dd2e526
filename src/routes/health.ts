/**
 * The proxy's own routes: /healthz never calls the cloud, and fails (503) when the event loop was
 * blocked for long or a pool to the cloud is wedged (callers waited a whole CLOUD_TIMEOUT_MS and no
 * connection came free); /readyz runs the quick cloud check (the key is accepted, one job list
 * validates) and reports the startup check's verdict, its outcome (failures too) cached briefly so
 * probes cannot multiply cloud calls; /metrics.
 * They are the proxy's under every method: only GET and HEAD answer, others are local's 405 and are
 * never passed through to the cloud (issue 14 rule 3).
 */
import type { FastifyPluginAsync } from 'fastify'
import { ProxyError } from '../errors.js'
import { EventLoopWatch } from '../event-loop.js'
import { refuseOtherMethods } from './methods.js'

const healthRoutes: FastifyPluginAsync = async (fastify) => {
  const loop = new EventLoopWatch()
  fastify.addHook('onClose', async () => { loop.stop() })
  fastify.get('/healthz', async (_request, reply) => {
    const { cloud, config } = fastify
    const delayMs = loop.worstDelayMs()
    const wedgedPools = Object.entries({ translated: cloud.gate, streaming: cloud.streaming.gate })
      .filter(([, gate]) => gate.wedged(cloud.timeoutMs)).map(([name]) => name)
    if (delayMs <= config.healthMaxEventLoopDelayMs && wedgedPools.length === 0) return { status: 'ok' }
    const reason = wedgedPools.length > 0
      ? `no connection to Comfy Cloud came free for ${cloud.timeoutMs} ms in the ${wedgedPools.join(' and ')} pool`
      : `the event loop was blocked for ${delayMs} ms`
    const failure = new ProxyError(503, 'wedged', `The proxy is wedged: ${reason}`, '', {
      event_loop_delay_ms: delayMs, pools: { translated: cloud.gate.stats, streaming: cloud.streaming.gate.stats }
    })
    return await reply.code(503).send({ status: 'wedged', error: failure.toLocal() })
  })

  fastify.get('/metrics', async (_request, reply) => {
    return await reply.type(fastify.metrics.registry.contentType).send(await fastify.metrics.registry.metrics())
  })

  fastify.get('/readyz', async (_request, reply) => {
    const check = await fastify.cloudCheck.latest()
    const startup = fastify.cloudCheck.startup ?? 'not run'
    // A shared store that is down is reported, not fatal: the replica serves from memory meanwhile.
    if (check.ok) return { status: 'ready', state: { store: fastify.store.kind, healthy: fastify.store.healthy }, check, startup_check: startup }
    return await reply.code(503).send({ status: 'not ready', error: check.error, check, startup_check: startup })
  })

  for (const url of ['/healthz', '/readyz', '/metrics']) refuseOtherMethods(fastify, url, ['GET'])
}

export default healthRoutes
