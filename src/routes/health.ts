/**
 * The proxy's own routes: /healthz never calls the cloud, and fails (503) when the event loop was
 * blocked for long or a pool to the cloud is wedged (callers waited a whole CLOUD_TIMEOUT_MS and no
 * connection came free); /readyz checks the cloud accepts the key,
 * its outcome (failures too) cached briefly so probes cannot multiply cloud calls; /metrics.
 * They are the proxy's under every method: only GET and HEAD answer, others are local's 405 and are
 * never passed through to the cloud (issue 14 rule 3).
 */
import type { FastifyPluginAsync } from 'fastify'
import { ProxyError } from '../errors.js'
import { EventLoopWatch } from '../event-loop.js'
import { refuseOtherMethods } from './methods.js'

const READY_TTL_MS = 5_000

interface ReadyProbe { expires: number, failure: Promise<ProxyError | undefined> }

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

  let probe: ReadyProbe | undefined
  const readiness = async (): Promise<ProxyError | undefined> => {
    if (probe !== undefined && probe.expires > Date.now()) return await probe.failure
    const current: ReadyProbe = {
      expires: Number.POSITIVE_INFINITY,
      failure: fastify.cloud.call({ method: 'GET', path: '/api/prompt', schema: 'PromptInfo' }).then(
        () => undefined,
        (err: unknown) => err instanceof ProxyError ? err : new ProxyError(503, 'not_ready', 'Comfy Cloud is not reachable'))
    }
    probe = current
    const failure = await current.failure
    current.expires = Date.now() + READY_TTL_MS
    return failure
  }

  fastify.get('/readyz', async (_request, reply) => {
    const failure = await readiness()
    // A shared store that is down is reported, not fatal: the replica serves from memory meanwhile.
    if (failure === undefined) return { status: 'ready', state: { store: fastify.store.kind, healthy: fastify.store.healthy } }
    return await reply.code(503).headers(failure.headers).send({ status: 'not ready', error: failure.toLocal() })
  })

  for (const url of ['/healthz', '/readyz', '/metrics']) refuseOtherMethods(fastify, url, ['GET'])
}

export default healthRoutes
