/**
 * /ws (and /api/ws): each client socket gets its own upstream socket to the cloud's /ws, with the
 * key added server-side as ?token= (notes §1.3). Frames are relayed unchanged and in order, except:
 * the first status frame's sid becomes the client's clientId (notes §2.12), and execution events of
 * prompts this proxy knows another client_id submitted are dropped, because local ComfyUI sends a
 * prompt's events only to its submitter while the cloud sends them to every socket (contract §9).
 * Bounded both ways (issue 14 rule 4): a side whose peer does not read is paused past BUFFER_HIGH and
 * the client is closed past BUFFER_CLOSE; client frames are capped at local's 4 MiB (app.ts); sockets
 * are capped per client address and in total.
 */
import { randomUUID } from 'node:crypto'
import type { FastifyPluginAsync, FastifyRequest } from 'fastify'
import WebSocket, { type RawData } from 'ws'
import { errorBody, ProxyError } from '../errors.js'
import { accountRefusal } from '../cloud/refusals.js'
import { renamePromptInBinary, renamePromptInText } from '../compat/ws-frames.js'

/** RFC 6455 registry: 1014 "Bad Gateway", the upstream server failed. */
const BAD_GATEWAY = 1014
const TRY_AGAIN_LATER = 1013
const POLICY_VIOLATION = 1008

const MESSAGE_TOO_BIG = 1009
/** Bytes queued towards one side before the other side is paused; resumed below BUFFER_LOW. */
const BUFFER_HIGH = 4 * 1024 * 1024
const BUFFER_LOW = 1024 * 1024
/** Bytes queued towards one side at which the client is closed (frames already read when the other side was paused). */
const BUFFER_CLOSE = 16 * 1024 * 1024

/**
 * Sends to `target`; when the target does not read, pauses `source` (TCP backpressure then reaches its
 * peer) and resumes it once the target has drained. `overflow` is called when the target still has not
 * drained after stallMs, or when queued bytes pass BUFFER_CLOSE (frames read before the pause took effect).
 */
function backpressured (source: () => WebSocket, target: WebSocket, stallMs: number, overflow: () => void): (data: RawData | string, binary: boolean) => void {
  let stalled: NodeJS.Timeout | undefined
  const drained = (): void => {
    if (stalled !== undefined && target.bufferedAmount < BUFFER_LOW) {
      clearTimeout(stalled)
      stalled = undefined
      if (source().readyState === WebSocket.OPEN) source().resume()
    }
  }
  target.once('close', () => { clearTimeout(stalled) })
  return (data, binary) => {
    target.send(data, { binary }, drained)
    if (target.bufferedAmount > BUFFER_CLOSE) return overflow()
    if (stalled === undefined && target.bufferedAmount > BUFFER_HIGH && source().readyState === WebSocket.OPEN) {
      source().pause()
      stalled = setTimeout(overflow, stallMs)
      stalled.unref()
    }
  }
}

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

interface ParsedFrame { type?: string, data?: Record<string, unknown> }
/** A frame from the cloud, read once: binary as bytes; text with the key masked, and parsed when it is JSON. */
type CloudFrame = { bytes: Buffer, text?: undefined, frame?: undefined } | { bytes?: undefined, text: string, frame: ParsedFrame | undefined }

function promptIdOf (frame: unknown): string | undefined {
  const data = (frame as { data?: { prompt_id?: unknown } } | undefined)?.data
  return typeof data?.prompt_id === 'string' ? data.prompt_id : undefined
}

/** A handshake answered with an error instead of an upgrade. */
interface Refusal { status: number, message: string, type?: string, retryAfter?: string }

const wsRoutes: FastifyPluginAsync = async (fastify) => {
  const { cloud, submissions, promptIds, secrets } = fastify
  const cloudFrame = (data: RawData, isBinary: boolean): CloudFrame => {
    if (isBinary) return { bytes: asBuffer(data) }
    // The key is masked wherever a misbehaving cloud might echo it (issue 14 rule 8).
    const text = secrets.text(data.toString(), 'mask')
    let frame: ParsedFrame | undefined
    try { frame = JSON.parse(text) } catch { frame = undefined }
    return { text, frame }
  }
  const upstreamBase = new URL('/ws', cloud.origin)
  upstreamBase.protocol = upstreamBase.protocol === 'https:' ? 'wss:' : 'ws:'

  const { wsMaxConnections, wsMaxConnectionsPerAddress } = fastify.config
  let openSockets = 0
  const openByAddress = new Map<string, number>()
  /** Counts a socket from its handshake until its TCP connection closes; refuses past the caps. */
  const admit = (request: FastifyRequest): Refusal | undefined => {
    const address = request.ip
    const fromAddress = openByAddress.get(address) ?? 0
    if (openSockets >= wsMaxConnections) return { status: 503, message: `This proxy already holds ${wsMaxConnections} WebSockets (WS_MAX_CONNECTIONS)` }
    if (fromAddress >= wsMaxConnectionsPerAddress) return { status: 429, message: `Too many WebSockets from ${address} (WS_MAX_CONNECTIONS_PER_ADDRESS is ${wsMaxConnectionsPerAddress})` }
    openSockets++
    openByAddress.set(address, fromAddress + 1)
    request.raw.socket.once('close', () => {
      openSockets--
      const left = (openByAddress.get(address) ?? 1) - 1
      if (left === 0) openByAddress.delete(address)
      else openByAddress.set(address, left)
    })
    return undefined
  }

  /**
   * Each socket opens one to the cloud, which is a cloud request like any other: it waits for the
   * cloud budget as a read (a reconnect loop cannot spend the account's rate limit) and is refused
   * with the budget's 503 when it would wait past CLOUD_TIMEOUT_MS.
   */
  const budgeted = async (): Promise<Refusal | undefined> => {
    try {
      await cloud.budget.acquire('read', fastify.config.cloudTimeoutMs)
      return undefined
    } catch (error) {
      if (!(error instanceof ProxyError)) throw error
      return { status: error.statusCode, message: error.message, type: error.type, retryAfter: error.headers['retry-after'] }
    }
  }

  for (const url of ['/ws', '/api/ws']) fastify.route({
    method: 'GET',
    url,
    // A plain GET: the local envelope rather than an empty 404.
    handler: async (_request, reply) => await reply.code(400).send(errorBody('bad_request', 'This route needs a WebSocket upgrade')),
    // A handshake the ws library would refuse with a text/html 400: refused here, in the envelope.
    preHandler: async (request, reply) => {
      if (request.headers.upgrade === undefined) return
      const refusal = validHandshake(request.headers) ? admit(request) ?? await budgeted() : { status: 400, message: 'Invalid WebSocket handshake' }
      if (refusal === undefined) return
      reply.header('connection', 'close')
      reply.raw.once('finish', () => { request.raw.socket?.destroy() })
      if (refusal.status !== 400) reply.header('retry-after', refusal.retryAfter ?? '5')
      return await reply.code(refusal.status).send(errorBody(refusal.type ?? (refusal.status === 400 ? 'bad_request' : 'too_many_websockets'), refusal.message))
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

    // A side that stays stalled for CLOUD_TIMEOUT_MS is closed: paused sockets would otherwise live on unnoticed.
    const stallMs = fastify.config.cloudTimeoutMs
    const toCloud = backpressured(() => socket, upstream, stallMs, () => {
      log.warn('Comfy Cloud does not read this client\'s frames: closing')
      socket.resume()
      socket.close(TRY_AGAIN_LATER, 'Comfy Cloud is not reading')
      upstream.terminate()
    })
    const toClient = backpressured(() => upstream, socket, stallMs, () => {
      log.warn('client does not read its frames: closing')
      socket.close(POLICY_VIOLATION, 'Client is not reading')
      upstream.terminate()
      // The close frame queues behind what the client does not read: do not wait for it.
      setTimeout(() => { socket.terminate() }, 1000).unref()
    })
    let earlyBytes = 0
    socket.on('message', (data: RawData, isBinary: boolean) => {
      if (upstream.readyState === WebSocket.OPEN) {
        toCloud(data, isBinary)
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
      for (const [data, isBinary] of early.splice(0)) toCloud(data, isBinary)
    })
    /** Frames held, in order, while a submit is in flight and a frame names a prompt not yet known. */
    const held: CloudFrame[] = []
    let heldBytes = 0
    const deliver = (incoming: CloudFrame): void => {
      if (socket.readyState !== WebSocket.OPEN) return
      if (incoming.bytes !== undefined) {
        toClient(secrets.bytes(renamePromptInBinary(incoming.bytes, id => promptIds.toClient(id))), true)
        return
      }
      const { text, frame } = incoming
      if (!sidRewritten && frame?.type === 'status' && typeof frame.data?.sid === 'string') {
        sidRewritten = true
        frame.data.sid = clientId
        toClient(secrets.text(JSON.stringify(frame), 'mask'), false)
        return
      }
      const promptId = promptIdOf(frame)
      if (promptId !== undefined && submissions.ownedByAnother(promptId, clientId)) return
      const clientPromptId = promptId === undefined ? undefined : promptIds.toClient(promptId)
      toClient(promptId === undefined || clientPromptId === undefined || clientPromptId === promptId ? text : renamePromptInText(text, promptId, clientPromptId), false)
    }
    const release = (): void => {
      heldBytes = 0
      for (const incoming of held.splice(0)) deliver(incoming)
    }
    upstream.on('message', (data: RawData, isBinary: boolean) => {
      const incoming = cloudFrame(data, isBinary)
      const { frame } = incoming
      // The tracker learns of a start or finish before any client sees the event (issue "polling costs nothing", rule 2).
      if (frame !== undefined) fastify.jobs.observe(frame)
      const promptId = promptIdOf(frame)
      const unknownPrompt = promptId !== undefined && !submissions.has(promptId)
      // Submitted through another replica or before a restart? The state store knows; frames wait for its answer.
      if (unknownPrompt) submissions.lookUp(promptId, async () => { await promptIds.load({ cloud: [promptId] }) })
      if (held.length === 0 && !(submissions.busy && unknownPrompt)) return deliver(incoming)
      // Held until the submits in flight now have answered (each within CLOUD_TIMEOUT_MS), and never more than HOLD_LIMIT.
      if (held.length === 0) submissions.whenSettled(release)
      held.push(incoming)
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
    // A paused side must read again to see its peer's close frame (else ws waits 30 s for it).
    upstream.on('close', (code, reason) => {
      socket.resume()
      if (socket.readyState === WebSocket.OPEN) socket.close(clientCloseCode(code), reason.length > 0 ? secrets.text(reason.toString(), 'mask').slice(0, 120) : 'Comfy Cloud closed the connection')
    })
    socket.on('close', () => {
      upstream.resume()
      if (upstream.readyState === WebSocket.OPEN) upstream.close(1000)
      else upstream.terminate()
    })
    socket.on('error', () => { upstream.terminate() })
  }
}

export default wsRoutes
