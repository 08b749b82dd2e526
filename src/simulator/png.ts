/**
 * A small PNG writer and reader: enough to produce the simulator's images (8-bit, non-interlaced)
 * and to take apart PNGs for `/api/view?channel=`. Built on node:zlib only.
 */
import { crc32, deflateSync, inflateSync } from 'node:zlib'

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])

/** PNG colour type by channel count: gray, gray+alpha, RGB, RGBA. */
const COLOR_TYPE: Record<number, number> = { 1: 0, 2: 4, 3: 2, 4: 6 }
const CHANNELS: Record<number, number> = { 0: 1, 4: 2, 2: 3, 6: 4 }

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

/** Assembles a PNG from already filtered scanlines (one filter byte per row). */
function assemble (width: number, height: number, channels: number, filtered: Buffer, level: number): Buffer {
  return Buffer.concat([
    SIGNATURE,
    chunk('IHDR', ihdr(width, height, channels)),
    chunk('IDAT', deflateSync(filtered, { level })),
    chunk('IEND', Buffer.alloc(0))
  ])
}

/** Encodes raw pixels with filter type 0 on every row. */
export function encodePng (image: RawImage): Buffer {
  const { width, height, channels, pixels } = image
  const stride = width * channels
  const filtered = Buffer.alloc((stride + 1) * height)
  for (let y = 0; y < height; y++) pixels.copy(filtered, y * (stride + 1) + 1, y * stride, (y + 1) * stride)
  return assemble(width, height, channels, filtered, 6)
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
 * A deterministic RGB picture for a seed. It must stay cheap at any size the node set allows, so only the
 * first row is computed pixel by pixel (a seeded gradient with noise); every later row uses the PNG "Up"
 * filter with one shared seeded delta row, which is copied with Buffer.fill and compresses to almost nothing.
 */
export function renderImage (width: number, height: number, seed: number): Buffer {
  const random = prng(seed)
  const stride = width * 3
  const row = stride + 1
  const filtered = Buffer.allocUnsafe(row * height)
  const base = [random() * 256, random() * 256, random() * 256]
  const slope = [random() * 2 - 1, random() * 2 - 1, random() * 2 - 1]
  filtered[0] = 0
  for (let x = 0; x < width; x++) {
    const t = width > 1 ? x * 255 / (width - 1) : 0
    for (let c = 0; c < 3; c++) filtered[1 + x * 3 + c] = (base[c] + slope[c] * t + random() * 24) & 0xff
  }
  if (height > 1) {
    const delta = Buffer.allocUnsafe(row)
    delta[0] = 2 // Up
    const step = [Math.floor(random() * 3), Math.floor(random() * 3), Math.floor(random() * 3)]
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < 3; c++) delta[1 + x * 3 + c] = step[c] + (random() < 0.02 ? 1 : 0)
    }
    filtered.fill(delta, row)
  }
  return assemble(width, height, 3, filtered, 1)
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

function paeth (a: number, b: number, c: number): number {
  const p = a + b - c
  const pa = Math.abs(p - a)
  const pb = Math.abs(p - b)
  const pc = Math.abs(p - c)
  if (pa <= pb && pa <= pc) return a
  return pb <= pc ? b : c
}

/** Decodes an 8-bit, non-interlaced gray/gray+alpha/RGB/RGBA PNG; throws on anything else. */
export function decodePng (bytes: Buffer): RawImage {
  const header = readPngHeader(bytes)
  if (header === undefined) throw new Error('not a PNG file')
  const channels = CHANNELS[header.colorType]
  if (header.bitDepth !== 8 || channels === undefined || header.interlace !== 0) {
    throw new Error('only 8-bit, non-interlaced gray, gray+alpha, RGB and RGBA PNGs are supported')
  }
  const idat: Buffer[] = []
  for (let at = 8; at + 12 <= bytes.length;) {
    const length = bytes.readUInt32BE(at)
    const type = bytes.toString('latin1', at + 4, at + 8)
    if (type === 'IDAT') idat.push(bytes.subarray(at + 8, at + 8 + length))
    if (type === 'IEND') break
    at += 12 + length
  }
  const { width, height } = header
  const stride = width * channels
  const data = inflateSync(Buffer.concat(idat))
  if (data.length < (stride + 1) * height) throw new Error('truncated PNG data')
  const pixels = Buffer.alloc(stride * height)
  for (let y = 0; y < height; y++) {
    const filter = data[y * (stride + 1)]
    const src = y * (stride + 1) + 1
    const out = y * stride
    for (let i = 0; i < stride; i++) {
      const left = i >= channels ? pixels[out + i - channels] : 0
      const up = y > 0 ? pixels[out - stride + i] : 0
      const upLeft = y > 0 && i >= channels ? pixels[out - stride + i - channels] : 0
      let predictor = 0
      if (filter === 1) predictor = left
      else if (filter === 2) predictor = up
      else if (filter === 3) predictor = (left + up) >> 1
      else if (filter === 4) predictor = paeth(left, up, upLeft)
      else if (filter !== 0) throw new Error(`bad PNG filter type ${filter}`)
      pixels[out + i] = (data[src + i] + predictor) & 0xff
    }
  }
  return { width, height, channels: channels as RawImage['channels'], pixels }
}

/**
 * `/api/view?channel=`: `rgb` drops alpha (an RGB image), `a`/`alpha` returns the alpha channel as a
 * grayscale image (fully opaque when the source has no alpha), as the Cloud spec describes the parameter.
 */
export function extractChannel (bytes: Buffer, channel: 'rgb' | 'a' | 'alpha'): Buffer {
  const image = decodePng(bytes)
  const count = image.width * image.height
  const { channels, pixels } = image
  if (channel === 'rgb') {
    const out = Buffer.alloc(count * 3)
    for (let i = 0; i < count; i++) {
      for (let c = 0; c < 3; c++) out[i * 3 + c] = channels >= 3 ? pixels[i * channels + c] : pixels[i * channels]
    }
    return encodePng({ width: image.width, height: image.height, channels: 3, pixels: out })
  }
  const out = Buffer.alloc(count, 255)
  if (channels === 2 || channels === 4) {
    for (let i = 0; i < count; i++) out[i] = pixels[i * channels + channels - 1]
  }
  return encodePng({ width: image.width, height: image.height, channels: 1, pixels: out })
}
