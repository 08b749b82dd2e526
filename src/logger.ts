/**
 * pino options for the proxy: JSON lines with the request id, client credentials redacted, and
 * every secret (the cloud key, the inbound token) scrubbed from each line before it is written,
 * whatever logged it and at whatever level.
 */
import type { LoggerOptions } from 'pino'
import type { FastifyRequest } from 'fastify'

export const REDACTED = '[REDACTED]'

export function scrubber (secrets: string[]): (line: string) => string {
  const present = secrets.filter(secret => secret.length > 0)
  if (present.length === 0) return line => line
  // A secret may reach a line raw, JSON-escaped or URL-encoded.
  const forms = new Set(present.flatMap(secret => [secret, JSON.stringify(secret).slice(1, -1), encodeURIComponent(secret)]))
  const pattern = new RegExp([...forms].sort((a, b) => b.length - a.length).map(escapeRegExp).join('|'), 'g')
  return line => line.replace(pattern, REDACTED)
}

function escapeRegExp (text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

/** The request URL as logged: query values named token are hidden. */
export function safeUrl (url: string): string {
  return url.replace(/([?&]token=)[^&]*/gi, `$1${REDACTED}`)
}

export function loggerOptions (level: string, secrets: string[]): LoggerOptions {
  const scrub = scrubber(secrets)
  return {
    level,
    redact: {
      paths: ['req.headers.authorization', 'req.headers["x-api-key"]', 'req.headers.cookie', 'headers.authorization', 'headers["x-api-key"]', 'headers.cookie'],
      censor: REDACTED
    },
    serializers: {
      req (request: FastifyRequest) {
        return { method: request.method, url: safeUrl(request.url), remoteAddress: request.ip }
      }
    },
    hooks: { streamWrite: scrub }
  }
}
