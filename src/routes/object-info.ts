/**
 * GET /object_info/{class}: the cloud only serves the full list (it 404s the per-class route,
 * notes §1.1), so pick the class from it; an unknown class answers {} like local ComfyUI.
 */
import type { FastifyPluginAsync } from 'fastify'
import type { Json } from '../cloud/types.js'

const OBJECT_INFO_TTL_MS = 60_000

const objectInfoRoutes: FastifyPluginAsync = async (fastify) => {
  fastify.get<{ Params: { nodeClass: string } }>('/object_info/:nodeClass', async (request) => {
    const all = await fastify.cache.shared('object_info', async () => (await fastify.cloud.call<Json>({
      method: 'GET', path: '/api/object_info', schema: 'ObjectInfoResponse'
    })).body, OBJECT_INFO_TTL_MS)
    const { nodeClass } = request.params
    return Object.hasOwn(all, nodeClass) ? { [nodeClass]: all[nodeClass] } : {}
  })
}

export default objectInfoRoutes
