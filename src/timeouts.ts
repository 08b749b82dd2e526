/**
 * Timeouts on what clients send (issue 14 rule 2). Headers: Node's headersTimeout (HEADERS_TIMEOUT_MS).
 * Bodies: a progress timeout rather than a total one, so that a large upload on a slow link works while
 * a body that stops arriving (32 sockets that announce a megabyte and send 4 bytes) is answered 408 and
 * its connection closed after BODY_TIMEOUT_MS. Node's total requestTimeout is therefore off on purpose.
 */
import type { FastifyInstance } from 'fastify'
import { errorBody } from './errors.js'

/** Options for Fastify's constructor: the server-wide limits. */
export function serverTimeouts (headersTimeoutMs: number): { requestTimeout: number, http: { headersTimeout: number, connectionsCheckingInterval: number } } {
  return {
    // Total time for a whole request: none, or long uploads would fail; bodies have a progress timeout instead.
    requestTimeout: 0,
    // Node checks its header timeout every connectionsCheckingInterval (30 s by default): often enough to keep it close to the setting.
    http: { headersTimeout: headersTimeoutMs, connectionsCheckingInterval: Math.max(100, Math.min(5_000, Math.round(headersTimeoutMs / 4))) }
  }
}

function hasBody (headers: Record<string, string | string[] | undefined>): boolean {
  return headers['transfer-encoding'] !== undefined || (headers['content-length'] !== undefined && headers['content-length'] !== '0')
}

export function bodyProgressTimeout (fastify: FastifyInstance, timeoutMs: number): void {
  fastify.addHook('onRequest', async (request, reply) => {
    const socket = request.raw.socket
    if (socket === null || !hasBody(request.headers)) return
    // The socket goes idle when no byte arrives (nothing is written back while a body is read); Node then
    // emits 'timeout' on the incomplete request. Once the body is in, the socket has no timeout again.
    socket.setTimeout(timeoutMs)
    const done = (): void => { socket.setTimeout(0) }
    request.raw.once('end', done)
    reply.raw.once('close', done)
    request.raw.once('timeout', () => {
      request.log.warn({ timeoutMs }, 'request body made no progress: closing the connection')
      if (!reply.raw.headersSent) {
        const body = JSON.stringify(errorBody('request_timeout', `The request body made no progress for ${timeoutMs} ms (BODY_TIMEOUT_MS)`))
        socket.end(`HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`)
      }
      socket.destroySoon()
    })
  })
}
