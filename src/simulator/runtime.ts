/**
 * What each node class does when it runs. Model-free image and mask nodes compute real pixels (tensor.ts);
 * nodes that need a model produce stand-ins of the right kind and size: loaders and conditioning give tokens, a
 * LATENT carries its size and seed, and decoding it gives a deterministic picture of the matching size.
 */
import { encodeFlac, sampleAudio, type Audio } from './audio.js'
import { WEBP_METHODS } from './catalog.js'
import type { ModelFolders } from './models.js'
import { upscaleFactor } from './models.js'
import type { ApiPrompt } from './nodes.js'
import { encodeApng, encodePng, samplePixels, seedFrom, decodeImage } from './png.js'
import {
  allocate, batchImages, blendImages, commonUpscale, compositeImages, compositeMasks, cropImage, describe, emptyImage, featherMask,
  fromBatch, fromBytes, growMask, imageBytes, imageToMask, invertAll, invertImage, maskToImage, NodeException, padForOutpaint, pyRound,
  repeatBatch, slice, solidMask, transform, MAX_TENSOR_ELEMENTS, OOM_MESSAGE, type Tensor
} from './tensor.js'
import { encodeAnimatedWebp, encodeMp4, encodeWebm, type Video } from './video.js'

/** A loaded model, an encoded prompt or any other value the simulator cannot compute: its kind and a label. */
export interface Token { kind: string, label: string, steps?: number, scale?: number }
/** A latent batch: its size in latent cells (pixels / 8) and the seed its picture derives from. */
export interface Latent { kind: 'LATENT', batch: number, width: number, height: number, seed: string, noiseMask?: boolean, audio?: boolean, frames?: number }

/** Wan and HunyuanVideo latents: 8x smaller in space, 4x in time (the first frame alone). */
const videoLatent = (width: number, height: number, length: number, batch: number, seed = 'empty'): Latent =>
  ({ kind: 'LATENT', batch, width: Math.floor(width / 8), height: Math.floor(height / 8), frames: Math.floor((length - 1) / 4) + 1, seed })

/** Images a latent decodes to: for a video latent, (frames - 1) * 4 + 1 per batch entry. */
const imagesOf = (latent: Latent): number => latent.batch * (latent.frames === undefined ? 1 : (latent.frames - 1) * 4 + 1)

/** Stable Audio's latent: 44.1 kHz, 2048 samples per latent step. */
const AUDIO_RATE = 44100
const AUDIO_STEP = 2048

export interface FileRef { filename: string, subfolder: string, type: string }

export interface NodeContext {
  nodeId: string
  prompt: ApiPrompt
  extraPngInfo: Record<string, unknown> | undefined
  models: ModelFolders
  stepMs: number
  /** sleeps; throws once the run is over */
  wait: (ms: number) => Promise<void>
  /** sends `progress` (and updates progress_state) */
  progress: (value: number, max: number) => void
  /** sends a binary preview frame */
  preview: (png: Buffer) => void
  save: (bytes: Buffer, ext: string, type: 'output' | 'temp') => FileRef
  /** an uploaded file of the account */
  upload: (name: string) => Buffer | undefined
}

export interface NodeResult { outputs: unknown[], ui?: Record<string, unknown[]> }
type Args = Record<string, any>
type Runner = (args: Args, ctx: NodeContext) => Promise<NodeResult> | NodeResult

const out = (...outputs: unknown[]): NodeResult => ({ outputs })
const token = (kind: string, label: string, extra: Partial<Token> = {}): Token => ({ kind, label, ...extra })
const tokenLabel = (value: unknown): string => (value as Token | undefined)?.label ?? 'none'

/** Python's json.dumps with default settings: `, ` and `: ` separators, non-ASCII escaped. */
export function pyJson (value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(pyJson).join(', ')}]`
  if (typeof value === 'object' && value !== null) {
    return `{${Object.entries(value).map(([key, item]) => `${pyJson(key)}: ${pyJson(item)}`).join(', ')}}`
  }
  return (JSON.stringify(value) ?? 'null').replace(/[\u0080-\uffff]/g, c => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
}

// ---------------------------------------------------------------------------------------------
// Latents and their pictures

/** The picture a latent decodes to: one deterministic image per batch entry, 8 pixels per latent cell. */
function decodeLatent (latent: Latent): Tensor {
  const width = latent.width * 8
  const height = latent.height * 8
  const count = imagesOf(latent)
  const image = allocate(count, height, width, 3)
  const size = width * height * 3
  for (let b = 0; b < count; b++) {
    const pixels = samplePixels(width, height, seedFrom(latent.frames === undefined ? `${latent.seed}:${b}` : `${latent.seed}:${b}:video`))
    for (let i = 0; i < size; i++) image.data[b * size + i] = pixels[i] / 255
  }
  return image
}

/** A stand-in encoding of pixels: the latent of the image's size, seeded by a sample of its pixels. */
function encodeImage (image: Tensor, noiseMask = false): Latent {
  const probe = Array.from(image.data.subarray(0, 64)).join(',')
  return { kind: 'LATENT', batch: image.batch, width: Math.floor(image.width / 8), height: Math.floor(image.height / 8), seed: `vae:${seedFrom(`${image.width}x${image.height}:${probe}`)}`, noiseMask }
}

function checkLatentSize (latent: Latent): void {
  if (latent.width < 1 || latent.height < 1) throw new NodeException('RuntimeError', `Input and output sizes should be greater than 0, got latent of ${latent.width}x${latent.height}`)
  if (imagesOf(latent) * latent.width * latent.height * 64 * 3 > MAX_TENSOR_ELEMENTS) throw new NodeException('torch.OutOfMemoryError', OOM_MESSAGE)
}

/** Samples step by step: `progress` on every step and a small preview (1/8 of the size, 8 to 64 px) on some. */
async function sample (ctx: NodeContext, latent: Latent, seed: string, steps: number, denoise = 1): Promise<Latent> {
  const previewEvery = Math.max(1, Math.ceil(steps / 4))
  const width = Math.max(8, Math.min(64, latent.width))
  const height = Math.max(8, Math.min(64, latent.height))
  for (let step = 1; step <= steps; step++) {
    await ctx.wait(ctx.stepMs)
    ctx.progress(step, steps)
    if (step % previewEvery === 0) ctx.preview(encodePng({ width, height, channels: 3, pixels: samplePixels(width, height, seedFrom(`${seed}:${step}`)) }, { level: 1 }))
  }
  return { ...latent, seed: denoise < 1 ? `${latent.seed}>${seed}@${denoise}` : `${seed}`, noiseMask: latent.noiseMask }
}

// ---------------------------------------------------------------------------------------------
// Saving

function pngTexts (ctx: NodeContext): Array<[string, string]> {
  const texts: Array<[string, string]> = [['prompt', pyJson(ctx.prompt)]]
  for (const [key, value] of Object.entries(ctx.extraPngInfo ?? {})) texts.push([key, pyJson(value)])
  return texts
}

function rawImage (images: Tensor, index: number): { width: number, height: number, channels: 1 | 2 | 3 | 4, pixels: Buffer } {
  if (images.channels !== 3 && images.channels !== 4) {
    throw new NodeException('TypeError', `Cannot handle this data type: (1, 1, ${images.channels}), |u1`)
  }
  return { width: images.width, height: images.height, channels: images.channels, pixels: imageBytes(images, index) }
}

function saveImages (images: Tensor, ctx: NodeContext, type: 'output' | 'temp'): NodeResult {
  const results: FileRef[] = []
  for (let i = 0; i < images.batch; i++) {
    const png = encodePng(rawImage(images, i), { level: type === 'output' ? 4 : 1, texts: pngTexts(ctx), up: true })
    results.push(ctx.save(png, 'png', type))
  }
  return { outputs: [images], ui: { images: results } }
}

/** _ui.py SavedImages: `animated` only when more than one image went in. */
const animation = (images: Tensor, file: FileRef): NodeResult =>
  ({ outputs: [], ui: images.batch > 1 ? { images: [file], animated: [true] } : { images: [file] } })

/** _ui.py PreviewVideo: SaveWEBM and SaveVideo answer `images` with `animated: [true]`. */
const video = (file: FileRef): NodeResult => ({ outputs: [], ui: { images: [file], animated: [true] } })

/** ComfyUI's WebP EXIF: `prompt:<json>` in Model (0x0110), extra_pnginfo entries from Make (0x010F) downwards. */
function webpExif (ctx: NodeContext): Record<string, string> {
  const exif: Record<string, string> = { Model: `prompt:${pyJson(ctx.prompt)}` }
  const tags = ['Make', 'ImageDescription', 'DocumentName']
  Object.entries(ctx.extraPngInfo ?? {}).slice(0, tags.length).forEach(([key, value], i) => { exif[tags[i]] = `${key}:${pyJson(value)}` })
  return exif
}

/** Container metadata: the prompt and each extra_pnginfo entry as JSON text, as PyAV's `container.metadata` gets them. */
const videoTags = (ctx: NodeContext): Record<string, string> => Object.fromEntries(pngTexts(ctx))

/** One FLAC per batch entry. A VIDEO made without audio gives None, which SaveAudio cannot subscript. */
function saveAudio (audio: Audio | null, ctx: NodeContext, type: 'output' | 'temp'): NodeResult {
  if (audio === null || audio === undefined) throw new NodeException('TypeError', "'NoneType' object is not subscriptable")
  return { outputs: [], ui: { audio: audio.batch.map(channels => ctx.save(encodeFlac(channels, audio.sampleRate), 'flac', type)) } }
}

// ---------------------------------------------------------------------------------------------
// Loading

function loadUpload (name: string, ctx: NodeContext): [Tensor, Tensor] {
  const bytes = ctx.upload(name)
  if (bytes === undefined) throw new NodeException('FileNotFoundError', `[Errno 2] No such file or directory: '/comfyui/input/${name}'`)
  let decoded
  try {
    decoded = decodeImage(bytes)
  } catch (error) {
    throw new NodeException('PIL.UnidentifiedImageError', `cannot identify image file '/comfyui/input/${name}' (${(error as Error).message})`)
  }
  const { width, height, rgba, hasAlpha } = decoded
  const rgb = Buffer.allocUnsafe(width * height * 3)
  for (let p = 0; p < width * height; p++) rgba.copy(rgb, p * 3, p * 4, p * 4 + 3)
  const image = fromBytes(rgb, width, height, 3)
  if (!hasAlpha) return [image, allocate(1, 64, 64, 1)]
  const mask = allocate(1, height, width, 1)
  for (let p = 0; p < width * height; p++) mask.data[p] = 1 - Math.fround(rgba[p * 4 + 3] / 255)
  return [image, mask]
}

// ---------------------------------------------------------------------------------------------
// The runners

const scaleImage = (image: Tensor, method: string, width: number, height: number, crop: string): Tensor => {
  if (width === 0 && height === 0) return image
  const w = width === 0 ? Math.max(1, pyRound(image.width * height / image.height)) : width
  const h = height === 0 ? Math.max(1, pyRound(image.height * width / image.width)) : height
  return commonUpscale(image, w, h, method, crop)
}

const RUNNERS: Record<string, Runner> = {
  CheckpointLoaderSimple: async ({ ckpt_name: name }, ctx) => {
    await ctx.wait(2)
    return out(token('MODEL', name), token('CLIP', name), token('VAE', name))
  },
  LoraLoader: ({ model, clip, lora_name: lora, strength_model: sm, strength_clip: sc }) =>
    out(token('MODEL', `${tokenLabel(model)}+${lora}@${sm}`), token('CLIP', `${tokenLabel(clip)}+${lora}@${sc}`)),
  LoraLoaderModelOnly: ({ model, lora_name: lora, strength_model: sm }) => out(token('MODEL', `${tokenLabel(model)}+${lora}@${sm}`)),
  UpscaleModelLoader: ({ model_name: name }) => out(token('UPSCALE_MODEL', name, { scale: upscaleFactor(name) })),
  CLIPTextEncode: async ({ text, clip }, ctx) => {
    await ctx.wait(1)
    return out(token('CONDITIONING', `${tokenLabel(clip)}:${String(text)}`))
  },
  ControlNetApplyAdvanced: ({ positive, negative, control_net: net }) =>
    out(token('CONDITIONING', `${tokenLabel(positive)}+${tokenLabel(net)}`), token('CONDITIONING', `${tokenLabel(negative)}+${tokenLabel(net)}`)),
  InpaintModelConditioning: ({ positive, negative, pixels, noise_mask: noiseMask }) =>
    out(positive, negative, encodeImage(pixels as Tensor, noiseMask === true)),
  BasicScheduler: ({ scheduler, steps, denoise }) => out(token('SIGMAS', `${scheduler}:${steps}`, { steps: denoise > 0 ? Math.max(1, Math.round(steps * Math.min(1, denoise))) : 0 })),
  RandomNoise: ({ noise_seed: seed }) => out(token('NOISE', String(seed))),

  EmptyLatentImage: ({ width, height, batch_size: batch }) => out({ kind: 'LATENT', batch, width: Math.floor(width / 8), height: Math.floor(height / 8), seed: 'empty' } satisfies Latent),
  EmptyHunyuanLatentVideo: ({ width, height, length, batch_size: batch }) => out(videoLatent(width, height, length, batch)),
  WanImageToVideo: ({ positive, negative, width, height, length, batch_size: batch, start_image: start }) =>
    out(positive, negative, videoLatent(width, height, length, batch, start === undefined ? 'empty' : encodeImage(start as Tensor).seed)),
  KSampler: async ({ seed, steps, denoise, latent_image: latent }, ctx) => out(await sample(ctx, latent, String(seed), steps, denoise)),
  KSamplerAdvanced: async ({ noise_seed: seed, steps, start_at_step: start, end_at_step: end, latent_image: latent }, ctx) =>
    out(await sample(ctx, latent, String(seed), Math.max(0, Math.min(steps, end) - start))),
  SamplerCustomAdvanced: async ({ noise, sigmas, latent_image: latent }, ctx) => {
    const result = await sample(ctx, latent, tokenLabel(noise), (sigmas as Token).steps ?? 1)
    return out(result, result)
  },
  VAEDecode: async ({ samples }, ctx) => {
    await ctx.wait(1)
    if ((samples as Latent).audio === true) throw new NodeException('RuntimeError', 'Given groups=1, weight of size [512, 4, 3, 3], expected input to have 4 channels, but got 64 channels instead')
    checkLatentSize(samples)
    return out(decodeLatent(samples))
  },
  VAEDecodeTiled: ({ samples }) => {
    checkLatentSize(samples)
    return out(decodeLatent(samples))
  },
  VAEEncode: ({ pixels }) => out(encodeImage(pixels)),
  VAEEncodeTiled: ({ pixels }) => out(encodeImage(pixels)),
  VAEEncodeForInpaint: ({ pixels }) => out(encodeImage(pixels, true)),
  SetLatentNoiseMask: ({ samples }) => out({ ...samples, noiseMask: true }),
  LatentUpscale: ({ samples, width, height }) => {
    if (width === 0 && height === 0) return out(samples)
    const w = width === 0 ? Math.max(64, pyRound(samples.width * Math.max(64, height) / samples.height)) : Math.max(64, width)
    const h = height === 0 ? Math.max(64, pyRound(samples.height * Math.max(64, width) / samples.width)) : Math.max(64, height)
    return out({ ...samples, width: Math.floor(w / 8), height: Math.floor(h / 8) })
  },
  LatentUpscaleBy: ({ samples, scale_by: scale }) => out({ ...samples, width: pyRound(samples.width * scale), height: pyRound(samples.height * scale) }),
  LatentComposite: ({ samples_to: to, samples_from: from }) => out({ ...to, seed: `${to.seed}|${from.seed}` }),
  LatentBlend: ({ samples1: a, samples2: b }) => out({ ...a, seed: `${a.seed}|${b.seed}` }),
  LatentCrop: ({ samples, width, height, x, y }) => {
    const left = Math.min(Math.floor(x / 8), samples.width - 8)
    const top = Math.min(Math.floor(y / 8), samples.height - 8)
    const w = Math.max(0, Math.min(samples.width, left + Math.floor(width / 8)) - Math.max(0, left))
    const h = Math.max(0, Math.min(samples.height, top + Math.floor(height / 8)) - Math.max(0, top))
    return out({ ...samples, width: w, height: h, seed: `${samples.seed}#${x},${y}` })
  },
  LatentFlip: ({ samples, flip_method: how }) => out({ ...samples, seed: `${samples.seed}~${how}` }),
  LatentRotate: ({ samples, rotation }) => out(rotation === '90 degrees' || rotation === '270 degrees'
    ? { ...samples, width: samples.height, height: samples.width, seed: `${samples.seed}~${rotation}` }
    : { ...samples, seed: `${samples.seed}~${rotation}` }),
  LatentFromBatch: ({ samples, batch_index: index, length }) => {
    const start = Math.max(0, Math.min(samples.batch - 1, index))
    return out({ ...samples, batch: Math.min(samples.batch - start, length), seed: `${samples.seed}[${start}]` })
  },
  RepeatLatentBatch: ({ samples, amount }) => out({ ...samples, batch: samples.batch * amount }),

  SaveImage: ({ images }, ctx) => saveImages(images, ctx, 'output'),
  PreviewImage: ({ images }, ctx) => saveImages(images, ctx, 'temp'),
  SaveAnimatedPNG: ({ images, fps, compress_level: level }, ctx) => {
    const frames = Array.from({ length: images.batch }, (_, i) => rawImage(images, i))
    const png = encodeApng(frames, Math.trunc(1000 / fps), { level, up: true, comf: pngTexts(ctx) })
    return animation(images, ctx.save(png, 'png', 'output'))
  },
  SaveAnimatedWEBP: async ({ images, fps, lossless, quality, method }, ctx) => {
    const webp = await encodeAnimatedWebp(images, Math.trunc(1000 / fps), { lossless: lossless === true, quality, effort: WEBP_METHODS[method] ?? 4, exif: webpExif(ctx) })
    return animation(images, ctx.save(webp, 'webp', 'output'))
  },
  SaveWEBM: async ({ images, fps, crf }, ctx) => video(ctx.save(await encodeWebm(images, fps, crf, videoTags(ctx)), 'webm', 'output')),
  SaveVideo: async ({ video: value }, ctx) => video(ctx.save(await encodeMp4(value as Video, videoTags(ctx)), 'mp4', 'output')),
  CreateVideo: ({ images, fps, audio }) => out({ kind: 'VIDEO', images, fps, audio: audio ?? null } satisfies Video),
  GetVideoComponents: ({ video: value }) => out((value as Video).images, (value as Video).audio, (value as Video).fps),
  // websocket_image_save.py: every image goes out as a binary frame, with progress 0 … n-1 (observed finding 29).
  SaveImageWebsocket: ({ images }, ctx) => {
    for (let i = 0; i < images.batch; i++) {
      ctx.progress(i, images.batch)
      ctx.preview(encodePng(rawImage(images, i), { level: 1 }))
    }
    return { outputs: [] }
  },
  LoadImage: ({ image }, ctx) => out(...loadUpload(image, ctx)),
  LoadImageMask: ({ image, channel }, ctx) => {
    const [pixels, mask] = loadUpload(image, ctx)
    return out(channel === 'alpha' ? mask : imageToMask(pixels, channel))
  },
  EmptyImage: ({ width, height, batch_size: batch, color }) => out(emptyImage(width, height, batch, color)),
  ImageScale: ({ image, upscale_method: method, width, height, crop }) => out(scaleImage(image, method, width, height, crop)),
  ImageScaleBy: ({ image, upscale_method: method, scale_by: scale }) =>
    out(commonUpscale(image, pyRound(image.width * scale), pyRound(image.height * scale), method, 'disabled')),
  ImageScaleToTotalPixels: ({ image, upscale_method: method, megapixels }) => {
    const scale = Math.sqrt(megapixels * 1024 * 1024 / (image.width * image.height))
    return out(commonUpscale(image, pyRound(image.width * scale), pyRound(image.height * scale), method, 'disabled'))
  },
  ImageUpscaleWithModel: async ({ upscale_model: model, image }, ctx) => {
    await ctx.wait(ctx.stepMs)
    const scale = (model as Token).scale ?? 4
    const scaled = commonUpscale(image, image.width * scale, image.height * scale, 'bicubic', 'disabled')
    for (let i = 0; i < scaled.data.length; i++) scaled.data[i] = Math.min(1, Math.max(0, scaled.data[i]))
    return out(scaled)
  },
  ImageInvert: ({ image }) => out(invertImage(image)),
  ImageBatch: ({ image1, image2 }) => out(batchImages(image1, image2)),
  ImagePadForOutpaint: ({ image, left, top, right, bottom, feathering }) => out(...padForOutpaint(image, left, top, right, bottom, feathering)),
  ImageCrop: ({ image, width, height, x, y }) => out(cropImage(image, width, height, x, y)),
  ImageBlend: ({ image1, image2, blend_factor: factor, blend_mode: mode }) => out(blendImages(image1, image2, factor, mode)),
  ImageToMask: ({ image, channel }) => out(imageToMask(image, channel)),
  MaskToImage: ({ mask }) => out(maskToImage(mask)),
  SolidMask: ({ value, width, height }) => out(solidMask(value, width, height)),
  InvertMask: ({ mask }) => out(invertAll(mask)),
  CropMask: ({ mask, x, y, width, height }) => {
    const x0 = Math.min(x, mask.width)
    const y0 = Math.min(y, mask.height)
    return out(slice(mask, x0, y0, Math.min(x0 + width, mask.width) - x0, Math.min(y0 + height, mask.height) - y0))
  },
  ThresholdMask: ({ mask, value }) => {
    const result = allocate(mask.batch, mask.height, mask.width, 1)
    for (let i = 0; i < result.data.length; i++) result.data[i] = mask.data[i] > value ? 1 : 0
    return out(result)
  },
  ImageFlip: ({ image, flip_method: method }) => out(transform(image, String(method).startsWith('x') ? 'vertical' : 'horizontal')),
  ImageRotate: ({ image, rotation }) => {
    const turns: Record<string, 'rot90' | 'rot180' | 'rot270'> = { '90 degrees': 'rot90', '180 degrees': 'rot180', '270 degrees': 'rot270' }
    return out(turns[rotation] === undefined ? image : transform(image, turns[rotation]))
  },
  GetImageSize: ({ image }) => out(image.width, image.height, image.batch),
  RepeatImageBatch: ({ image, amount }) => out(repeatBatch(image, amount)),
  ImageFromBatch: ({ image, batch_index: index, length }) => out(fromBatch(image, index, length)),
  ImageCompositeMasked: ({ destination, source, x, y, resize_source: resize, mask }) => out(compositeImages(destination, source, x, y, resize === true, mask)),
  FeatherMask: ({ mask, left, top, right, bottom }) => out(featherMask(mask, left, top, right, bottom)),
  MaskComposite: ({ destination, source, x, y, operation }) => out(compositeMasks(destination, source, x, y, operation)),
  GrowMask: ({ mask, expand, tapered_corners: tapered }) => out(growMask(mask, expand, tapered === true)),

  EmptyLatentAudio: ({ seconds, batch_size: batch }) =>
    out({ kind: 'LATENT', batch, width: pyRound(seconds * AUDIO_RATE / AUDIO_STEP), height: 1, seed: 'empty', audio: true } satisfies Latent),
  VAEDecodeAudio: ({ samples }) => {
    const latent = samples as Latent
    if (latent.batch * latent.width * AUDIO_STEP * 2 > MAX_TENSOR_ELEMENTS) throw new NodeException('torch.OutOfMemoryError', OOM_MESSAGE)
    const batch = Array.from({ length: latent.batch }, (_, b) => sampleAudio(`${latent.seed}:${b}`, latent.width * AUDIO_STEP, AUDIO_RATE))
    return out({ kind: 'AUDIO', sampleRate: AUDIO_RATE, batch } satisfies Audio)
  },
  VAEEncodeAudio: ({ audio }) => {
    const value = audio as Audio
    const samples = value.batch[0]?.[0]?.length ?? 0
    return out({ kind: 'LATENT', batch: value.batch.length, width: Math.max(1, Math.round(samples / AUDIO_STEP)), height: 1, seed: `audio:${samples}`, audio: true } satisfies Latent)
  },
  SaveAudio: ({ audio }, ctx) => saveAudio(audio, ctx, 'output'),
  PreviewAudio: ({ audio }, ctx) => saveAudio(audio, ctx, 'temp'),

  PrimitiveInt: ({ value }) => out(value),
  PrimitiveFloat: ({ value }) => out(value),
  PrimitiveString: ({ value }) => out(value),
  PrimitiveStringMultiline: ({ value }) => out(value),
  PrimitiveBoolean: ({ value }) => out(value)
}
// SD3's empty latent is SD1's with 16 channels, which the simulator does not carry.
RUNNERS.EmptySD3LatentImage = RUNNERS.EmptyLatentImage

/**
 * Runs one node. Classes without a runner of their own pass their inputs on by type: the first input declared
 * with an output's type (conditioning through a transform, an image through a filter), else a token labelled
 * with the node and its widget values.
 */
export async function runNode (classType: string, types: { inputs: Record<string, string>, outputs: string[] }, args: Args, ctx: NodeContext): Promise<NodeResult> {
  const runner = RUNNERS[classType]
  if (runner !== undefined) return await runner(args, ctx)
  const widgets = Object.entries(args).filter(([, v]) => typeof v !== 'object' || v === null).map(([k, v]) => `${k}=${String(v)}`).join(',')
  return out(...types.outputs.map((type, slot) => {
    const passed = Object.keys(args).find(name => types.inputs[name] === type && args[name] !== undefined)
    return passed !== undefined ? args[passed] : token(type, `${classType}#${slot}(${widgets})`)
  }))
}

/** `str(value)` of a node input as execution_error's current_inputs shows it. */
export function formatInput (value: unknown, type: string): unknown {
  if (value === null || value === undefined) return null
  if (typeof value !== 'object') return value
  if (type === 'IMAGE' || type === 'MASK') return describe(value as Tensor, type)
  if ((value as Latent).kind === 'LATENT') {
    const l = value as Latent
    return l.frames === undefined ? `{'samples': tensor(shape=(${l.batch}, 4, ${l.height}, ${l.width}))}` : `{'samples': tensor(shape=(${l.batch}, 16, ${l.frames}, ${l.height}, ${l.width}))}`
  }
  if ((value as Audio).kind === 'AUDIO') {
    const a = value as Audio
    return `{'waveform': tensor(shape=(${a.batch.length}, ${a.batch[0]?.length ?? 0}, ${a.batch[0]?.[0]?.length ?? 0})), 'sample_rate': ${a.sampleRate}}`
  }
  if ((value as Video).kind === 'VIDEO') return `<comfy_api.latest._input_impl.video_types.VideoFromComponents object at 0x7f${seedFrom(`${(value as Video).fps}`).toString(16).padStart(8, '0')}>`
  const { kind = 'object', label = '' } = value as Partial<Token>
  return `<comfy.${kind.toLowerCase()} object at 0x7f${seedFrom(label).toString(16).padStart(8, '0')}>`
}

