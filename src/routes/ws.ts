/**
 * /ws (and /api/ws): each client socket gets its own upstream socket to the cloud's /ws, with the
 * key added server-side as ?token= (notes §1.3). Frames are relayed unchanged and in order, except:
 * the first status frame's sid becomes the client's clientId (notes §2.12), and execution events of
 * prompts this proxy knows another client_id submitted are dropped, because local ComfyUI sends a
 * prompt's events only to its submitter while the cloud sends them to every socket (contract §9).
 */
import { randomUUID } from 'node:crypto'
import type { FastifyPluginAsync, FastifyRequest } from 'fastify'
import WebSocket, { type RawData } from 'ws'
import { errorBody } from '../errors.js'
import { accountRefusal } from '../cloud/refusals.js'
import { renamePromptInBinary, renamePromptInText } from '../compat/ws-frames.js'

/** RFC 6455 registry: 1014 "Bad Gateway", the upstream server failed. */
const BAD_GATEWAY = 1014
const TRY_AGAIN_LATER = 1013
const POLICY_VIOLATION = 1008

const MESSAGE_TOO_BIG = 1009
/** What a client may send before the cloud socket is open; held in memory until then. */
const EARLY_LIMIT = 1024 * 1024
/** Cloud frames held back while a submit is in flight; past this they are delivered unfiltered rather than kept. */
const HOLD_LIMIT = 4 * 1024 * 1024

function rawLength (data: RawData): number {
  return Array.isArray(data) ? data.reduce((sum, part) => sum + part.length, 0) : data.byteLength
}

function validHandshake (headers: FastifyRequest['headers']): boolean {
  const key = headers['sec-websocket-key']
  const version = headers['sec-websocket-version']
  return typeof key === 'string' && /^[+/0-9A-Za-z]{22}==$/.test(key) && (version === '13' || version === '8')
}

function clientCloseCode (code: number): number {
  return code >= 1000 && code <= 1014 && ![1004, 1005, 1006].includes(code) ? code : BAD_GATEWAY
}

function asBuffer (data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data
  return Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data)
}

function safeParse (data: RawData): unknown {
  try { return JSON.parse(data.toString()) } catch { return undefined }
}

function promptIdOf (frame: unknown): string | undefined {
  const data = (frame as { data?: { prompt_id?: unknown } } | undefined)?.data
  return typeof data?.prompt_id === 'string' ? data.prompt_id : undefined
}

const wsRoutes: FastifyPluginAsync = async (fastify) => {
  const { cloud, submissions, promptIds, secrets } = fastify
  const upstreamBase = new URL('/ws', cloud.origin)
  upstreamBase.protocol = upstreamBase.protocol === 'https:' ? 'wss:' : 'ws:'

  fastify.route({
    method: 'GET',
    url: '/ws',
    // A plain GET: the local envelope rather than an empty 404.
    handler: async (_request, reply) => await reply.code(400).send(errorBody('bad_request', 'This route needs a WebSocket upgrade')),
    // A handshake the ws library would refuse with a text/html 400: refused here, in the envelope.
    preHandler: async (request, reply) => {
      if (request.headers.upgrade === undefined || validHandshake(request.headers)) return
      reply.header('connection', 'close')
      reply.raw.once('finish', () => { request.raw.socket?.destroy() })
      return await reply.code(400).send(errorBody('bad_request', 'Invalid WebSocket handshake'))
    },
    wsHandler: relay
  })

  function relay (socket: WebSocket, request: FastifyRequest): void {
    const query = request.query as Record<string, unknown>
    const clientId = typeof query.clientId === 'string' && query.clientId !== '' ? query.clientId : randomUUID().replace(/-/g, '')
    const url = new URL(upstreamBase)
    url.searchParams.set('clientId', clientId)
    url.searchParams.set('token', fastify.cloud.apiKey)
    const upstream = new WebSocket(url, { perMessageDeflate: false, rejectUnauthorized: true, handshakeTimeout: fastify.config.cloudTimeoutMs })
    const log = request.log.child({ ws: clientId })
    const early: Array<[RawData, boolean]> = []
    let sidRewritten = false

    let earlyBytes = 0
    socket.on('message', (data: RawData, isBinary: boolean) => {
      if (upstream.readyState === WebSocket.OPEN) {
        upstream.send(data, { binary: isBinary })
      } else if (upstream.readyState === WebSocket.CONNECTING) {
        earlyBytes += rawLength(data)
        if (earlyBytes > EARLY_LIMIT) {
          socket.close(MESSAGE_TOO_BIG, 'Too much data before the Comfy Cloud connection opened')
          upstream.terminate()
          return
        }
        early.push([data, isBinary])
      }
    })
    upstream.on('open', () => {
      for (const [data, isBinary] of early.splice(0)) upstream.send(data, { binary: isBinary })
    })
    /** Frames held, in order, while a submit is in flight and a frame names a prompt not yet known. */
    const held: Array<[RawData, boolean]> = []
    let heldBytes = 0
    const deliver = (data: RawData, isBinary: boolean): void => {
      if (socket.readyState !== WebSocket.OPEN) return
      if (isBinary) {
        socket.send(secrets.bytes(renamePromptInBinary(asBuffer(data), id => promptIds.toClient(id))), { binary: true })
        return
      }
      // The key is masked wherever a misbehaving cloud might echo it (issue 14 rule 8).
      const text = secrets.text(data.toString(), 'mask')
      let frame: { type?: string, data?: Record<string, unknown> } | undefined
      try { frame = JSON.parse(text) } catch { frame = undefined }
      if (!sidRewritten && frame?.type === 'status' && typeof frame.data?.sid === 'string') {
        sidRewritten = true
        frame.data.sid = clientId
        socket.send(secrets.text(JSON.stringify(frame), 'mask'))
        return
      }
      const promptId = promptIdOf(frame)
      if (promptId !== undefined && submissions.ownedByAnother(promptId, clientId)) return
      const clientPromptId = promptId === undefined ? undefined : promptIds.toClient(promptId)
      socket.send(promptId === undefined || clientPromptId === undefined || clientPromptId === promptId ? text : renamePromptInText(text, promptId, clientPromptId))
    }
    const release = (): void => {
      heldBytes = 0
      for (const [data, isBinary] of held.splice(0)) deliver(data, isBinary)
    }
    const namesUnknownPrompt = (data: RawData, isBinary: boolean): boolean => {
      const promptId = isBinary ? undefined : promptIdOf(safeParse(data))
      return promptId !== undefined && !submissions.has(promptId)
    }
    upstream.on('message', (data: RawData, isBinary: boolean) => {
      // The tracker learns of a start or finish before any client sees the event (issue "polling costs nothing", rule 2).
      if (!isBinary) fastify.jobs.observe(safeParse(data))
      if (held.length === 0 && !(submissions.busy && namesUnknownPrompt(data, isBinary))) return deliver(data, isBinary)
      // Held until the submits in flight now have answered (each within CLOUD_TIMEOUT_MS), and never more than HOLD_LIMIT.
      if (held.length === 0) submissions.whenSettled(release)
      held.push([data, isBinary])
      heldBytes += rawLength(data)
      if (heldBytes > HOLD_LIMIT) release()
    })
    upstream.on('unexpected-response', (_req, res) => {
      log.warn({ status: res.statusCode }, 'Comfy Cloud refused the WebSocket')
      const chunks: Buffer[] = []
      let size = 0
      res.on('data', (chunk: Buffer) => { if ((size += chunk.length) <= 16_384) chunks.push(chunk) })
      res.once('end', () => {
        const refusal = accountRefusal(res.statusCode ?? 0, safeParse(Buffer.concat(chunks)))
        // A close reason holds at most 123 bytes: the code, and where the fix is told in full.
        const reason = refusal !== undefined
          ? `Comfy Cloud refused the account: ${refusal.code.slice(0, 40)} (see comfy-compat-proxy doctor)`
          : res.statusCode === 401 || res.statusCode === 403
            ? 'Comfy Cloud rejected the proxy\'s API key'
            : `Comfy Cloud refused the WebSocket (${res.statusCode ?? 'no status'})`
        socket.close(res.statusCode === 401 || res.statusCode === 403 ? POLICY_VIOLATION : TRY_AGAIN_LATER, reason)
        upstream.terminate()
      })
      res.once('error', () => { upstream.terminate() })
    })
    upstream.on('error', (err) => {
      log.warn({ code: (err as NodeJS.ErrnoException).code ?? err.name }, 'Comfy Cloud WebSocket failed')
      if (socket.readyState === WebSocket.OPEN) socket.close(BAD_GATEWAY, 'Comfy Cloud connection failed')
    })
    upstream.on('close', (code, reason) => {
      if (socket.readyState === WebSocket.OPEN) socket.close(clientCloseCode(code), reason.length > 0 ? secrets.text(reason.toString(), 'mask').slice(0, 120) : 'Comfy Cloud closed the connection')
    })
    socket.on('close', () => {
      if (upstream.readyState === WebSocket.OPEN) upstream.close(1000)
      else upstream.terminate()
    })
    socket.on('error', () => { upstream.terminate() })
  }
}

export default wsRoutes
