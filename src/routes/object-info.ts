/**
 * GET /object_info and GET /object_info/{class} from the cloud's full list, shared for a minute.
 * The cloud 404s the per-class route (notes §1.1), so the class is picked from the full list; an
 * unknown class answers {} like local ComfyUI. With OBJECT_INFO_USER_MODELS (default) the cloud is
 * asked for the account's own imported models too (drift §2.11), as local lists its models folder.
 */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import type { Json } from '../cloud/types.js'

const OBJECT_INFO_TTL_MS = 60_000

interface Catalogue { nodes: Json, text: string }

async function catalogue (fastify: FastifyInstance): Promise<Catalogue> {
  const userModels = fastify.config.objectInfoUserModels
  return await fastify.cache.shared(`object_info:user_models=${String(userModels)}`, async () => {
    const nodes = (await fastify.cloud.call<Json>({
      method: 'GET',
      path: '/api/object_info',
      query: { include_user_models: userModels ? 'true' : undefined },
      schema: 'ObjectInfoResponse'
    })).body
    // Kept as text as well: the full list is megabytes, serialised once rather than per request.
    return { nodes, text: JSON.stringify(nodes) }
  }, OBJECT_INFO_TTL_MS)
}

/** The cloud's node catalogue (what GET /object_info answers), shared with the other routes that read it. */
export async function loadObjectInfo (fastify: FastifyInstance): Promise<Json> {
  return (await catalogue(fastify)).nodes
}

const objectInfoRoutes: FastifyPluginAsync = async (fastify) => {
  fastify.get('/object_info', async (_request, reply) => {
    return await reply.type('application/json; charset=utf-8').send((await catalogue(fastify)).text)
  })

  fastify.get<{ Params: { nodeClass: string } }>('/object_info/:nodeClass', async (request) => {
    const { nodes } = await catalogue(fastify)
    const { nodeClass } = request.params
    return Object.hasOwn(nodes, nodeClass) ? { [nodeClass]: nodes[nodeClass] } : {}
  })
}

export default objectInfoRoutes
