/**
 * `/ws?clientId=&token=`: the account's event stream. The cloud ignores `clientId` and sends every event
 * to every socket of the account (cloud-api-notes §1.3, §2.12), so the hub is keyed by account only.
 */
import { randomUUID } from 'node:crypto'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import { MAX_UPLOAD_SIZE } from './storage.js'

/** What `GET /api/features` answers and what a client's `feature_flags` message gets back. */
export const FEATURE_FLAGS = { supports_preview_metadata: true, max_upload_size: MAX_UPLOAD_SIZE }

export interface WsMessage { type: string, data: Record<string, unknown> }

export class SocketHub {
  private readonly sockets = new Map<string, Set<WebSocket>>()

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

  /** A binary frame: 4-byte big-endian event type, then the payload (cloud-api-notes §2.12). */
  sendBinary (account: string, eventType: number, payload: Buffer): void {
    const head = Buffer.alloc(4)
    head.writeUInt32BE(eventType, 0)
    this.broadcast(account, Buffer.concat([head, payload]))
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
    socket.on('message', (raw, isBinary) => {
      if (isBinary) return
      let message: unknown
      try {
        message = JSON.parse(raw.toString())
      } catch {
        return
      }
      if ((message as { type?: unknown })?.type === 'feature_flags') {
        socket.send(JSON.stringify({ type: 'feature_flags', data: FEATURE_FLAGS }))
      }
    })
  })
}
