/**
 * pino options for the proxy: JSON lines with the request id, client credentials redacted, and
 * every secret (the cloud key, the inbound token) scrubbed from each line before it is written,
 * whatever logged it and at whatever level.
 */
import type { LoggerOptions } from 'pino'
import type { FastifyRequest } from 'fastify'
import { isTokenName } from './auth.js'
import { REDACTED, SecretScrubber } from './secrets.js'

export { REDACTED }

/** Replaces every form of each secret in a log line (see secrets.ts). */
export function scrubber (secrets: string[]): (line: string) => string {
  const secretScrubber = new SecretScrubber(secrets)
  return line => secretScrubber.text(line)
}

/** The request URL as logged: values of query parameters named token (however the name is encoded) are hidden. */
export function safeUrl (url: string): string {
  return url.replace(/([?&])([^&=#]*)=([^&#]*)/g, (pair, separator: string, name: string) => isTokenName(name) ? `${separator}${name}=${REDACTED}` : pair)
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
