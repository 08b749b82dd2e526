/**
 * GET /view (and /api/view): the cloud answers with a 302 to a signed storage URL (notes §2.11).
 * By default the proxy fetches that URL itself, with no credentials at all, and streams the
 * bytes back with their type and length, so the client sees local ComfyUI's answer; with
 * VIEW_MODE=redirect it hands the 302 to the client. `channel` and `res` requests, which the
 * cloud answers with bytes, stream directly.
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { Agent, request as undiciRequest, type Dispatcher } from 'undici'
import { upstreamStatusError } from '../cloud/client.js'
import { ProxyError } from '../errors.js'
import { withoutToken } from '../auth.js'

const PASSED_HEADERS = ['content-type', 'content-length', 'cache-control', 'etag', 'last-modified', 'content-disposition']
const REDIRECTS = new Set([301, 302, 303, 307, 308])

function sendFile (reply: FastifyReply, response: Dispatcher.ResponseData): FastifyReply {
  for (const name of PASSED_HEADERS) {
    const value = response.headers[name]
    if (value !== undefined) reply.header(name, value)
  }
  return reply.code(200).send(response.body)
}

const viewRoutes: FastifyPluginAsync = async (fastify) => {
  const { cloud } = fastify
  // Storage is another host: its own pool, TLS verified, never the cloud key.
  const storage = new Agent({ connect: { rejectUnauthorized: true }, headersTimeout: fastify.config.cloudTimeoutMs, bodyTimeout: fastify.config.cloudTimeoutMs })
  fastify.addHook('onClose', async () => { await storage.close() })

  const view = async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    const query = withoutToken(request.url.includes('?') ? request.url.slice(request.url.indexOf('?')) : '')
    const params = new URLSearchParams(query)
    if (!params.has('filename')) throw new ProxyError(400, 'invalid_query', 'filename is required', '', { parameter: 'filename' })
    const response = await cloud.stream(`/api/view${query}`, '/api/view')
    if (response.statusCode === 200) return sendFile(reply, response)
    const location = response.headers.location
    if (REDIRECTS.has(response.statusCode) && typeof location === 'string') {
      await response.body.dump()
      if (fastify.config.viewMode === 'redirect') return await reply.redirect(location, 302)
      let target: URL
      try {
        target = new URL(location, cloud.origin)
      } catch {
        throw new ProxyError(502, 'cloud_bad_response', 'Comfy Cloud redirected to an invalid URL', 'GET /api/view')
      }
      if (target.protocol !== 'https:' && target.protocol !== 'http:') {
        throw new ProxyError(502, 'cloud_bad_response', 'Comfy Cloud redirected to a non-HTTP URL', 'GET /api/view')
      }
      let file: Dispatcher.ResponseData
      try {
        // No headers at all: following the redirect with credentials would hand the key to the storage host (notes §2.11).
        file = await undiciRequest(target, { method: 'GET', dispatcher: storage })
      } catch {
        throw new ProxyError(502, 'storage_unreachable', 'The file storage cannot be reached', 'GET (signed storage URL)')
      }
      if (file.statusCode === 200) return sendFile(reply, file)
      await file.body.dump()
      throw new ProxyError(file.statusCode === 404 ? 404 : 502, 'storage_error', `The file storage answered ${file.statusCode}`)
    }
    const text = await response.body.text()
    if (response.statusCode === 404) throw new ProxyError(404, 'not_found', 'File not found')
    if (response.statusCode === 400) {
      let message = 'Comfy Cloud refused the request'
      try { message = (JSON.parse(text) as { message?: string }).message ?? message } catch {}
      throw new ProxyError(400, 'invalid_query', message)
    }
    throw upstreamStatusError({ method: 'GET', path: '/api/view' }, { status: response.statusCode, headers: response.headers, body: text })
  }
  // One plugin for both paths, so the storage pool is one too.
  for (const url of ['/view', '/api/view']) fastify.get(url, view)
}

export default viewRoutes
