/**
 * VIDEO values and the animation and video files the savers write.
 *
 * - Animated WEBP: sharp (libwebp's animation encoder, as Pillow uses for SaveAnimatedWEBP).
 * - MP4 (SaveVideo): H.264 with every macroblock coded as I_PCM, i.e. raw 4:2:0 samples in a valid Baseline stream.
 *   No maintained pure-JS H.264 encoder exists (the npm ones are unmaintained WASM builds of x264), and I_PCM needs no
 *   transform or entropy coding, so any decoder plays it; the files are large, which a development backend can afford.
 *   A video's audio goes in as FLAC (ComfyUI writes AAC, which has no JS encoder either).
 * - WEBM (SaveWEBM): VP8 key frames, taken from the lossy WebP that sharp writes (a WebP "VP8 " chunk is one VP8 frame).
 *   ComfyUI writes VP9 or AV1 here; no JS encoder for those exists, and VP8 plays wherever WebM does.
 * The containers are written by mediabunny (maintained, pure TypeScript).
 */
import { BufferTarget, EncodedAudioPacketSource, EncodedPacket, EncodedVideoPacketSource, Mp4OutputFormat, Output, WebMOutputFormat } from 'mediabunny'
import { flacParts, type Audio } from './audio.js'
import { imageBytes, NodeException, type Tensor } from './tensor.js'

type Sharp = typeof import('sharp')['default']
let loading: Promise<Sharp> | undefined

/** sharp (libvips) is loaded by the first WebP or WebM save: a platform where it cannot load still runs the rest. */
async function loadSharp (): Promise<Sharp> {
  loading ??= import('sharp').then(({ default: sharp }) => sharp)
  try {
    return await loading
  } catch {
    throw new NodeException('ModuleNotFoundError', "No module named 'sharp': WebP and WebM saving needs the sharp package, which cannot be loaded on this platform")
  }
}

/** ComfyUI's VIDEO (VideoFromComponents): frames, frame rate and optional audio. */
export interface Video { kind: 'VIDEO', images: Tensor, fps: number, audio: Audio | null }

/** Frames as 8-bit RGB, one buffer per image. */
function rgbFrames (images: Tensor): Buffer[] {
  return Array.from({ length: images.batch }, (_, i) => {
    const bytes = imageBytes(images, i)
    if (images.channels === 3) return bytes
    const rgb = Buffer.allocUnsafe(images.width * images.height * 3)
    for (let p = 0; p < images.width * images.height; p++) bytes.copy(rgb, p * 3, p * images.channels, p * images.channels + 3)
    return rgb
  })
}

/**
 * SaveAnimatedWEBP: every frame shown `delayMs`, looping forever, with ComfyUI's EXIF metadata (the prompt in
 * Model, extra_pnginfo entries downwards from Make). One frame gives a still WebP, as Pillow writes.
 */
export async function encodeAnimatedWebp (images: Tensor, delayMs: number, options: { lossless: boolean, quality: number, effort: number, exif: Record<string, string> }): Promise<Buffer> {
  const sharp = await loadSharp()
  const frames = rgbFrames(images)
  const raw = { width: images.width, height: images.height * frames.length, channels: 3 as const, ...(frames.length > 1 ? { pageHeight: images.height } : {}) }
  return await sharp(Buffer.concat(frames), { raw, limitInputPixels: false })
    .webp({ lossless: options.lossless, quality: Math.max(1, options.quality), effort: options.effort, loop: 0, ...(frames.length > 1 ? { delay: frames.map(() => delayMs) } : {}) })
    .withExif({ IFD0: options.exif })
    .toBuffer()
}

// ---------------------------------------------------------------------------------------------
// H.264 with I_PCM macroblocks

class BitWriter {
  private buffer: Buffer
  private length = 0
  private current = 0
  private count = 0

  constructor (capacity = 64) {
    this.buffer = Buffer.alloc(capacity)
  }

  bit (value: number): void {
    this.current = (this.current << 1) | (value & 1)
    if (++this.count === 8) {
      this.reserve(1)
      this.buffer[this.length++] = this.current
      this.current = 0
      this.count = 0
    }
  }

  bits (value: number, n: number): void {
    for (let i = n - 1; i >= 0; i--) this.bit(Math.floor(value / 2 ** i) & 1)
  }

  /** Exp-Golomb ue(v). */
  ue (value: number): void {
    const code = value + 1
    const length = Math.floor(Math.log2(code))
    this.bits(0, length)
    this.bits(code, length + 1)
  }

  /** Pads with zero bits to a byte boundary (pcm_alignment_zero_bit). */
  align (): void {
    while (this.count !== 0) this.bit(0)
  }

  /** Whole bytes; the writer must be byte-aligned. */
  raw (data: Uint8Array): void {
    this.reserve(data.length)
    this.buffer.set(data, this.length)
    this.length += data.length
  }

  /** rbsp_trailing_bits, then the RBSP as bytes. */
  finish (): Buffer {
    this.bit(1)
    this.align()
    return this.buffer.subarray(0, this.length)
  }

  private reserve (n: number): void {
    if (this.length + n <= this.buffer.length) return
    const grown = Buffer.alloc(Math.max(this.buffer.length * 2, this.length + n))
    this.buffer.copy(grown, 0, 0, this.length)
    this.buffer = grown
  }
}

/** A NAL unit: header byte, then the RBSP with emulation prevention bytes (00 00 0x becomes 00 00 03 0x for x <= 3). */
function nal (type: number, rbsp: Buffer): Buffer {
  const out = Buffer.alloc(1 + rbsp.length + Math.ceil(rbsp.length / 2))
  out[0] = 0x60 | type // nal_ref_idc 3
  let at = 1
  let zeros = 0
  for (const byte of rbsp) {
    if (zeros >= 2 && byte <= 3) {
      out[at++] = 3
      zeros = 0
    }
    out[at++] = byte
    zeros = byte === 0 ? zeros + 1 : 0
  }
  return out.subarray(0, at)
}

const PROFILE_BASELINE = 66
const CONSTRAINED = 0xc0 // constraint_set0 and constraint_set1: Constrained Baseline
const LEVEL = 51

function sps (width: number, height: number): Buffer {
  const mbWidth = Math.ceil(width / 16)
  const mbHeight = Math.ceil(height / 16)
  const w = new BitWriter()
  w.bits(PROFILE_BASELINE, 8)
  w.bits(CONSTRAINED, 8)
  w.bits(LEVEL, 8)
  w.ue(0) // seq_parameter_set_id
  w.ue(0) // log2_max_frame_num_minus4
  w.ue(2) // pic_order_cnt_type: output order = decoding order
  w.ue(1) // max_num_ref_frames
  w.bit(0) // gaps_in_frame_num_value_allowed_flag
  w.ue(mbWidth - 1)
  w.ue(mbHeight - 1)
  w.bit(1) // frame_mbs_only_flag
  w.bit(1) // direct_8x8_inference_flag
  const cropped = mbWidth * 16 !== width || mbHeight * 16 !== height
  w.bit(cropped ? 1 : 0)
  if (cropped) {
    // 4:2:0 crops in units of 2 pixels
    w.ue(0)
    w.ue((mbWidth * 16 - width) / 2)
    w.ue(0)
    w.ue((mbHeight * 16 - height) / 2)
  }
  w.bit(1) // vui_parameters_present_flag
  w.bit(0) // aspect_ratio_info_present_flag
  w.bit(0) // overscan_info_present_flag
  w.bit(1) // video_signal_type_present_flag: limited-range BT.601, as the samples are
  w.bits(5, 3) // video_format: unspecified
  w.bit(0) // video_full_range_flag
  w.bit(1) // colour_description_present_flag
  w.bits(6, 8) // colour_primaries: SMPTE 170M
  w.bits(6, 8) // transfer_characteristics
  w.bits(6, 8) // matrix_coefficients: BT.601
  w.bit(0) // chroma_loc_info_present_flag
  w.bit(0) // timing_info_present_flag: the container has the timing
  w.bit(0) // nal_hrd_parameters_present_flag
  w.bit(0) // vcl_hrd_parameters_present_flag
  w.bit(0) // pic_struct_present_flag
  // bitstream_restriction: no reordering, one frame buffered, so decoders output each picture at once
  w.bit(1)
  w.bit(1) // motion_vectors_over_pic_boundaries_flag
  w.ue(0) // max_bytes_per_pic_denom
  w.ue(0) // max_bits_per_mb_denom
  w.ue(11) // log2_max_mv_length_horizontal
  w.ue(11) // log2_max_mv_length_vertical
  w.ue(0) // max_num_reorder_frames
  w.ue(1) // max_dec_frame_buffering
  return nal(7, w.finish())
}

function pps (): Buffer {
  const w = new BitWriter()
  w.ue(0) // pic_parameter_set_id
  w.ue(0) // seq_parameter_set_id
  w.bit(0) // entropy_coding_mode_flag: CAVLC
  w.bit(0) // bottom_field_pic_order_in_frame_present_flag
  w.ue(0) // num_slice_groups_minus1
  w.ue(0) // num_ref_idx_l0_default_active_minus1
  w.ue(0) // num_ref_idx_l1_default_active_minus1
  w.bit(0) // weighted_pred_flag
  w.bits(0, 2) // weighted_bipred_idc
  w.ue(0) // pic_init_qp_minus26 (se 0)
  w.ue(0) // pic_init_qs_minus26 (se 0)
  w.ue(0) // chroma_qp_index_offset (se 0)
  w.bit(1) // deblocking_filter_control_present_flag
  w.bit(0) // constrained_intra_pred_flag
  w.bit(0) // redundant_pic_cnt_present_flag
  return nal(8, w.finish())
}

/** RGB to limited-range BT.601 4:2:0 (what swscale gives for rgb24 to yuv420p), padded to whole macroblocks. */
function toYuv420 (rgb: Buffer, width: number, height: number): { y: Uint8Array, u: Uint8Array, v: Uint8Array, stride: number, rows: number } {
  const stride = Math.ceil(width / 16) * 16
  const rows = Math.ceil(height / 16) * 16
  const y = new Uint8Array(stride * rows)
  const u = new Uint8Array((stride / 2) * (rows / 2))
  const v = new Uint8Array((stride / 2) * (rows / 2))
  const at = (px: number, py: number): number => (Math.min(py, height - 1) * width + Math.min(px, width - 1)) * 3
  for (let py = 0; py < rows; py++) {
    for (let px = 0; px < stride; px++) {
      const i = at(px, py)
      y[py * stride + px] = Math.round(16 + (65.481 * rgb[i] + 128.553 * rgb[i + 1] + 24.966 * rgb[i + 2]) / 255)
    }
  }
  for (let cy = 0; cy < rows / 2; cy++) {
    for (let cx = 0; cx < stride / 2; cx++) {
      let r = 0
      let g = 0
      let b = 0
      for (const [dx, dy] of [[0, 0], [1, 0], [0, 1], [1, 1]]) {
        const i = at(cx * 2 + dx, cy * 2 + dy)
        r += rgb[i] / 4
        g += rgb[i + 1] / 4
        b += rgb[i + 2] / 4
      }
      u[cy * (stride / 2) + cx] = Math.round(128 + (-37.797 * r - 74.203 * g + 112 * b) / 255)
      v[cy * (stride / 2) + cx] = Math.round(128 + (112 * r - 93.786 * g - 18.214 * b) / 255)
    }
  }
  return { y, u, v, stride, rows }
}

/** One IDR picture as a single I slice of I_PCM macroblocks. */
function idrSlice (rgb: Buffer, width: number, height: number, index: number): Buffer {
  const { y, u, v, stride, rows } = toYuv420(rgb, width, height)
  const w = new BitWriter(64 + (stride / 16) * (rows / 16) * (384 + 3))
  w.ue(0) // first_mb_in_slice
  w.ue(7) // slice_type: I, and all slices of the picture are I
  w.ue(0) // pic_parameter_set_id
  w.bits(0, 4) // frame_num
  w.ue(index % 2) // idr_pic_id: consecutive IDR pictures differ
  w.bit(0) // no_output_of_prior_pics_flag
  w.bit(0) // long_term_reference_flag
  w.ue(0) // slice_qp_delta (se 0)
  w.ue(1) // disable_deblocking_filter_idc
  const half = stride / 2
  for (let my = 0; my < rows / 16; my++) {
    for (let mx = 0; mx < stride / 16; mx++) {
      w.ue(25) // mb_type I_PCM
      w.align()
      for (let row = 0; row < 16; row++) w.raw(y.subarray((my * 16 + row) * stride + mx * 16, (my * 16 + row) * stride + mx * 16 + 16))
      for (const plane of [u, v]) {
        for (let row = 0; row < 8; row++) w.raw(plane.subarray((my * 8 + row) * half + mx * 8, (my * 8 + row) * half + mx * 8 + 8))
      }
    }
  }
  return nal(5, w.finish())
}

/** AVCDecoderConfigurationRecord (the MP4 `avcC` box body). */
function avcConfig (spsNal: Buffer, ppsNal: Buffer): Buffer {
  const length = (n: Buffer): Buffer => Buffer.from([n.length >> 8, n.length & 0xff])
  return Buffer.concat([Buffer.from([1, PROFILE_BASELINE, CONSTRAINED, LEVEL, 0xff, 0xe1]), length(spsNal), spsNal, Buffer.from([1]), length(ppsNal), ppsNal])
}

const lengthPrefixed = (unit: Buffer): Buffer => Buffer.concat([Buffer.from([unit.length >>> 24, (unit.length >> 16) & 0xff, (unit.length >> 8) & 0xff, unit.length & 0xff]), unit])

type Tags = Record<string, string>

interface VideoTrack { codec: 'avc' | 'vp8', config: { codec: string, codedWidth: number, codedHeight: number, description?: Buffer }, frames: Buffer[], fps: number }

async function mux (format: Mp4OutputFormat | WebMOutputFormat, video: VideoTrack, tags: Tags, audio?: Audio): Promise<Buffer> {
  const target = new BufferTarget()
  const output = new Output({ format, target })
  const source = new EncodedVideoPacketSource(video.codec)
  output.addVideoTrack(source, { frameRate: video.fps })
  const sound = audio === undefined ? undefined : audioTrack(audio, video.fps, video.frames.length)
  const audioSource = sound === undefined ? undefined : new EncodedAudioPacketSource('flac')
  if (audioSource !== undefined) output.addAudioTrack(audioSource)
  output.setMetadataTags({ raw: tags })
  await output.start()
  for (const [i, frame] of video.frames.entries()) {
    await source.add(new EncodedPacket(frame, 'key', i / video.fps, 1 / video.fps), i === 0 ? { decoderConfig: video.config } : undefined)
  }
  if (sound !== undefined && audioSource !== undefined) {
    let at = 0
    for (const [i, frame] of sound.parts.frames.entries()) {
      const config = { codec: 'flac', sampleRate: sound.sampleRate, numberOfChannels: sound.channels, description: sound.parts.header }
      await audioSource.add(new EncodedPacket(frame.bytes, 'key', at / sound.sampleRate, frame.samples / sound.sampleRate), i === 0 ? { decoderConfig: config } : undefined)
      at += frame.samples
    }
  }
  await output.finalize()
  return Buffer.from(target.buffer!)
}

/**
 * The first waveform of the batch, cut to the video's length, as FLAC frames. ComfyUI writes AAC here; FLAC in
 * MP4 plays in browsers and ffmpeg alike and needs no psychoacoustic encoder.
 */
function audioTrack ({ batch, sampleRate }: Audio, fps: number, frames: number): { parts: ReturnType<typeof flacParts>, sampleRate: number, channels: number } | undefined {
  const waveform = batch[0]
  if (waveform === undefined || waveform.length === 0 || waveform[0].length === 0) return undefined
  const length = Math.min(waveform[0].length, Math.ceil((sampleRate / fps) * frames))
  return { parts: flacParts(waveform.map(channel => channel.subarray(0, length)), sampleRate), sampleRate, channels: waveform.length }
}

/** SaveVideo's MP4 (format auto/mp4, codec auto/h264), with the prompt and workflow as metadata tags. */
export async function encodeMp4 (video: Video, tags: Tags): Promise<Buffer> {
  const { images, fps } = video
  // libx264 refuses odd sizes with 4:2:0; so does PyAV's encoder open
  if (images.width % 2 !== 0 || images.height % 2 !== 0) throw new NodeException('ValueError', `width and height must be even for H.264 4:2:0, got ${images.width}x${images.height}`)
  const spsNal = sps(images.width, images.height)
  const ppsNal = pps()
  const frames: Buffer[] = []
  for (const [i, rgb] of rgbFrames(images).entries()) {
    frames.push(lengthPrefixed(idrSlice(rgb, images.width, images.height, i)))
    // a long video must not hold the event loop (the simulator shares the process with the proxy under `npm start`)
    await new Promise(resolve => setImmediate(resolve))
  }
  const config = { codec: `avc1.${PROFILE_BASELINE.toString(16)}${CONSTRAINED.toString(16)}${LEVEL.toString(16)}`, codedWidth: images.width, codedHeight: images.height, description: avcConfig(spsNal, ppsNal) }
  return await mux(new Mp4OutputFormat({ fastStart: 'in-memory' }), { codec: 'avc', config, frames, fps }, tags, video.audio ?? undefined)
}

/** The VP8 frame inside a lossy WebP (RIFF "WEBP", then a "VP8 " chunk). */
function vp8Frame (webp: Buffer): Buffer {
  if (webp.toString('latin1', 12, 16) !== 'VP8 ') throw new Error('expected a simple lossy WebP')
  return webp.subarray(20, 20 + webp.readUInt32LE(16))
}

/** SaveWEBM: VP8 key frames; `crf` (0 best … 63 worst) maps onto WebP quality. */
export async function encodeWebm (images: Tensor, fps: number, crf: number, tags: Tags): Promise<Buffer> {
  const sharp = await loadSharp()
  const quality = Math.max(1, Math.round(100 - crf * 99 / 63))
  const frames = await Promise.all(rgbFrames(images).map(async rgb =>
    vp8Frame(await sharp(rgb, { raw: { width: images.width, height: images.height, channels: 3 }, limitInputPixels: false }).webp({ quality, effort: 0 }).toBuffer())))
  return await mux(new WebMOutputFormat(), { codec: 'vp8', config: { codec: 'vp8', codedWidth: images.width, codedHeight: images.height }, frames, fps }, tags)
}
