/**
 * AUDIO values and the FLAC files SaveAudio writes. The encoder is the simplest valid FLAC: 16-bit samples in
 * VERBATIM subframes, fixed 4096-sample blocks, with the header CRC-8 and frame CRC-16 every decoder checks.
 */
import { prng, seedFrom } from './png.js'

/** ComfyUI's AUDIO: `{waveform: [batch, channels, samples], sample_rate}`, one Float32Array per channel here. */
export interface Audio { kind: 'AUDIO', sampleRate: number, batch: Float32Array[][] }

const BLOCK = 4096

/** A quiet, seeded chord: what the simulator "decodes" from an audio latent. */
export function sampleAudio (seed: string, samples: number, sampleRate: number, channels = 2): Float32Array[] {
  const random = prng(seedFrom(seed))
  const tones = [110 + random() * 330, 220 + random() * 440, 330 + random() * 550]
  return Array.from({ length: channels }, (_, c) => {
    const wave = new Float32Array(samples)
    for (let i = 0; i < samples; i++) {
      const t = i / sampleRate
      wave[i] = 0.1 * Math.sin(2 * Math.PI * tones[0] * t + c) + 0.05 * Math.sin(2 * Math.PI * tones[1] * t) + 0.03 * Math.sin(2 * Math.PI * tones[2] * t)
    }
    return wave
  })
}

function crc8 (bytes: Uint8Array): number {
  let crc = 0
  for (const byte of bytes) {
    crc ^= byte
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x80 ? ((crc << 1) ^ 0x07) & 0xff : (crc << 1) & 0xff
  }
  return crc
}

function crc16 (bytes: Uint8Array): number {
  let crc = 0
  for (const byte of bytes) {
    crc ^= byte << 8
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x8005) & 0xffff : (crc << 1) & 0xffff
  }
  return crc
}

/** FLAC's UTF-8-like coding of the frame number. */
function codedNumber (n: number): number[] {
  if (n < 0x80) return [n]
  if (n < 0x800) return [0xc0 | (n >> 6), 0x80 | (n & 0x3f)]
  if (n < 0x10000) return [0xe0 | (n >> 12), 0x80 | ((n >> 6) & 0x3f), 0x80 | (n & 0x3f)]
  return [0xf0 | (n >> 18), 0x80 | ((n >> 12) & 0x3f), 0x80 | ((n >> 6) & 0x3f), 0x80 | (n & 0x3f)]
}

/** A FLAC stream in parts: the "fLaC" marker with STREAMINFO, and the frames with their sample counts. */
export interface FlacParts { header: Buffer, frames: Array<{ bytes: Buffer, samples: number }> }

/** Encodes one waveform (channels of float samples in -1..1) as 16-bit FLAC, frame by frame. */
export function flacParts (channels: Float32Array[], sampleRate: number): FlacParts {
  const total = channels[0]?.length ?? 0
  const info = Buffer.alloc(4 + 34)
  info.writeUInt8(0x80, 0) // last metadata block, STREAMINFO
  info.writeUIntBE(34, 1, 3)
  info.writeUInt16BE(BLOCK, 4)
  info.writeUInt16BE(BLOCK, 6)
  // min/max frame size unknown (0); then 20 bits rate, 3 bits channels-1, 5 bits bps-1, 36 bits total samples
  const packed = (BigInt(sampleRate) << 44n) | (BigInt(channels.length - 1) << 41n) | (15n << 36n) | BigInt(total)
  info.writeBigUInt64BE(packed, 14)
  // the MD5 of the samples may be zero: "not computed"
  const frames: FlacParts['frames'] = []
  for (let start = 0, number = 0; start < total; start += BLOCK, number++) {
    const size = Math.min(BLOCK, total - start)
    const header = Buffer.from([0xff, 0xf8, 0x70, ((channels.length - 1) << 4) | 0x08, ...codedNumber(number), (size - 1) >> 8, (size - 1) & 0xff])
    const body = Buffer.alloc(channels.length * (1 + size * 2))
    let at = 0
    for (const channel of channels) {
      body[at++] = 0x02 // VERBATIM, no wasted bits
      for (let i = 0; i < size; i++, at += 2) body.writeInt16BE(Math.max(-32768, Math.min(32767, Math.round(channel[start + i] * 32767))), at)
    }
    const frame = Buffer.concat([header, Buffer.from([crc8(header)]), body])
    const footer = Buffer.alloc(2)
    footer.writeUInt16BE(crc16(frame), 0)
    frames.push({ bytes: Buffer.concat([frame, footer]), samples: size })
  }
  return { header: Buffer.concat([Buffer.from('fLaC', 'latin1'), info]), frames }
}

/** Encodes one waveform as a .flac file. */
export function encodeFlac (channels: Float32Array[], sampleRate: number): Buffer {
  const { header, frames } = flacParts(channels, sampleRate)
  return Buffer.concat([header, ...frames.map(frame => frame.bytes)])
}
