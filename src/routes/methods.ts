/**
 * A wrong method on a local route answers 405, as local ComfyUI (aiohttp) does: text/plain
 * `405: Method Not Allowed` with an Allow header (observed finding 21). Without this, the request
 * would fall through to the pass-through's wildcard and reach the cloud.
 */
import type { FastifyInstance } from 'fastify'
import { sendMethodNotAllowed } from '../errors.js'

/** The methods the pass-through routes would otherwise take (OPTIONS stays with CORS). */
const METHODS = ['DELETE', 'GET', 'HEAD', 'PATCH', 'POST', 'PUT']

/** Every method `url` lacks answers local's 405; aiohttp lists the allowed ones sorted. */
export function refuseOtherMethods (fastify: FastifyInstance, url: string, handled: string[]): void {
  const allowed = [...new Set(handled.includes('GET') ? [...handled, 'HEAD'] : handled)].sort()
  const others = METHODS.filter(method => !allowed.includes(method))
  if (others.length === 0) return
  fastify.route({
    method: others,
    url,
    handler: async (_request, reply) => await sendMethodNotAllowed(reply, allowed)
  })
}

/** Records the routes registered from here on; the returned function refuses their other methods once they all are. */
export function answerWrongMethods (fastify: FastifyInstance): () => void {
  const handled = new Map<string, Set<string>>()
  fastify.addHook('onRoute', (route) => {
    const methods = handled.get(route.url) ?? new Set<string>()
    for (const method of [route.method].flat()) methods.add(method)
    handled.set(route.url, methods)
  })
  return () => {
    for (const [url, methods] of [...handled]) refuseOtherMethods(fastify, url, [...methods])
  }
}
