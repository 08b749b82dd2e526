/**
 * Local ComfyUI parses a request body as JSON whatever its Content-Type (clients send text/plain
 * and form-urlencoded; design §5). Translated routes use this parser; a body that is not JSON
 * arrives as INVALID_JSON so each route can answer the way its local counterpart would.
 */
import type { FastifyInstance } from 'fastify'

export const INVALID_JSON = Symbol('invalid JSON body')

/** type/subtype with optional parameters: what Fastify's content-type parsing accepts. */
const MEDIA_TYPE = /^[\w!#$&^.+-]+\/[\w!#$&^.+-]+\s*(;.*)?$/

export function lenientJsonBodies (fastify: FastifyInstance): void {
  // A Content-Type Fastify cannot even parse ('', 'a/b/c;;', 'application/json, text/plain') would be a 415 before any parser runs.
  fastify.addHook('onRequest', async (request) => {
    const type = request.headers['content-type']
    if (type !== undefined && !MEDIA_TYPE.test(type)) request.headers['content-type'] = 'text/plain'
  })
  fastify.removeAllContentTypeParsers()
  fastify.addContentTypeParser('*', { parseAs: 'string' }, (_request, body, done) => {
    const text = (body as string).trim()
    if (text === '') return done(null, undefined)
    try {
      done(null, JSON.parse(text))
    } catch {
      done(null, INVALID_JSON)
    }
  })
}
