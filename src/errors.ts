import type { FastifyReply } from 'fastify'

/** The local error envelope (contract §5.4): {error: {type, message, details, extra_info}}. */
export interface LocalError {
  type: string
  message: string
  details: string
  extra_info: Record<string, unknown>
}

/** An error that becomes a JSON answer with its own status; never a stack trace. */
export class ProxyError extends Error {
  readonly headers: Record<string, string>
  constructor (
    readonly statusCode: number,
    readonly type: string,
    message: string,
    readonly details = '',
    readonly extraInfo: Record<string, unknown> = {},
    headers: Record<string, string> = {}
  ) {
    super(message)
    this.name = 'ProxyError'
    this.headers = headers
  }

  toLocal (): LocalError {
    return { type: this.type, message: this.message, details: this.details, extra_info: this.extraInfo }
  }
}

export function badRequest (type: string, message: string, extraInfo: Record<string, unknown> = {}): ProxyError {
  return new ProxyError(400, type, message, '', extraInfo)
}

/** `{error: {type, message, details: '', extra_info: {}}}`: the body of an error answer. */
export function errorBody (type: string, message: string): { error: LocalError } {
  return { error: { type, message, details: '', extra_info: {} } }
}

/** What local ComfyUI (aiohttp) answers for a route it does not have (observed finding 21). */
export const LOCAL_NOT_FOUND = { type: 'text/plain; charset=utf-8', body: '404: Not Found' }

export async function sendLocalNotFound (reply: FastifyReply): Promise<FastifyReply> {
  return await reply.code(404).type(LOCAL_NOT_FOUND.type).send(LOCAL_NOT_FOUND.body)
}

/** What local ComfyUI answers for a method its route does not have (observed finding 21). */
export async function sendMethodNotAllowed (reply: FastifyReply, allowed: string[]): Promise<FastifyReply> {
  return await reply.code(405).header('allow', allowed.join(',')).type('text/plain; charset=utf-8').send('405: Method Not Allowed')
}
