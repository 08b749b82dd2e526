/**
 * Content-addressed file storage, signed storage URLs, `GET /api/view`, `POST /api/upload/image` and the
 * `/storage/<filename>` route that stands in for the cloud's storage bucket.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { badRequest, HttpError, notFound } from './errors.js'
import { extractChannel, readPngHeader } from './png.js'

/** 50 MB, the published upload limit (spec `/api/upload/image`). */
export const MAX_UPLOAD_SIZE = 50 * 1024 * 1024
const MAX_EDGE = 16384
const MAX_PIXELS = 67108864

/**
 * Where a file can be viewed from: outputs and temp files share one bucket, uploads are inputs
 * (`type` is "partially used", cloud-api-notes §1.9); the same bytes can be both.
 */
export type FileKind = 'output' | 'input'

export interface StoredFile {
  bytes: Buffer
  contentType: string
  owners: Set<string>
  /** how many jobs name the file; at 0 a job output is deleted */
  refs: number
  /** accounts that uploaded it (uploads are kept and are what LoadImage reads) */
  uploaders: Set<string>
  kinds: Set<FileKind>
  /** for Last-Modified */
  storedAt: number
}

const CONTENT_TYPES: Record<string, string> = { png: 'image/png', jpg: 'image/jpeg', webp: 'image/webp', gif: 'image/gif', flac: 'audio/flac', mp4: 'video/mp4', webm: 'video/webm' }

/** The bucket a `type` (output, temp, input) names; undefined for an unknown one. */
export function kindOf (type: string): FileKind | undefined {
  return type === 'input' ? 'input' : type === 'output' || type === 'temp' ? 'output' : undefined
}

/** One bucket for every account; an account sees only the files it produced or uploaded. */
export class FileStore {
  private readonly files = new Map<string, StoredFile>()

  /**
   * Stores bytes under `<sha256>.<ext>` (the cloud names outputs by content hash, cloud-api-notes §1.9) and counts
   * one reference to them.
   */
  put (owner: string, bytes: Buffer, ext: string, kind: FileKind = 'output'): string {
    const name = `${createHash('sha256').update(bytes).digest('hex')}.${ext}`
    const existing = this.files.get(name)
    if (existing !== undefined) {
      existing.owners.add(owner)
      existing.refs++
      existing.kinds.add(kind)
    } else {
      this.files.set(name, { bytes, contentType: CONTENT_TYPES[ext] ?? 'application/octet-stream', owners: new Set([owner]), refs: 1, uploaders: new Set(), kinds: new Set([kind]), storedAt: Date.now() })
    }
    return name
  }

  /** Stores an upload: kept for good, and readable by LoadImage; viewable as the type it declared, else as both. */
  putUpload (owner: string, bytes: Buffer, ext: string, kind?: FileKind): string {
    const name = this.put(owner, bytes, ext, kind ?? 'input')
    const file = this.files.get(name)!
    file.uploaders.add(owner)
    if (kind === undefined) file.kinds.add('output')
    return name
  }

  /**
   * The bytes of a file this account uploaded. Like local's annotated file paths, `name.png [input]` and a
   * subfolder prefix are accepted (uploads share one content-addressed folder here).
   */
  upload (owner: string, name: string): Buffer | undefined {
    const file = this.files.get(name.replace(/ \[(input|output|temp)\]$/, '').replace(/^.*\//, ''))
    return file?.uploaders.has(owner) === true ? file.bytes : undefined
  }

  /** The names of the account's uploads. */
  uploads (owner: string): string[] {
    return [...this.files].filter(([, file]) => file.uploaders.has(owner)).map(([name]) => name)
  }

  retain (name: string): void {
    const file = this.files.get(name)
    if (file !== undefined) file.refs++
  }

  /** Drops one reference; a file no job names any more is deleted unless it was uploaded. */
  release (name: string): void {
    const file = this.files.get(name)
    if (file === undefined) return
    if (--file.refs <= 0 && file.uploaders.size === 0) this.files.delete(name)
  }

  /** how many files are stored (for tests of the memory bound) */
  get size (): number {
    return this.files.size
  }

  get (name: string): StoredFile | undefined {
    return this.files.get(name)
  }

  visibleTo (owner: string, name: string, kind?: FileKind): StoredFile | undefined {
    const file = this.files.get(name)
    return file?.owners.has(owner) === true && (kind === undefined || file.kinds.has(kind)) ? file : undefined
  }

  clear (): void {
    this.files.clear()
  }
}

/** One `bytes=a-b`, `bytes=a-` or `bytes=-n` range of a file of `size` bytes; undefined when the header is to be ignored (RFC 9110 §14.2). */
export function byteRange (header: string, size: number): { start: number, end: number } | 'unsatisfiable' | undefined {
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim())
  if (match === null || (match[1] === '' && match[2] === '')) return undefined
  if (match[1] === '') {
    const suffix = Number(match[2])
    return suffix === 0 || size === 0 ? 'unsatisfiable' : { start: Math.max(size - suffix, 0), end: size - 1 }
  }
  const start = Number(match[1])
  const end = match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1)
  if (match[2] !== '' && Number(match[2]) < start) return undefined
  return start >= size ? 'unsatisfiable' : { start, end }
}

/** HMAC-signed, expiring storage URLs, like the GCS V4 signed URLs the cloud redirects to (cloud-api-notes §2.11). */
export class Signer {
  constructor (private readonly secret: string, private readonly ttlMs: number) {}

  private mac (filename: string, expires: string): string {
    return createHmac('sha256', this.secret).update(`${filename}\n${expires}`).digest('hex')
  }

  /** the path and query of a signed URL; expires is in epoch milliseconds */
  sign (filename: string, now = Date.now()): string {
    const expires = String(now + this.ttlMs)
    return `/storage/${encodeURIComponent(filename)}?expires=${expires}&signature=${this.mac(filename, expires)}`
  }

  check (filename: string, expires: unknown, signature: unknown): 'ok' | 'bad' | 'expired' {
    if (typeof expires !== 'string' || typeof signature !== 'string' || !/^\d+$/.test(expires)) return 'bad'
    const expected = Buffer.from(this.mac(filename, expires))
    const given = Buffer.from(signature)
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return 'bad'
    return Number(expires) < Date.now() ? 'expired' : 'ok'
  }
}

/** The image type from its first bytes; uploads must be images. */
function sniff (bytes: Buffer): 'png' | 'jpg' | 'gif' | 'webp' | undefined {
  if (readPngHeader(bytes) !== undefined) return 'png'
  if (bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpg'
  if (bytes.toString('latin1', 0, 4) === 'GIF8') return 'gif'
  if (bytes.toString('latin1', 0, 4) === 'RIFF' && bytes.toString('latin1', 8, 12) === 'WEBP') return 'webp'
  return undefined
}

export interface StorageDeps {
  files: FileStore
  signer: Signer
  accountOf: (request: FastifyRequest) => string
}

const CREDENTIAL_HEADERS = ['x-api-key', 'authorization', 'cookie']

export function registerStorageRoutes (app: FastifyInstance, { files, signer, accountOf }: StorageDeps): void {
  app.get('/api/view', async (request, reply) => {
    const query = request.query as Record<string, string | undefined>
    const filename = query.filename
    if (filename === undefined || filename === '') throw badRequest('filename is required')
    const channel = query.channel
    if (channel !== undefined && channel !== 'rgb' && channel !== 'a' && channel !== 'alpha') {
      throw badRequest(`Invalid channel '${channel}': must be rgb, a or alpha`)
    }
    // `subfolder` is ignored; `type` tells uploads from outputs, which share a bucket with temp files (cloud-api-notes §1.9).
    const kind = query.type === undefined ? undefined : kindOf(query.type)
    if (query.type !== undefined && kind === undefined) throw badRequest(`Invalid type '${query.type}': must be output, input or temp`)
    const file = files.visibleTo(accountOf(request), filename, kind)
    if (file === undefined) throw notFound('File not found or unauthorized')
    if (channel !== undefined) {
      if (file.contentType !== 'image/png') throw badRequest('channel extraction needs a PNG file')
      let bytes: Buffer
      try {
        bytes = extractChannel(file.bytes, channel)
      } catch (error) {
        throw badRequest(`cannot read the image: ${(error as Error).message}`)
      }
      return reply.type('image/png').send(bytes)
    }
    const location = `${request.protocol}://${request.host}${signer.sign(filename)}`
    return reply.code(302).header('location', location).header('cache-control', 'private, no-store').send()
  })

  app.post('/api/upload/image', async request => {
    if (!request.isMultipart()) throw badRequest('expected a multipart/form-data body with an image field')
    let image: Buffer | undefined
    const fields: Record<string, string> = {}
    try {
      for await (const part of request.parts()) {
        if (part.type === 'file') {
          const bytes = await part.toBuffer()
          if (part.fieldname === 'image') image = bytes
        } else if (typeof part.value === 'string') {
          fields[part.fieldname] = part.value
        }
      }
    } catch (error) {
      if ((error as { code?: string }).code === 'FST_REQ_FILE_TOO_LARGE') throw badRequest(`The image exceeds the maximum upload size of ${MAX_UPLOAD_SIZE} bytes`)
      throw error
    }
    if (image === undefined) throw badRequest('No image field in the upload')
    const ext = sniff(image)
    if (ext === undefined) throw badRequest('The upload is not a PNG, JPEG, GIF or WebP image')
    const header = readPngHeader(image)
    if (header !== undefined && (header.width > MAX_EDGE || header.height > MAX_EDGE || header.width * header.height > MAX_PIXELS)) {
      throw badRequest(`The image exceeds ${MAX_EDGE} px per edge or ${MAX_PIXELS} pixels`)
    }
    // `overwrite` is ignored and `subfolder` only echoed: identical content always gets the same name (spec).
    // An upload that names no type is answered as an output (spec) but is also what a local client views as an input.
    const name = files.putUpload(accountOf(request), image, ext, fields.type === undefined ? undefined : kindOf(fields.type))
    return { name, subfolder: fields.subfolder ?? '', type: fields.type ?? 'output' }
  })

  /**
   * The stand-in for the storage bucket. Like a signed GCS URL it needs no API key, and it refuses requests
   * that carry one: a client that follows the /api/view redirect with its credentials attached is leaking
   * them to the storage host (cloud-api-notes §2.11), and tests should see that fail loudly.
   */
  app.get('/storage/:filename', async (request, reply) => {
    const { filename } = request.params as { filename: string }
    const query = request.query as Record<string, unknown>
    const leaked = CREDENTIAL_HEADERS.filter(name => request.headers[name] !== undefined)
    if (query.token !== undefined) leaked.push('token query parameter')
    if (leaked.length > 0) {
      throw new HttpError(403, 'FORBIDDEN', `Storage URLs are pre-signed and must be fetched without credentials (received ${leaked.join(', ')})`)
    }
    const verdict = signer.check(filename, query.expires, query.signature)
    if (verdict === 'bad') throw new HttpError(403, 'FORBIDDEN', 'Invalid signature')
    if (verdict === 'expired') throw new HttpError(403, 'FORBIDDEN', 'The signed URL has expired')
    const file = files.get(filename)
    if (file === undefined) throw notFound('No such object')
    // Like a storage bucket: validators, conditional requests and one byte range (HEAD comes with the GET route).
    const etag = `"${filename.split('.')[0]}"`
    const modified = Math.floor(file.storedAt / 1000) * 1000
    reply.type(file.contentType).header('etag', etag).header('last-modified', new Date(modified).toUTCString()).header('accept-ranges', 'bytes')
    const ifNoneMatch = request.headers['if-none-match']
    const ifModifiedSince = Date.parse(request.headers['if-modified-since'] ?? '')
    if (ifNoneMatch !== undefined ? ifNoneMatch.split(',').some(tag => tag.trim() === etag || tag.trim() === '*') : modified <= ifModifiedSince) {
      return reply.code(304).send()
    }
    const ifRange = request.headers['if-range']
    const range = request.headers.range === undefined || (ifRange !== undefined && ifRange !== etag) ? undefined : byteRange(request.headers.range, file.bytes.length)
    if (range === 'unsatisfiable') return reply.code(416).header('content-range', `bytes */${file.bytes.length}`).send()
    if (range !== undefined) {
      return reply.code(206).header('content-range', `bytes ${range.start}-${range.end}/${file.bytes.length}`)
        .header('content-length', range.end - range.start + 1).send(file.bytes.subarray(range.start, range.end + 1))
    }
    return reply.header('content-length', file.bytes.length).send(file.bytes)
  })
}
