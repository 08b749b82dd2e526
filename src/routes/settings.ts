/**
 * `/users` and `/settings…`: the single-user answers of a local ComfyUI (its user manager), which the
 * web UI reads at start-up. Comfy Cloud has no such routes, so they are never passed through.
 */
import type { FastifyPluginAsync, FastifyReply } from 'fastify'
import { INVALID_JSON } from '../body.js'
import { badRequest, ProxyError } from '../errors.js'
import { SettingsFullError } from '../store/settings.js'

function isPlainObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

// Local answers a body that is not JSON with a bare 500 (it calls request.json()); a client deserves to know why.
function jsonBody (body: unknown): unknown {
  if (body === undefined || body === INVALID_JSON) throw badRequest('invalid_json', 'The body must be JSON')
  return body
}

async function emptyOk (reply: FastifyReply): Promise<FastifyReply> {
  // aiohttp's bare web.Response(status=200): no body, application/octet-stream (observed finding 16).
  return await reply.code(200).type('application/octet-stream').send()
}

const settingsRoutes: FastifyPluginAsync = async (fastify) => {
  const { settings } = fastify

  const save = async (values: Record<string, unknown>): Promise<void> => {
    try {
      await settings.merge(values)
    } catch (error) {
      if (error instanceof SettingsFullError) throw new ProxyError(413, 'too_many_settings', error.message)
      throw error
    }
  }

  // Single-user mode: `migrated` says whether the default user's folder exists, i.e. anything was saved.
  fastify.get('/users', async () => ({ storage: 'server', migrated: await settings.written() }))
  fastify.post('/users', async () => {
    throw badRequest('single_user', 'This proxy serves a single user; it does not create users')
  })

  fastify.get('/settings', async () => await settings.all())
  fastify.post('/settings', async (request, reply) => {
    const body = jsonBody(request.body)
    if (!isPlainObject(body)) throw badRequest('invalid_settings', 'The body must be a JSON object of settings')
    await save(body)
    return await emptyOk(reply)
  })

  fastify.get<{ Params: { id: string } }>('/settings/:id', async (request, reply) => {
    // JSON null for a setting never written, as local does; Fastify would send an empty body for a bare null.
    const value = await settings.get(request.params.id)
    return await reply.type('application/json; charset=utf-8').send(JSON.stringify(value ?? null))
  })
  fastify.post<{ Params: { id: string } }>('/settings/:id', async (request, reply) => {
    await save({ [request.params.id]: jsonBody(request.body) })
    return await emptyOk(reply)
  })
}

export default settingsRoutes
