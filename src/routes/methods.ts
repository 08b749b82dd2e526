import type { FastifyInstance } from 'fastify'
import { sendMethodNotAllowed } from '../errors.js'

const METHODS = ['DELETE', 'GET', 'HEAD', 'PATCH', 'POST', 'PUT']

/**
 * The proxy's own routes must never fall through to the pass-through's wildcard with another method:
 * every method the route lacks answers local's 405 (observed finding 21) without calling the cloud.
 */
export function refuseOtherMethods (fastify: FastifyInstance, url: string, handled: string[]): void {
  const allowed = handled.includes('GET') ? [...handled, 'HEAD'] : handled
  fastify.route({
    method: METHODS.filter(method => !allowed.includes(method)),
    url,
    handler: async (_request, reply) => await sendMethodNotAllowed(reply, allowed)
  })
}
