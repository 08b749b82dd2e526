/**
 * Who may talk to the proxy at all, checked before the token and before routing:
 * - the Origin guard of local ComfyUI (observed finding 30): a request whose Origin host differs from a
 *   loopback Host gets 403 with an empty body, so a web page cannot POST /prompt to 127.0.0.1 and spend
 *   the user's credits; OPTIONS gets 200 with an empty body. CORS_ORIGIN entries are the exceptions.
 * - the Host check against DNS rebinding (issue 14 rule 1): a request that reached a loopback address
 *   must name a loopback host or one of ALLOWED_HOSTS; with ALLOWED_HOSTS set, every request must.
 * Both key on the request (its Host, the address it arrived on), not on the configured listener, so
 * the Docker image, which binds 0.0.0.0, keeps the Origin guard for loopback Hosts.
 */
import { isIP } from 'node:net'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { errorBody } from './errors.js'

export interface GuardOptions {
  /** CORS_ORIGIN as configured: '' (none), '*' (any real origin) or a comma-separated list */
  corsOrigin: string
  /** ALLOWED_HOSTS: comma-separated host names (no ports) besides the loopback ones */
  allowedHosts: string
}

/** A host name (no port, no brackets) that always means this machine: loopback addresses and `localhost` (RFC 6761). */
export function isLoopbackHost (hostname: string): boolean {
  const host = hostname.toLowerCase().replace(/\.$/, '')
  if (host === 'localhost' || host.endsWith('.localhost')) return true
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host
  const version = isIP(bare)
  if (version === 4) return bare.startsWith('127.')
  if (version === 6) return bare === '::1' || /^::ffff:(127\.|7f[0-9a-f]{2}:)/.test(bare)
  return false
}

/** `host[:port]` from a Host header, normalised as a URL would (lower case, IPv4 forms, brackets); undefined if unparseable. */
export function parseHost (value: string): { hostname: string, port: string } | undefined {
  if (value === '' || /[/?#@\s\\]/.test(value)) return undefined
  try {
    const url = new URL(`http://${value}`)
    return { hostname: url.hostname, port: url.port }
  } catch {
    return undefined
  }
}

/** CORS_ORIGIN as a predicate: `*` allows every real origin but never `null` (sandboxed frames, file: pages). */
export function corsOriginAllows (corsOrigin: string): (origin: string) => boolean {
  if (corsOrigin.trim() === '*') return origin => origin !== 'null'
  const listed = new Set(corsOrigin.split(',').map(entry => entry.trim().replace(/\/$/, '').toLowerCase()).filter(entry => entry !== ''))
  return origin => listed.has(origin.toLowerCase())
}

/**
 * Local ComfyUI's comparison (finding 30): the Origin's host:port against the Host header, ports compared
 * only when both carry one. An Origin that is not a URL (`null`, garbage) never matches: local lets `null`
 * through, but sandboxed frames send exactly that, so the proxy refuses it (README "Known differences").
 */
export function sameOrigin (origin: string, host: { hostname: string, port: string }): boolean {
  let url: URL
  try {
    url = new URL(origin)
  } catch {
    return false
  }
  if (url.host === '') return false
  if (url.hostname !== host.hostname) return false
  return url.port === '' || host.port === '' || url.port === host.port
}

function refuse (request: FastifyRequest, reply: FastifyReply, status: number, body: unknown): FastifyReply {
  // A refused WebSocket upgrade must not leave its socket open.
  if (request.headers.upgrade !== undefined) {
    reply.header('connection', 'close')
    reply.raw.once('finish', () => { request.raw.socket?.destroy() })
  }
  return body === undefined
    ? reply.code(status).type('application/octet-stream').send('')
    : reply.code(status).send(body)
}

export function guard (fastify: FastifyInstance, options: GuardOptions): void {
  const corsAllows = corsOriginAllows(options.corsOrigin)
  const corsOn = options.corsOrigin.trim() !== ''
  const allowedHosts = new Set(options.allowedHosts.split(',').map(entry => entry.trim().toLowerCase().replace(/\.$/, '')).filter(entry => entry !== ''))

  fastify.addHook('onRequest', async (request, reply) => {
    const hostHeader = request.headers.host
    const host = hostHeader === undefined ? undefined : parseHost(hostHeader)
    const arrivedOnLoopback = isLoopbackHost(request.raw.socket?.localAddress ?? '')
    // A request without Host cannot come from a browser; local ComfyUI accepts it too.
    if (hostHeader !== undefined && (arrivedOnLoopback || allowedHosts.size > 0)) {
      const named = host?.hostname.replace(/\.$/, '')
      if (named === undefined || !(isLoopbackHost(named) || allowedHosts.has(named))) {
        request.log.warn({ host: hostHeader.slice(0, 200) }, 'refused a request for a host this proxy does not serve')
        return refuse(request, reply, 403, errorBody('forbidden_host',
          'This proxy answers only to loopback host names and those listed in ALLOWED_HOSTS (a guard against DNS rebinding)'))
      }
    }
    const origin = request.headers.origin
    if (origin !== undefined && host !== undefined && isLoopbackHost(host.hostname) && !sameOrigin(origin, host) && !corsAllows(origin)) {
      request.log.warn({ origin: origin.slice(0, 200), host: hostHeader }, 'refused a cross-origin request (Origin does not match the loopback Host)')
      return refuse(request, reply, 403, undefined)
    }
    // Local answers every OPTIONS with 200 and an empty body; with CORS_ORIGIN set, @fastify/cors answers preflights.
    if (request.method === 'OPTIONS' && !(corsOn && request.headers['access-control-request-method'] !== undefined)) {
      return await reply.code(200).type('application/octet-stream').send('')
    }
  })
}
