/**
 * Local ComfyUI parses a request body as JSON whatever its Content-Type (clients send text/plain
 * and form-urlencoded; design §5). Translated routes use this parser; a body that is not JSON
 * arrives as INVALID_JSON so each route can answer the way its local counterpart would.
 */
import type { FastifyInstance } from 'fastify'

export const INVALID_JSON = Symbol('invalid JSON body')

export function lenientJsonBodies (fastify: FastifyInstance): void {
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
