/**
 * Everything the proxy answers passes here last (issue 14 rule 8): any form of the server key (or
 * PROXY_AUTH_TOKEN) a misbehaving cloud echoed, in a header or a body (JSON, text, a streamed file),
 * is masked with `*` of the same length, so lengths and byte ranges stay right. Also: no answer is
 * sniffed into another type, and files from /view that a browser would run (HTML, SVG, XML, scripts)
 * are sandboxed, so storage content can never act as the proxy's own origin.
 */
import { pipeline, type Readable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import type { SecretScrubber } from './secrets.js'

const ACTIVE_CONTENT = /^\s*(text\/html|application\/xhtml\+xml|image\/svg\+xml|text\/xml|application\/xml|text\/javascript|application\/javascript|text\/css)\b/i
const VIEW_PATH = /^\/(api\/)?view(\?|$)/

function isStream (payload: unknown): payload is Readable {
  return typeof payload === 'object' && payload !== null && typeof (payload as Readable).pipe === 'function'
}

export function scrubAnswers (fastify: FastifyInstance, scrubber: SecretScrubber): void {
  fastify.addHook('onSend', async (request, reply, payload) => {
    reply.header('x-content-type-options', 'nosniff')
    if (VIEW_PATH.test(request.url) && ACTIVE_CONTENT.test(String(reply.getHeader('content-type') ?? ''))) {
      reply.header('content-security-policy', 'sandbox')
    }
    if (!scrubber.active) return payload
    for (const [name, value] of Object.entries(reply.getHeaders())) {
      if (value === undefined || typeof value === 'number') continue
      const scrubbed = Array.isArray(value) ? value.map(item => scrubber.text(item, 'mask')) : scrubber.text(value, 'mask')
      if (String(scrubbed) !== String(value)) reply.header(name, scrubbed)
    }
    if (typeof payload === 'string') return scrubber.text(payload, 'mask')
    if (Buffer.isBuffer(payload)) return scrubber.bytes(payload)
    if (isStream(payload)) {
      const masked = scrubber.stream()
      pipeline(payload, masked, () => {})
      return masked
    }
    return payload
  })
}
