/**
 * Every local route that is not translated goes to the cloud's /api/<route> with
 * @fastify/http-proxy (design §2): `/route` and `/api/route` alike. The server key is injected,
 * client credentials are stripped, bodies (multipart uploads included) are streamed, and the cloud
 * client's streaming pool (TLS verified) carries the requests: a client that paces a stream, such as
 * a stalled upload, holds a connection of that pool only, never one the translated routes need
 * (issue 14 rule 2). Waiting for one of its connections is bounded by CLOUD_TIMEOUT_MS.
 */
import type { FastifyPluginAsync } from 'fastify'
import httpProxy from '@fastify/http-proxy'
import type { IncomingHttpHeaders } from 'node:http'
import { LOCAL_NOT_FOUND, ProxyError } from '../errors.js'
import { Readable } from 'node:stream'
import { priorityOf, retryAfterMs, upstreamStatusError, type CloudClient } from '../cloud/client.js'
import { accountRefusal, accountRefusalError } from '../cloud/refusals.js'
import { withoutToken } from '../auth.js'

/** Credentials a local client may send that must never reach the cloud (notes §1.2). */
export const CLIENT_CREDENTIAL_HEADERS = ['authorization', 'x-api-key', 'cookie', 'x-comfy-workspace-id', 'proxy-authorization']

/** Hop-by-hop headers (RFC 9110 §7.6.1): they describe one connection and are never relayed, either way. */
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-authenticate', 'proxy-authorization']

/**
 * Client headers are forwarded except credentials, hop-by-hop headers and the forwarding headers
 * (a deny-list: uploads and content negotiation need the rest). The proxy is the cloud's client, so
 * a client's claims about where a request came from (X-Forwarded-*, Forwarded, X-Real-IP) are dropped.
 */
function isForwardingHeader (name: string): boolean {
  return name.startsWith('x-forwarded-') || name === 'forwarded' || name === 'x-real-ip'
}

/** Names a Connection header lists are hop-by-hop too (RFC 9110 §7.6.1). */
function connectionListed (headers: Record<string, unknown>): string[] {
  const value = headers.connection
  return typeof value === 'string' ? value.toLowerCase().split(',').map(name => name.trim()).filter(name => name !== '') : []
}

export function withoutHopByHop<T extends Record<string, unknown>> (headers: T): T {
  const out: Record<string, unknown> = { ...headers }
  for (const name of [...HOP_BY_HOP, ...connectionListed(headers)]) delete out[name]
  return out as T
}

/** The cloud's answer headers as relayed: no hop-by-hop headers, and no cookies (client cookies never reach the cloud, so its cookies mean nothing here). */
export function relayedAnswerHeaders (headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const out = withoutHopByHop(headers)
  delete out['set-cookie']
  return out
}

/** OSS /api/jobs sort names → the cloud's (notes §4.8). */
const SORT_BY: Record<string, string> = { created_at: 'create_time', execution_duration: 'execution_time' }

export function translateJobsQuery (url: string): string {
  const [path, query] = url.split('?', 2)
  if (query === undefined || !/^\/(api\/)?jobs(\/|$)/.test(path)) return url
  const params = new URLSearchParams(query)
  const sortBy = params.get('sort_by')
  if (sortBy !== null && SORT_BY[sortBy.toLowerCase()] !== undefined) params.set('sort_by', SORT_BY[sortBy.toLowerCase()])
  return `${path}?${params.toString()}`
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS'])

interface ErrorReply { log: { warn: (info: object, message: string) => void }, code: (status: number) => { send: (payload: unknown) => unknown } }

function replyFromError (reply: ErrorReply, { error }: { error: Error & { statusCode?: number, code?: string } }): void {
  const status = error.statusCode ?? 502
  const failure = status === 504
    ? new ProxyError(504, 'cloud_timeout', 'Comfy Cloud did not answer in time')
    : status === 503
      ? new ProxyError(503, 'cloud_unreachable', 'Comfy Cloud cannot be reached')
      : new ProxyError(502, 'cloud_connection_failed', 'The connection to Comfy Cloud failed')
  reply.log.warn({ code: error.code }, failure.message)
  void reply.code(failure.statusCode).send({ error: failure.toLocal() })
}

/**
 * Routes of local ComfyUI 0.18 that reach the pass-through (contract §7; `*` is one path segment). A cloud
 * 404 on one of them is about the thing asked for (a missing file, job or model) and passes as the cloud
 * wrote it; on any other path it means the route is unknown, which local answers with its text 404.
 */
const LOCAL_ROUTES = [
  'object_info', 'system_stats', 'features', 'embeddings', 'models', 'models/*', 'free', 'upload/image', 'upload/mask',
  'view_metadata/*', 'node_replacements', 'userdata', 'userdata/*', 'userdata/*/move/*', 'v2/userdata',
  'global_subgraphs', 'global_subgraphs/*', 'experiment/models', 'experiment/models/*', 'experiment/models/preview/**'
]
const LOCAL_ROUTE = new RegExp(
  `^/(?:api/)?(?:${LOCAL_ROUTES.map(route => route.replace(/\*\*/g, '.+').replace(/\*/g, '[^/]+')).join('|')})$` +
  // the jobs routes exist only under /api, the internal ones only without it
  '|^/api/jobs(?:/.*)?$|^/internal/.+$'
)

export function isLocalRoute (path: string): boolean {
  return LOCAL_ROUTE.test(path)
}

interface UpstreamAnswer { statusCode: number, headers?: IncomingHttpHeaders, stream: NodeJS.ReadableStream }
interface RelayReply {
  send: (payload: unknown) => unknown
  removeHeader: (name: string) => unknown
  code: (status: number) => RelayReply
  type: (contentType: string) => RelayReply
}

/** A 403 body larger than this is relayed without being read for an account refusal (those are a few hundred bytes). */
const REFUSAL_BODY_LIMIT = 64 * 1024

/** The cloud's body headers, which must not describe an answer the proxy writes itself. */
function dropBodyHeaders (reply: RelayReply): void {
  for (const name of ['content-length', 'content-encoding', 'transfer-encoding', 'etag']) reply.removeHeader(name)
}

/** The proxy's own answer in place of the cloud's: nothing of the cloud's headers, and above all no cookie or redirect. */
function sendFailure (reply: RelayReply, failure: ProxyError): void {
  dropBodyHeaders(reply)
  for (const name of ['set-cookie', 'location', 'content-disposition', 'refresh', 'link']) reply.removeHeader(name)
  void reply.code(failure.statusCode).type('application/json; charset=utf-8').send({ error: failure.toLocal() })
}

/** A 403 that refuses the whole account (drift §1.3) becomes the same 502 as on the translated routes; any other 403 passes as it is. */
async function relay403 (reply: RelayReply, upstream: UpstreamAnswer): Promise<void> {
  const chunks: Buffer[] = []
  let size = 0
  const reader = upstream.stream[Symbol.asyncIterator]()
  for (let next = await reader.next(); next.done !== true; next = await reader.next()) {
    const chunk = Buffer.from(next.value as Buffer)
    chunks.push(chunk)
    size += chunk.length
    if (size > REFUSAL_BODY_LIMIT) {
      async function * rest (): AsyncGenerator<Buffer> {
        yield * chunks
        for (let more = await reader.next(); more.done !== true; more = await reader.next()) yield Buffer.from(more.value as Buffer)
      }
      void reply.send(Readable.from(rest()))
      return
    }
  }
  const body = Buffer.concat(chunks)
  let parsed: unknown
  try { parsed = JSON.parse(body.toString('utf8')) } catch { parsed = undefined }
  const refusal = accountRefusal(403, parsed)
  // FORBIDDEN may be one job of another account on a per-job route (notes §2.7): only the unambiguous codes are rewritten here.
  if (refusal !== undefined && !refusal.ambiguous) sendFailure(reply, accountRefusalError(refusal, '(passed through)'))
  else void reply.send(body)
}

/**
 * Cloud 4xx answers pass as they are, but for a 404 on a path local ComfyUI does not have (local's text
 * 404) and a 403 refusing the whole account; a cloud 5xx becomes the local envelope (502/503/504), as on
 * the translated routes. A 429 pauses the reads of every route, like one on a translated route.
 */
const relayOrWrap5xx = (cloud: CloudClient) => (request: { url: string }, reply: RelayReply, upstream: UpstreamAnswer): void => {
  if (upstream.statusCode === 429) cloud.budget.pause(retryAfterMs(upstream.headers?.['retry-after']))
  if (upstream.statusCode === 404 && !isLocalRoute(request.url.split('?')[0])) {
    upstream.stream.resume()
    dropBodyHeaders(reply)
    void reply.code(404).type(LOCAL_NOT_FOUND.type).send(LOCAL_NOT_FOUND.body)
    return
  }
  if (upstream.statusCode === 403) {
    relay403(reply, upstream).catch(() => { sendFailure(reply, new ProxyError(502, 'cloud_connection_failed', 'The connection to Comfy Cloud failed')) })
    return
  }
  if (upstream.statusCode < 500) {
    void reply.send(upstream.stream)
    return
  }
  upstream.stream.resume()
  sendFailure(reply, upstreamStatusError({ method: 'GET', path: '(passed through)' }, { status: upstream.statusCode, headers: {}, body: '' }))
}

const passthroughRoutes: FastifyPluginAsync = async (fastify) => {
  const { cloud } = fastify
  const rewriteRequestHeaders = (_request: unknown, headers: IncomingHttpHeaders): IncomingHttpHeaders => {
    const out: IncomingHttpHeaders = withoutHopByHop(headers)
    for (const name of CLIENT_CREDENTIAL_HEADERS) delete out[name]
    for (const name of Object.keys(out)) if (isForwardingHeader(name)) delete out[name]
    return { ...out, ...cloud.authHeaders() }
  }
  // A dead cloud gets fast 503s here too (the translated routes go through the cloud client's breaker).
  fastify.addHook('onRequest', async (request, reply) => {
    if (cloud.breaker.state === 'open') {
      return await reply.code(503).header('retry-after', String(cloud.breaker.retryAfterSeconds()))
        .send({ error: new ProxyError(503, 'cloud_circuit_open', 'Comfy Cloud is failing; the proxy is not calling it for a moment').toLocal() })
    }
    // Every pass-through request is a cloud call: it waits for the cloud budget like the translated ones.
    try {
      await cloud.budget.acquire(priorityOf(request.method), fastify.config.cloudTimeoutMs)
    } catch (error) {
      if (!(error instanceof ProxyError)) throw error
      return await reply.code(error.statusCode).headers(error.headers).send({ error: error.toLocal() })
    }
    fastify.metrics.countCall(request)
  })
  fastify.addHook('preHandler', async (request, reply) => {
    // A client that goes away while waiting (a stalled upload answered 408) gives up its place in the queue.
    const gone = new AbortController()
    const leave = (): void => { gone.abort(new ProxyError(408, 'request_timeout', 'The client went away while waiting for a connection')) }
    reply.raw.once('close', leave)
    const release = await cloud.slot(cloud.streaming.gate, { method: request.method, path: '(passed through)', route: 'passthrough' }, performance.now() + cloud.timeoutMs, gone.signal)
    reply.raw.off('close', leave)
    if (request.raw.socket?.destroyed !== false) {
      release()
      throw new ProxyError(408, 'request_timeout', 'The client went away while waiting for a connection')
    }
    reply.raw.once('close', release)
  })
  for (const prefix of ['/api', '/']) {
    await fastify.register(httpProxy, {
      upstream: cloud.origin,
      prefix,
      rewritePrefix: prefix === '/api' ? '/api' : '/api/',
      // `/` itself is the web UI or the proxy's own page (routes/frontend.ts), never the cloud's.
      routes: prefix === '/api' ? ['/', '/*'] : ['/*'],
      websocket: false,
      // OPTIONS stays with @fastify/cors (local ComfyUI answers no OPTIONS either).
      httpMethods: ['DELETE', 'GET', 'HEAD', 'PATCH', 'POST', 'PUT'],
      undici: cloud.streaming.pool,
      replyOptions: {
        queryString: (_search: string | undefined, url: string) => {
          const start = url.indexOf('?')
          if (start === -1) return ''
          const query = withoutToken(url.slice(start))
          return query.startsWith('?') ? query.slice(1) : query
        },
        rewriteRequestHeaders,
        rewriteHeaders: relayedAnswerHeaders,
        onError: replyFromError,
        onResponse: relayOrWrap5xx(cloud),
        // Reads may be retried once after a dropped socket; a write never is.
        // reply-from asks after every answer, with err null on success.
        retryDelay: ({ req, err, attempt }: { req: { method?: string }, err?: Error | null, attempt: number }) =>
          err instanceof Error && attempt < 1 && IDEMPOTENT.has(req.method ?? '') ? 50 : null
      }
    })
  }
}

export default passthroughRoutes
