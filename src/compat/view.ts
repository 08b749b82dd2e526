/**
 * Local ComfyUI's GET /view query, read in the order and with the refusals of its handler
 * (observed findings 19, 20): what to ask the cloud for, and how to answer. No network I/O here.
 */
import { posix } from 'node:path'
import { ProxyError } from '../errors.js'

export const VIEW_TYPES = ['output', 'input', 'temp'] as const
export type ViewType = typeof VIEW_TYPES[number]

export interface Preview {
  format: 'webp' | 'jpeg'
  quality: number
  /** drop the alpha channel first (JPEG, or channel=rgb) */
  rgb: boolean
}

export interface ViewRequest {
  /** the file's own name, as Content-Disposition gives it */
  filename: string
  type: ViewType
  /** the query for the cloud's /api/view */
  cloudQuery: URLSearchParams
  /** re-encode the file, as local's preview= does */
  preview: Preview | undefined
}

/** A refusal with local's status (observed finding 20). */
export interface ViewRefusal {
  status: 400 | 403 | 404
  message: string
}

const ANNOTATIONS: Array<[string, ViewType]> = [['[output]', 'output'], ['[input]', 'input'], ['[temp]', 'temp']]

/** "name.png [output]" → name.png in the output folder; local strips the annotation and the character before it. */
function annotated (filename: string): [string, ViewType | undefined] {
  for (const [suffix, type] of ANNOTATIONS) {
    if (filename.endsWith(suffix)) return [filename.slice(0, Math.max(filename.length - suffix.length - 1, 0)), type]
  }
  return [filename, undefined]
}

/** Local answers 403 when the subfolder leaves the folder it names (os.path.commonpath). */
function escapes (subfolder: string): boolean {
  const folder = posix.resolve('/base', subfolder)
  return folder !== '/base' && !folder.startsWith('/base/')
}

function preview (value: string, channel: string): Preview {
  const parts = value.split(';')
  const format = (parts[0] === 'webp' || parts[0] === 'jpeg') && !channel.includes('a') ? parts[0] : 'webp'
  const last = parts[parts.length - 1]
  const quality = /^\d+$/.test(last) ? Math.min(Number(last), 100) : 90
  return { format, quality, rgb: format === 'jpeg' || channel === 'rgb' }
}

export function parseViewQuery (query: URLSearchParams): ViewRequest | ViewRefusal {
  const raw = query.get('filename')
  if (raw === null) return { status: 404, message: 'filename is required' }
  const [name, annotation] = annotated(raw)
  if (name === '') return { status: 400, message: 'filename is empty' }
  if (name.startsWith('/') || name.includes('..')) return { status: 400, message: 'filename must not start with / or contain ..' }
  const type = annotation ?? query.get('type') ?? 'output'
  if (!(VIEW_TYPES as readonly string[]).includes(type)) return { status: 400, message: `type must be one of ${VIEW_TYPES.join(', ')}` }
  const subfolder = query.get('subfolder')
  if (subfolder !== null && escapes(subfolder)) return { status: 403, message: 'subfolder leaves its folder' }
  // Python's os.path.basename: "a/" has none, and no file then matches.
  const filename = name.slice(name.lastIndexOf('/') + 1)
  if (filename === '') return { status: 404, message: 'File not found' }
  const channel = query.get('channel') ?? ''
  const cloudQuery = new URLSearchParams({ filename, type })
  if (subfolder !== null) cloudQuery.set('subfolder', subfolder)
  const wanted = query.get('preview')
  // Local ignores channels other than rgb and a; with preview it re-encodes the whole file (observed finding 19).
  if (wanted === null && (channel === 'rgb' || channel === 'a')) cloudQuery.set('channel', channel)
  return { filename, type: type as ViewType, cloudQuery, preview: wanted === null ? undefined : preview(wanted, channel) }
}

/** `filename="…"` as local sends it, safe for a header: quotes escaped, anything outside printable ASCII percent-encoded. */
export function contentDisposition (filename: string): string {
  const quoted = filename.replace(/["\\]/g, '\\$&')
  if (/^[\x20-\x7e]*$/.test(filename)) return `filename="${quoted}"`
  return `filename="${encodeURIComponent(filename)}"; filename*=UTF-8''${encodeURIComponent(filename)}`
}

/** Types a browser would run rather than show: local sends them as downloads. */
const ACTIVE_TYPES = new Set(['text/html', 'text/html-sandboxed', 'application/xhtml+xml', 'text/javascript', 'text/css'])

export function safeContentType (type: string | undefined): string {
  const bare = (type ?? '').split(';')[0].trim().toLowerCase()
  return bare === '' || ACTIVE_TYPES.has(bare) ? 'application/octet-stream' : (type as string)
}

type Sharp = typeof import('sharp')['default']
let loading: Promise<Sharp> | undefined

/**
 * sharp (libvips) is loaded on the first preview: a proxy that never makes one does not carry it in
 * memory. Every preview decodes a new buffer, so libvips' operation cache would only hold memory; one
 * thread per image, as the route runs one encode per core at most.
 */
async function loadSharp (): Promise<Sharp> {
  loading ??= import('sharp').then(({ default: sharp }) => {
    sharp.cache(false)
    sharp.concurrency(1)
    return sharp
  }, () => {
    throw new ProxyError(501, 'preview_unavailable', 'Previews need the sharp package, which cannot be loaded on this platform')
  })
  return await loading
}

/** The file re-encoded as local's preview= answers it (Pillow there, sharp here). */
export async function encodePreview (bytes: Buffer, { format, quality, rgb }: Preview): Promise<Buffer> {
  const sharp = await loadSharp()
  let image = sharp(bytes, { failOn: 'error' })
  if (rgb) image = image.removeAlpha()
  return await (format === 'jpeg' ? image.jpeg({ quality }) : image.webp({ quality })).toBuffer()
}
