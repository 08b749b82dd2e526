/**
 * Finding the proxy's secrets (the cloud key, PROXY_AUTH_TOKEN) wherever they might surface: raw,
 * JSON-escaped, or percent-encoded in any mix (`%73ecret` is the same secret; issue 14 rule 7).
 * Log lines get `[REDACTED]`; answers relayed to clients get a mask of the same length, so that a
 * streamed body keeps its Content-Length and byte ranges (issue 14 rule 8).
 */
import { Transform, type TransformCallback } from 'node:stream'

export const REDACTED = '[REDACTED]'

function escapeRegExp (text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

/** `%4A` or `%4a`: a percent-encoded byte, hex in either case. */
function percentForm (byte: number): string {
  return '%' + byte.toString(16).padStart(2, '0').toUpperCase().split('').map(digit => /[A-F]/.test(digit) ? `[${digit}${digit.toLowerCase()}]` : digit).join('')
}

/**
 * One secret as a pattern. In `bytes` mode the pattern runs over a latin1 view of UTF-8 bytes (each
 * character is one byte), so that matches can be masked in a Buffer without changing its length.
 */
function secretPattern (secret: string, bytes: boolean): string {
  const perCharacter = Array.from(secret).map(character => {
    const utf8 = [...Buffer.from(character, 'utf8')]
    const raw = bytes ? utf8.map(byte => String.fromCharCode(byte)).join('') : character
    return `(?:${escapeRegExp(raw)}|${utf8.map(percentForm).join('')})`
  }).join('')
  const json = JSON.stringify(secret).slice(1, -1)
  if (json === secret) return perCharacter
  const jsonForm = bytes ? Buffer.from(json, 'utf8').toString('latin1') : json
  return `${perCharacter}|${escapeRegExp(jsonForm)}`
}

export class SecretScrubber {
  private readonly textPattern: RegExp | undefined
  private readonly bytePattern: RegExp | undefined
  /** the longest match, in bytes: a stream holds back one byte less than this between chunks */
  readonly maxMatchBytes: number

  constructor (secrets: string[]) {
    const present = [...new Set(secrets.filter(secret => secret.length > 0))].sort((a, b) => b.length - a.length)
    this.maxMatchBytes = Math.max(0, ...present.map(secret => Math.max(3 * Buffer.byteLength(secret), Buffer.byteLength(JSON.stringify(secret)))))
    if (present.length === 0) return
    this.textPattern = new RegExp(present.map(secret => secretPattern(secret, false)).join('|'), 'g')
    this.bytePattern = new RegExp(present.map(secret => secretPattern(secret, true)).join('|'), 'g')
  }

  get active (): boolean {
    return this.textPattern !== undefined
  }

  /** The text with every form of a secret replaced (by `[REDACTED]`, or by `*` of the same length). */
  text (value: string, replacement: 'redacted' | 'mask' = 'redacted'): string {
    if (this.textPattern === undefined) return value
    return value.replace(this.textPattern, match => replacement === 'mask' ? '*'.repeat(match.length) : REDACTED)
  }

  /** The bytes with every form of a secret masked in place (same length). */
  bytes (chunk: Buffer): Buffer {
    if (this.bytePattern === undefined) return chunk
    const view = chunk.toString('latin1')
    this.bytePattern.lastIndex = 0
    if (!this.bytePattern.test(view)) return chunk
    return Buffer.from(view.replace(this.bytePattern, match => '*'.repeat(match.length)), 'latin1')
  }

  /** A byte stream with every secret masked, also across chunk boundaries; same total length. */
  stream (): Transform {
    const hold = Math.max(0, this.maxMatchBytes - 1)
    let carry: Buffer = Buffer.alloc(0)
    const scrub = (chunk: Buffer): Buffer => this.bytes(chunk)
    return new Transform({
      transform (chunk: Buffer | string, _encoding: BufferEncoding, callback: TransformCallback) {
        const joined = scrub(Buffer.concat([carry, Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk)]))
        const cut = Math.max(0, joined.length - hold)
        carry = joined.subarray(cut)
        callback(null, cut > 0 ? joined.subarray(0, cut) : undefined)
      },
      flush (callback: TransformCallback) {
        callback(null, carry.length > 0 ? carry : undefined)
      }
    })
  }
}
