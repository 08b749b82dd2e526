/**
 * `/ws?clientId=&token=`: the account's event stream. The cloud ignores `clientId` and sends every event
 * to every socket of the account (cloud-api-notes §1.3, §2.12), so the hub is keyed by account only.
 */
import { randomUUID } from 'node:crypto'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import { MAX_UPLOAD_SIZE } from './storage.js'

/**
 * What `GET /api/features` answers and what a client's `feature_flags` message gets back: local's keys (observed
 * finding 32) with this service's upload limit; the simulator has no assets API.
 */
export const FEATURE_FLAGS = {
  supports_preview_metadata: true,
  max_upload_size: MAX_UPLOAD_SIZE,
  extension: { manager: { supports_v4: true } },
  node_replacements: true,
  assets: false
}

/** Where a preview image comes from: the type-4 frame's JSON header (observed finding 29). */
export interface PreviewMetadata { node_id: string, prompt_id: string, display_node_id: string, parent_node_id: string | null, real_node_id: string }

export interface WsMessage { type: string, data: Record<string, unknown> }

export class SocketHub {
  private readonly sockets = new Map<string, Set<WebSocket>>()
  /** sockets whose first message announced `supports_preview_metadata` */
  private readonly withMetadata = new WeakSet<WebSocket>()

  /** Records a client's `feature_flags`. */
  negotiate (socket: WebSocket, flags: unknown): void {
    if (typeof flags === 'object' && flags !== null && (flags as Record<string, unknown>).supports_preview_metadata === true) this.withMetadata.add(socket)
  }

  /**
   * A PNG preview: `[u32 1][u32 2 = PNG][bytes]`, or for sockets that negotiated metadata
   * `[u32 4][u32 length][JSON metadata][bytes]` (observed finding 29).
   */
  sendPreview (account: string, png: Buffer, metadata: PreviewMetadata): void {
    const plain = Buffer.alloc(8)
    plain.writeUInt32BE(1, 0)
    plain.writeUInt32BE(2, 4)
    const json = Buffer.from(JSON.stringify({ ...metadata, image_type: 'image/png' }))
    const rich = Buffer.alloc(8)
    rich.writeUInt32BE(4, 0)
    rich.writeUInt32BE(json.length, 4)
    const frames = { plain: Buffer.concat([plain, png]), rich: Buffer.concat([rich, json, png]) }
    for (const socket of this.sockets.get(account) ?? []) {
      if (socket.readyState === socket.OPEN) socket.send(this.withMetadata.has(socket) ? frames.rich : frames.plain)
    }
  }

  add (account: string, socket: WebSocket): void {
    let set = this.sockets.get(account)
    if (set === undefined) this.sockets.set(account, set = new Set())
    set.add(socket)
    socket.on('close', () => set.delete(socket))
  }

  count (account: string): number {
    return this.sockets.get(account)?.size ?? 0
  }

  send (account: string, message: WsMessage): void {
    this.broadcast(account, JSON.stringify(message))
  }

  private broadcast (account: string, frame: string | Buffer): void {
    for (const socket of this.sockets.get(account) ?? []) {
      if (socket.readyState === socket.OPEN) socket.send(frame)
    }
  }
}

export interface WsDeps {
  hub: SocketHub
  accountOf: (request: FastifyRequest) => string
  remaining: (account: string) => number
}

/** The route; authentication (`?token=`) happens in the app's onRequest hook, before the upgrade. */
export function registerWs (app: FastifyInstance, { hub, accountOf, remaining }: WsDeps): void {
  app.get('/ws', { websocket: true }, (socket, request) => {
    const account = accountOf(request)
    const { clientId } = request.query as { clientId?: string }
    const sid = clientId !== undefined && clientId !== '' ? clientId : randomUUID().replaceAll('-', '')
    socket.send(JSON.stringify({ type: 'status', data: { status: { exec_info: { queue_remaining: remaining(account) } }, sid } }))
    hub.add(account, socket)
    // Local answers only a client's first message; whether the cloud does is open (cloud-api-notes §5), and the
    // proxy relays every client's negotiation, so any feature_flags message is answered here.
    socket.on('message', (raw, isBinary) => {
      if (isBinary) return
      let message: unknown
      try {
        message = JSON.parse(raw.toString())
      } catch {
        return
      }
      if ((message as { type?: unknown })?.type === 'feature_flags') {
        hub.negotiate(socket, (message as { data?: unknown }).data)
        socket.send(JSON.stringify({ type: 'feature_flags', data: FEATURE_FLAGS }))
      }
    })
  })
}
