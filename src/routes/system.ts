/**
 * GET /system_stats and /features with every key local ComfyUI has, filled from the cloud's
 * answer (observed finding 32), and POST /free, which has nothing to do on the cloud.
 */
import type { FastifyPluginAsync } from 'fastify'
import type { Json } from '../cloud/types.js'
import { localFeatures, localSystemStats } from '../compat/system.js'

const FEATURES_TTL_MS = 60_000

const systemRoutes: FastifyPluginAsync = async (fastify) => {
  const { cloud, cache } = fastify

  // Shared for LIST_TTL_MS like other polled answers: free RAM and VRAM move, and every read is a cloud call.
  fastify.get('/system_stats', async () => {
    const stats = await cache.shared('system_stats', async () => (await cloud.call<{ system: Json, devices: Json[] }>({
      method: 'GET', path: '/api/system_stats', schema: 'SystemStatsResponse'
    })).body)
    return localSystemStats(stats)
  })

  fastify.get('/features', async () => {
    const features = await cache.shared('features', async () => (await cloud.call<Json>({
      method: 'GET', path: '/api/features', schema: 'FeaturesResponse'
    })).body, FEATURES_TTL_MS)
    return localFeatures(features)
  })

  // Local unloads models and frees VRAM here; on Comfy Cloud the workers manage their own GPUs,
  // so there is nothing to free: 200 with an empty body, as local answers (README, Known differences).
  fastify.post('/free', async (_request, reply) => { await reply.code(200).send() })
}

export default systemRoutes
