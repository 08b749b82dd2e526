/**
 * Optional inbound authentication (PROXY_AUTH_TOKEN) for deployments beyond loopback: every
 * request but the probes carries the token as `Authorization: Bearer …` or `?token=…` (browsers
 * cannot set headers on a WebSocket), or the cookie a browser gets for it. The token is checked in
 * constant time and never forwarded.
 */
import { timingSafeEqual, createHash, createHmac } from 'node:crypto'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { errorBody } from './errors.js'

/** The probes stay open for GET and HEAD only; other methods on them are the proxy's own 405 (issue 14 rule 3). */
const OPEN_PATHS = new Set(['/healthz', '/readyz'])
const OPEN_METHODS = new Set(['GET', 'HEAD'])

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

/** Whether a raw query parameter name means `token` once decoded (`%74oken` does; issue 14 rule 7). */
export function isTokenName (rawName: string): boolean {
  let name = rawName.replace(/\+/g, ' ')
  try { name = decodeURIComponent(name) } catch {}
  return name.trim().toLowerCase() === 'token'
}

/** The query string without any `token` parameter, for anything sent on to the cloud; other parameters keep their bytes. */
export function withoutToken (search: string): string {
  const leading = search.startsWith('?') ? '?' : ''
  const pairs = search.slice(leading.length).split('&')
  const kept = pairs.filter(pair => !isTokenName(pair.split('=', 1)[0]))
  if (kept.length === pairs.length) return search
  const rest = kept.filter(pair => pair !== '').join('&')
  return rest === '' ? '' : `${leading}${rest}`
}

/**
 * A browser (the web UI, whose scripts and WebSocket cannot send a header) proves the token with a
 * cookie it got once from `?token=`. The cookie holds an HMAC of the token, never the token itself;
 * it is HttpOnly and SameSite=Strict, and its name carries the port, since cookies are per host only.
 */
export function tokenCookie (token: string, host: string | undefined): { name: string, value: string } {
  return { name: cookieName(host), value: createHmac('sha256', token).update('comfy-compat-proxy browser cookie').digest('base64url') }
}

function cookieName (host: string | undefined): string {
  const port = /:(\d+)$/.exec(host ?? '')?.[1]
  return port === undefined ? 'comfy_compat_proxy' : `comfy_compat_proxy_${port}`
}

export function cookieValue (header: string | undefined, name: string): string | undefined {
  for (const pair of (header ?? '').split(';')) {
    const at = pair.indexOf('=')
    if (at !== -1 && pair.slice(0, at).trim() === name) return pair.slice(at + 1).trim()
  }
  return undefined
}

/** A page load in a browser (not an API or WebSocket client), which may be redirected. */
function isNavigation (request: FastifyRequest): boolean {
  return request.method === 'GET' && request.headers.upgrade === undefined && (request.headers.accept ?? '').includes('text/html')
}

export function requireToken (fastify: FastifyInstance, token: string): void {
  const expected = digest(token)
  // The cookie's value depends on the token alone: computed once, not per request.
  const cookieSecret = tokenCookie(token, undefined).value
  const expectedCookie = digest(cookieSecret)
  const matches = (presented: string | undefined): boolean => presented !== undefined && timingSafeEqual(digest(presented), expected)
  fastify.addHook('onRequest', async (request, reply) => {
    if (OPEN_METHODS.has(request.method) && OPEN_PATHS.has(request.url.split('?')[0])) return
    // CORS preflights carry no credentials by design; @fastify/cors answers them.
    if (request.method === 'OPTIONS' && request.headers['access-control-request-method'] !== undefined) return
    const presented = presentedToken(request.headers.authorization, request.url)
    if (matches(presented)) {
      if (!isNavigation(request) || request.headers.authorization !== undefined) return
      // The token arrived in the address bar: trade it for the cookie and take it out of the URL (and history).
      const query = request.url.indexOf('?')
      const secure = request.protocol === 'https' ? '; Secure' : ''
      return await reply
        .header('set-cookie', `${cookieName(request.headers.host)}=${cookieSecret}; Path=/; HttpOnly; SameSite=Strict${secure}`)
        .header('cache-control', 'no-store')
        .redirect(request.url.slice(0, query) + withoutToken(request.url.slice(query)), 303)
    }
    const fromCookie = cookieValue(request.headers.cookie, cookieName(request.headers.host))
    if (fromCookie !== undefined && timingSafeEqual(digest(fromCookie), expectedCookie)) return
    // A refused WebSocket upgrade must not leave its socket open (it would also hold up close()).
    if (request.headers.upgrade !== undefined) {
      reply.header('connection', 'close')
      reply.raw.once('finish', () => { request.raw.socket?.destroy() })
    }
    return await reply.code(401).header('www-authenticate', 'Bearer')
      .send(errorBody('unauthorized', 'This proxy needs its access token: Authorization: Bearer <PROXY_AUTH_TOKEN> or ?token=<PROXY_AUTH_TOKEN>; in a browser, open /?token=<PROXY_AUTH_TOKEN> once'))
  })
}
