/** Error answers. Most cloud routes answer ErrorResponse `{code, message}` (cloud-api-notes §1.4). */

export interface ErrorResponse { code: string, message: string }

export class HttpError extends Error {
  constructor (readonly statusCode: number, readonly code: string, message: string, readonly headers: Record<string, string> = {}) {
    super(message)
  }

  get body (): ErrorResponse {
    return { code: this.code, message: this.message }
  }
}

export const badRequest = (message: string): HttpError => new HttpError(400, 'BAD_REQUEST', message)
export const notFound = (message: string): HttpError => new HttpError(404, 'NOT_FOUND', message)

/** The code sent with an error status that has no more specific one (faults, framework errors). */
export function codeFor (status: number): string {
  const codes: Record<number, string> = {
    400: 'BAD_REQUEST',
    401: 'UNAUTHORIZED',
    403: 'FORBIDDEN',
    404: 'NOT_FOUND',
    413: 'PAYLOAD_TOO_LARGE',
    415: 'UNSUPPORTED_MEDIA_TYPE',
    429: 'TOO_MANY_REQUESTS',
    502: 'BAD_GATEWAY',
    503: 'SERVICE_UNAVAILABLE',
    504: 'GATEWAY_TIMEOUT'
  }
  return codes[status] ?? (status >= 500 ? 'INTERNAL_ERROR' : 'ERROR')
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

/** A canonical lowercase hyphenated UUID (what ComfyUI accepts as a client-chosen prompt_id). */
export function isCanonicalUuid (value: unknown): value is string {
  return typeof value === 'string' && UUID.test(value)
}

/** Path ids: any UUID spelling is accepted and looked up in lowercase; anything else is a 400. */
export function jobIdParam (value: string): string {
  const id = value.toLowerCase()
  if (!isCanonicalUuid(id)) throw badRequest(`Invalid job id '${value}': must be a UUID`)
  return id
}
