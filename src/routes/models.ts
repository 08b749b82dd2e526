/** GET /models, /models/{folder} and /embeddings, answered from the cloud's model catalogue (issue 17). */
import type { FastifyPluginAsync } from 'fastify'
import { ProxyError } from '../errors.js'
import { ModelCatalog } from '../model-catalog.js'
import { embeddingNames } from '../compat/models.js'
import { loadObjectInfo } from './object-info.js'

const modelRoutes: FastifyPluginAsync = async (fastify) => {
  const catalog = new ModelCatalog(fastify.cloud, fastify.cache, async () => await loadObjectInfo(fastify))

  fastify.get('/models', async () => await catalog.folders())

  fastify.get<{ Params: { folder: string } }>('/models/:folder', async (request) => {
    const { folder } = request.params
    const files = await catalog.files(folder)
    if (files === undefined) throw new ProxyError(404, 'not_found', `No model folder '${folder}'`)
    return files
  })

  // Local lists the embeddings folder without file extensions, [] when it is empty.
  fastify.get('/embeddings', async () => embeddingNames(await catalog.files('embeddings') ?? []))
}

export default modelRoutes
