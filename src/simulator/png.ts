/**
 * The simulator's PNG writer (8-bit, non-interlaced, with ComfyUI's tEXt metadata) and image reading for uploads
 * and `/api/view?channel=`.
 */
import { crc32, deflateSync } from 'node:zlib'
import { decode as jpeg_decode } from 'jpeg-js'
import { PNG } from 'pngjs'

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])

/** PNG colour type by channel count: gray, gray+alpha, RGB, RGBA. */
const COLOR_TYPE: Record<number, number> = { 1: 0, 2: 4, 3: 2, 4: 6 }

export interface RawImage {
  width: number
  height: number
  channels: 1 | 2 | 3 | 4
  /** rows top to bottom, width * channels bytes each, no filter bytes */
  pixels: Buffer
}

function chunk (type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8)
  head.writeUInt32BE(data.length, 0)
  head.write(type, 4, 'latin1')
  const tail = Buffer.alloc(4)
  tail.writeUInt32BE(crc32(data, crc32(head.subarray(4))) >>> 0, 0)
  return Buffer.concat([head, data, tail])
}

function ihdr (width: number, height: number, channels: number): Buffer {
  const data = Buffer.alloc(13)
  data.writeUInt32BE(width, 0)
  data.writeUInt32BE(height, 4)
  data[8] = 8 // bit depth
  data[9] = COLOR_TYPE[channels]
  // compression, filter method and interlace are all 0
  return data
}

/** tEXt: latin-1 keyword, NUL, latin-1 text (ComfyUI's texts are JSON with non-ASCII escaped). */
function text (keyword: string, value: string): Buffer {
  return chunk('tEXt', Buffer.concat([Buffer.from(keyword, 'latin1'), Buffer.alloc(1), Buffer.from(value, 'latin1')]))
}

/** Assembles a PNG from already filtered scanlines (one filter byte per row). */
function assemble (width: number, height: number, channels: number, filtered: Buffer, level: number, texts: Array<[string, string]> = []): Buffer {
  return Buffer.concat([
    SIGNATURE,
    chunk('IHDR', ihdr(width, height, channels)),
    ...texts.map(([keyword, value]) => text(keyword, value)),
    chunk('IDAT', deflateSync(filtered, { level })),
    chunk('IEND', Buffer.alloc(0))
  ])
}

/** Rows with filter 0, or with filter 2 (Up): smooth pictures compress far better with Up. */
function filterRows (pixels: Buffer, stride: number, height: number, up: boolean): Buffer {
  const filtered = Buffer.alloc((stride + 1) * height)
  for (let y = 0; y < height; y++) {
    const row = y * (stride + 1)
    if (!up || y === 0) {
      pixels.copy(filtered, row + 1, y * stride, (y + 1) * stride)
      continue
    }
    filtered[row] = 2
    for (let i = 0; i < stride; i++) filtered[row + 1 + i] = (pixels[y * stride + i] - pixels[(y - 1) * stride + i]) & 0xff
  }
  return filtered
}

export interface EncodeOptions {
  /** zlib level: SaveImage uses 4, PreviewImage 1 (ComfyUI's compress_level) */
  level?: number
  /** tEXt chunks in order, e.g. [['prompt', json]] */
  texts?: Array<[string, string]>
  /** filter rows with Up (default: no filtering) */
  up?: boolean
}

/** Encodes raw 8-bit pixels. */
export function encodePng (image: RawImage, options: EncodeOptions = {}): Buffer {
  const { width, height, channels, pixels } = image
  return assemble(width, height, channels, filterRows(pixels, width * channels, height, options.up === true), options.level ?? 6, options.texts)
}

export interface ApngOptions extends EncodeOptions {
  /** private `comf` chunks (keyword, text) after the image data: where SaveAnimatedPNG keeps prompt and workflow */
  comf?: Array<[string, string]>
}

const comfChunks = (entries: Array<[string, string]> = []): Buffer[] =>
  entries.map(([keyword, value]) => chunk('comf', Buffer.concat([Buffer.from(keyword, 'latin1'), Buffer.alloc(1), Buffer.from(value, 'latin1')])))

const gcd = (a: number, b: number): number => b === 0 ? a : gcd(b, a % b)

/**
 * An animated PNG as Pillow writes it for SaveAnimatedPNG: a frame equal to the one before is dropped and its time
 * added to that one's; if one frame is left the file is a plain PNG. Otherwise acTL, then per frame fcTL (delay as
 * the reduced fraction of a second) and its data (IDAT for the first frame, fdAT with a sequence number after).
 */
export function encodeApng (frames: RawImage[], delayMs: number, options: ApngOptions = {}): Buffer {
  const { width, height, channels } = frames[0]
  const level = options.level ?? 6
  const shown: Array<{ frame: RawImage, ms: number }> = []
  for (const frame of frames) {
    const last = shown.at(-1)
    if (last !== undefined && last.frame.pixels.equals(frame.pixels)) last.ms += delayMs
    else shown.push({ frame, ms: delayMs })
  }
  const data = (frame: RawImage): Buffer => deflateSync(filterRows(frame.pixels, width * channels, height, options.up === true), { level })
  const head = [SIGNATURE, chunk('IHDR', ihdr(width, height, channels)), ...(options.texts ?? []).map(([k, v]) => text(k, v))]
  if (shown.length === 1) return Buffer.concat([...head, chunk('IDAT', data(shown[0].frame)), ...comfChunks(options.comf), chunk('IEND', Buffer.alloc(0))])
  const actl = Buffer.alloc(8)
  actl.writeUInt32BE(shown.length, 0) // plays: 0 = forever
  const parts = [...head, chunk('acTL', actl)]
  let sequence = 0
  shown.forEach(({ frame, ms }, i) => {
    const fctl = Buffer.alloc(26)
    fctl.writeUInt32BE(sequence++, 0)
    fctl.writeUInt32BE(width, 4)
    fctl.writeUInt32BE(height, 8)
    const whole = Math.round(ms)
    const divisor = gcd(whole, 1000)
    fctl.writeUInt16BE(whole / divisor, 20)
    fctl.writeUInt16BE(1000 / divisor, 22)
    parts.push(chunk('fcTL', fctl))
    if (i === 0) {
      parts.push(chunk('IDAT', data(frame)))
    } else {
      const seq = Buffer.alloc(4)
      seq.writeUInt32BE(sequence++, 0)
      parts.push(chunk('fdAT', Buffer.concat([seq, data(frame)])))
    }
  })
  return Buffer.concat([...parts, ...comfChunks(options.comf), chunk('IEND', Buffer.alloc(0))])
}

/** mulberry32: a tiny deterministic PRNG. */
export function prng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** A 32-bit seed from any string (FNV-1a). */
export function seedFrom (text: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}

/**
 * Deterministic RGB pixels for a seed, standing in for what a model would decode: a seeded gradient row with
 * noise, and each later row the one above plus a small seeded step.
 */
export function samplePixels (width: number, height: number, seed: number): Buffer {
  const random = prng(seed)
  const stride = width * 3
  const pixels = Buffer.allocUnsafe(stride * height)
  const base = [random() * 256, random() * 256, random() * 256]
  const slope = [random() * 2 - 1, random() * 2 - 1, random() * 2 - 1]
  for (let x = 0; x < width; x++) {
    const t = width > 1 ? x * 255 / (width - 1) : 0
    for (let c = 0; c < 3; c++) pixels[x * 3 + c] = (base[c] + slope[c] * t + random() * 24) & 0xff
  }
  const step = [Math.floor(random() * 3), Math.floor(random() * 3), Math.floor(random() * 3)]
  for (let i = stride; i < pixels.length; i++) pixels[i] = (pixels[i - stride] + step[i % 3]) & 0xff
  return pixels
}

export interface PngHeader { width: number, height: number, bitDepth: number, colorType: number, interlace: number }

/** Reads the IHDR of a PNG; undefined when the bytes are not a PNG. */
export function readPngHeader (bytes: Buffer): PngHeader | undefined {
  if (bytes.length < 33 || !bytes.subarray(0, 8).equals(SIGNATURE) || bytes.toString('latin1', 12, 16) !== 'IHDR') return undefined
  return {
    width: bytes.readUInt32BE(16),
    height: bytes.readUInt32BE(20),
    bitDepth: bytes[24],
    colorType: bytes[25],
    interlace: bytes[28]
  }
}

export interface DecodedImage {
  width: number
  height: number
  /** RGBA, 8 bits per channel */
  rgba: Buffer
  /** whether the file has an alpha channel (PIL's 'A' band), which LoadImage turns into a mask */
  hasAlpha: boolean
}

/**
 * Decodes a PNG (any bit depth, palette, interlace: pngjs) or a JPEG (jpeg-js) to 8-bit RGBA. Uploaded files
 * come in every PNG flavour there is, so a complete decoder beats the handful of cases a hand-written one covers.
 */
export function decodeImage (bytes: Buffer): DecodedImage {
  if (readPngHeader(bytes) !== undefined) {
    const png = PNG.sync.read(bytes)
    // the IHDR colour type (the typings omit 3, palette); palette transparency comes as an alpha band too
    const colorType: number = bytes[25]
    const hasAlpha = colorType === 4 || colorType === 6 || (colorType === 3 && png.alpha)
    return { width: png.width, height: png.height, rgba: png.data, hasAlpha }
  }
  if (bytes[0] === 0xff && bytes[1] === 0xd8) {
    const jpeg = jpeg_decode(bytes, { formatAsRGBA: true, maxMemoryUsageInMB: 1024 })
    return { width: jpeg.width, height: jpeg.height, rgba: jpeg.data, hasAlpha: false }
  }
  throw new Error('cannot identify image file')
}

/**
 * `/api/view?channel=`: `rgb` drops alpha (an RGB image), `a`/`alpha` returns the alpha channel as a
 * grayscale image (fully opaque when the source has no alpha), as the Cloud spec describes the parameter.
 */
export function extractChannel (bytes: Buffer, channel: 'rgb' | 'a' | 'alpha'): Buffer {
  const image = decodeImage(bytes)
  const count = image.width * image.height
  const { rgba } = image
  if (channel === 'rgb') {
    const out = Buffer.alloc(count * 3)
    for (let i = 0; i < count; i++) rgba.copy(out, i * 3, i * 4, i * 4 + 3)
    return encodePng({ width: image.width, height: image.height, channels: 3, pixels: out })
  }
  const out = Buffer.alloc(count, 255)
  if (image.hasAlpha) for (let i = 0; i < count; i++) out[i] = rgba[i * 4 + 3]
  return encodePng({ width: image.width, height: image.height, channels: 1, pixels: out })
}
