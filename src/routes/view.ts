/**
 * GET /view (and /api/view) like local ComfyUI's file server (observed findings 19, 20): the query
 * is refused with local's statuses, the cloud answers with a 302 to a signed storage URL
 * (notes §2.11), and the proxy fetches that URL itself, with no credentials at all, passing on
 * Range, conditional and HEAD requests and the file's validators, so that a client sees local's
 * answer: Content-Disposition, Accept-Ranges, ETag, Last-Modified, 206 for a range, 304 when
 * unchanged. `preview=webp;Q` and `jpeg;Q` are re-encoded here, as the cloud has no such option.
 * With VIEW_MODE=redirect the client gets the 302 instead. `channel` requests, which the cloud
 * answers with bytes, stream directly.
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { Agent, request as undiciRequest, type Dispatcher } from 'undici'
import { upstreamStatusError } from '../cloud/client.js'
import { ProxyError } from '../errors.js'
import { withoutToken } from '../auth.js'
import { availableParallelism } from 'node:os'
import { Limiter } from '../concurrency.js'
import { contentDisposition, encodePreview, parseViewQuery, safeContentType, type Preview, type ViewRequest } from '../compat/view.js'

const PASSED_HEADERS = ['content-length', 'content-range', 'etag', 'last-modified']
/** What makes a storage read partial or conditional; none of it is a credential. */
const CONDITIONAL_HEADERS = ['range', 'if-range', 'if-none-match', 'if-modified-since']
const FILE_STATUSES = new Set([200, 206, 304, 416])
const REDIRECTS = new Set([301, 302, 303, 307, 308])
/** Largest file a preview is made of; it is decoded in memory. */
const MAX_PREVIEW_SOURCE = 64 * 1024 * 1024
/** Encoding is CPU work on the event loop's process: one preview per core at a time, the rest wait. */
const encoding = new Limiter(Math.max(availableParallelism(), 1))

function sendFile (request: FastifyRequest, reply: FastifyReply, view: ViewRequest, response: Dispatcher.ResponseData, fromStorage: boolean): FastifyReply {
  for (const name of PASSED_HEADERS) {
    const value = response.headers[name]
    if (value !== undefined) reply.header(name, value)
  }
  const type = response.headers['content-type']
  reply.header('content-type', safeContentType(typeof type === 'string' ? type : undefined))
  reply.header('content-disposition', contentDisposition(view.filename))
  // Local's FileResponse serves ranges; its channel answers are plain bytes (observed finding 19).
  if (fromStorage) reply.header('accept-ranges', 'bytes')
  reply.code(response.statusCode)
  if (response.statusCode === 304 && request.method !== 'HEAD') {
    response.body.resume()
    return reply.send()
  }
  return reply.send(response.body)
}

async function readLimited (body: Dispatcher.ResponseData['body'], limit: number): Promise<Buffer> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of body) {
    size += (chunk as Buffer).length
    if (size > limit) {
      body.destroy()
      throw new ProxyError(413, 'file_too_large', `A preview is made only of files up to ${limit} bytes`)
    }
    chunks.push(chunk as Buffer)
  }
  return Buffer.concat(chunks)
}

async function sendPreview (reply: FastifyReply, view: ViewRequest, preview: Preview, response: Dispatcher.ResponseData): Promise<FastifyReply> {
  const bytes = await readLimited(response.body, MAX_PREVIEW_SOURCE)
  let encoded: Buffer
  try {
    encoded = await encoding.run(async () => await encodePreview(bytes, preview))
  } catch (error) {
    if (error instanceof ProxyError) throw error
    // Local crashes here (500); the file is simply not an image it can preview.
    throw new ProxyError(400, 'invalid_image', 'The file is not an image that can be previewed')
  }
  return await reply.code(200).type(`image/${preview.format}`).header('content-disposition', contentDisposition(view.filename)).send(encoded)
}

const viewRoutes: FastifyPluginAsync = async (fastify) => {
  const { cloud } = fastify
  // Storage is another host: its own pool, TLS verified, never the cloud key.
  const storage = new Agent({ connect: { rejectUnauthorized: true }, headersTimeout: fastify.config.cloudTimeoutMs, bodyTimeout: fastify.config.cloudTimeoutMs })
  fastify.addHook('onClose', async () => { await storage.close() })

  const view = async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    const search = request.url.includes('?') ? request.url.slice(request.url.indexOf('?')) : ''
    const parsed = parseViewQuery(new URLSearchParams(withoutToken(search)))
    if ('status' in parsed) throw new ProxyError(parsed.status, parsed.status === 404 ? 'not_found' : 'invalid_query', parsed.message)
    const response = await cloud.stream(`/api/view?${parsed.cloudQuery.toString()}`, '/api/view')
    if (response.statusCode === 200) return parsed.preview === undefined ? sendFile(request, reply, parsed, response, false) : await sendPreview(reply, parsed, parsed.preview, response)
    const location = response.headers.location
    if (REDIRECTS.has(response.statusCode) && typeof location === 'string') {
      await response.body.dump()
      if (fastify.config.viewMode === 'redirect' && parsed.preview === undefined) return await reply.redirect(location, 302)
      let target: URL
      try {
        target = new URL(location, cloud.origin)
      } catch {
        throw new ProxyError(502, 'cloud_bad_response', 'Comfy Cloud redirected to an invalid URL', 'GET /api/view')
      }
      if (target.protocol !== 'https:' && target.protocol !== 'http:') {
        throw new ProxyError(502, 'cloud_bad_response', 'Comfy Cloud redirected to a non-HTTP URL', 'GET /api/view')
      }
      // Only the range and validators: following the redirect with credentials would hand the key to the storage host (notes §2.11).
      const headers: Record<string, string> = {}
      if (parsed.preview === undefined) {
        for (const name of CONDITIONAL_HEADERS) {
          const value = request.headers[name]
          if (typeof value === 'string') headers[name] = value
        }
      }
      let file: Dispatcher.ResponseData
      try {
        file = await undiciRequest(target, { method: request.method === 'HEAD' && parsed.preview === undefined ? 'HEAD' : 'GET', headers, dispatcher: storage })
      } catch {
        throw new ProxyError(502, 'storage_unreachable', 'The file storage cannot be reached', 'GET (signed storage URL)')
      }
      if (file.statusCode === 200 && parsed.preview !== undefined) return await sendPreview(reply, parsed, parsed.preview, file)
      if (FILE_STATUSES.has(file.statusCode)) return sendFile(request, reply, parsed, file, true)
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
