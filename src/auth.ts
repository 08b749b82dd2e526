/**
 * Optional inbound authentication (PROXY_AUTH_TOKEN) for deployments beyond loopback: every
 * request but the probes carries the token as `Authorization: Bearer …` or `?token=…` (browsers
 * cannot set headers on a WebSocket). The token is checked in constant time and never forwarded.
 */
import { timingSafeEqual, createHash } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { errorBody } from './errors.js'

const OPEN_PATHS = new Set(['/healthz', '/readyz'])

function digest (value: string): Buffer {
  return createHash('sha256').update(value).digest()
}

export function presentedToken (authorization: string | undefined, url: string): string | undefined {
  if (authorization !== undefined) {
    const match = /^Bearer\s+(.+)$/i.exec(authorization.trim())
    if (match !== null) return match[1]
  }
  const query = url.indexOf('?')
  if (query === -1) return undefined
  return new URLSearchParams(url.slice(query + 1)).get('token') ?? undefined
}

/** The query string without a `token` parameter, for anything sent on to the cloud. */
export function withoutToken (search: string): string {
  if (!/(^|[?&])token=/.test(search)) return search
  const params = new URLSearchParams(search.startsWith('?') ? search.slice(1) : search)
  params.delete('token')
  const rest = params.toString()
  return search.startsWith('?') ? (rest === '' ? '' : `?${rest}`) : rest
}

export function requireToken (fastify: FastifyInstance, token: string): void {
  const expected = digest(token)
  fastify.addHook('onRequest', async (request, reply) => {
    if (OPEN_PATHS.has(request.url.split('?')[0])) return
    // CORS preflights carry no credentials by design; @fastify/cors answers them.
    if (request.method === 'OPTIONS' && request.headers['access-control-request-method'] !== undefined) return
    const presented = presentedToken(request.headers.authorization, request.url)
    if (presented !== undefined && timingSafeEqual(digest(presented), expected)) return
    // A refused WebSocket upgrade must not leave its socket open (it would also hold up close()).
    if (request.headers.upgrade !== undefined) {
      reply.header('connection', 'close')
      reply.raw.once('finish', () => { request.raw.socket?.destroy() })
    }
    return await reply.code(401).header('www-authenticate', 'Bearer')
      .send(errorBody('unauthorized', 'This proxy needs its access token: Authorization: Bearer <PROXY_AUTH_TOKEN> or ?token=<PROXY_AUTH_TOKEN>'))
  })
}
