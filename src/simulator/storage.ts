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

export interface StoredFile {
  bytes: Buffer
  contentType: string
  owners: Set<string>
  /** how many jobs name the file; at 0 a job output is deleted */
  refs: number
  /** accounts that uploaded it (uploads are kept and are what LoadImage reads) */
  uploaders: Set<string>
}

const CONTENT_TYPES: Record<string, string> = { png: 'image/png', jpg: 'image/jpeg', webp: 'image/webp', gif: 'image/gif' }

/** One bucket for every account; an account sees only the files it produced or uploaded. */
export class FileStore {
  private readonly files = new Map<string, StoredFile>()

  /**
   * Stores bytes under `<sha256>.<ext>` (the cloud names outputs by content hash, cloud-api-notes §1.9) and counts
   * one reference to them.
   */
  put (owner: string, bytes: Buffer, ext: string): string {
    const name = `${createHash('sha256').update(bytes).digest('hex')}.${ext}`
    const existing = this.files.get(name)
    if (existing !== undefined) {
      existing.owners.add(owner)
      existing.refs++
    } else {
      this.files.set(name, { bytes, contentType: CONTENT_TYPES[ext] ?? 'application/octet-stream', owners: new Set([owner]), refs: 1, uploaders: new Set() })
    }
    return name
  }

  /** Stores an upload: kept for good, and readable by LoadImage. */
  putUpload (owner: string, bytes: Buffer, ext: string): string {
    const name = this.put(owner, bytes, ext)
    this.files.get(name)!.uploaders.add(owner)
    return name
  }

  /** The bytes of a file this account uploaded. */
  upload (owner: string, name: string): Buffer | undefined {
    const file = this.files.get(name)
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

  visibleTo (owner: string, name: string): StoredFile | undefined {
    const file = this.files.get(name)
    return file?.owners.has(owner) === true ? file : undefined
  }

  clear (): void {
    this.files.clear()
  }
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
    // `subfolder` and `type` are accepted and ignored: outputs, temp files and uploads share one
    // content-addressed bucket (spec /api/view parameter notes; cloud-api-notes §1.9).
    const file = files.visibleTo(accountOf(request), filename)
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
    const name = files.putUpload(accountOf(request), image, ext)
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
    return reply.type(file.contentType).header('content-length', file.bytes.length).send(file.bytes)
  })
}
