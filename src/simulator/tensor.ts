/**
 * Pixel tensors and the model-free image operations of ComfyUI's core nodes, computed the way ComfyUI computes
 * them: an IMAGE is float32 [batch, height, width, channels] in 0..1 and a MASK is float32 [batch, height, width]
 * (here a tensor with one channel). Values live in Float32Arrays, so every stored value is rounded to float32 as
 * torch rounds it; arithmetic that torch does in one float32 operation is done in double and rounded once.
 */

export interface Tensor {
  batch: number
  height: number
  width: number
  channels: number
  data: Float32Array
}

/** Past this many float32 values one tensor does not fit the simulated GPU (about 256 MB). */
export const MAX_TENSOR_ELEMENTS = 64 * 1024 * 1024

/** A Python exception raised by a node: its type name and message (as `str(ex)`). */
export class NodeException extends Error {
  constructor (readonly exceptionType: string, message: string) {
    super(message)
  }
}

export const OOM_MESSAGE = 'Allocation on device\nThe GPU ran out of memory while running this node. Try a smaller image size or batch size.'

export function allocate (batch: number, height: number, width: number, channels: number, fill = 0): Tensor {
  const size = batch * height * width * channels
  if (size > MAX_TENSOR_ELEMENTS) throw new NodeException('torch.OutOfMemoryError', OOM_MESSAGE)
  const data = new Float32Array(size)
  if (fill !== 0) data.fill(fill)
  return { batch, height, width, channels, data }
}

const at = (t: Tensor, b: number, y: number, x: number, c: number): number => ((b * t.height + y) * t.width + x) * t.channels + c

/** EmptyImage: `torch.full(..., ((color >> 16) & 0xFF) / 0xFF)` per channel. */
export function emptyImage (width: number, height: number, batch: number, color: number): Tensor {
  const image = allocate(batch, height, width, 3)
  const rgb = [(color >> 16) & 0xff, (color >> 8) & 0xff, color & 0xff].map(v => v / 0xff)
  for (let i = 0; i < image.data.length; i += 3) {
    image.data[i] = rgb[0]
    image.data[i + 1] = rgb[1]
    image.data[i + 2] = rgb[2]
  }
  return image
}

/** ImageInvert: `1.0 - image`, keeping an alpha channel as it is. */
export function invertImage (image: Tensor): Tensor {
  const out = allocate(image.batch, image.height, image.width, image.channels)
  for (let i = 0; i < out.data.length; i++) {
    out.data[i] = image.channels === 4 && i % 4 === 3 ? image.data[i] : 1 - image.data[i]
  }
  return out
}

/** InvertMask: `1.0 - mask`. */
export function invertAll (mask: Tensor): Tensor {
  const out = allocate(mask.batch, mask.height, mask.width, mask.channels)
  for (let i = 0; i < out.data.length; i++) out.data[i] = 1 - mask.data[i]
  return out
}

/** SolidMask: `torch.full((1, height, width), value)`. */
export function solidMask (value: number, width: number, height: number): Tensor {
  return allocate(1, height, width, 1, value)
}

/** A window of a tensor, like `t[:, y:y+height, x:x+width]` with in-range bounds. */
export function slice (t: Tensor, x: number, y: number, width: number, height: number): Tensor {
  const out = allocate(t.batch, height, width, t.channels)
  const row = width * t.channels
  for (let b = 0; b < t.batch; b++) {
    for (let j = 0; j < height; j++) {
      const from = at(t, b, y + j, x, 0)
      out.data.set(t.data.subarray(from, from + row), at(out, b, j, 0, 0))
    }
  }
  return out
}

/** Python slicing `a[start:stop]` on an axis of length n, for non-negative start and stop. */
const sliceBounds = (start: number, stop: number, n: number): [number, number] => {
  const from = Math.min(start, n)
  return [from, Math.max(from, Math.min(stop, n))]
}

/** ImageCrop: x and y are clamped to the last pixel, the window to the image. */
export function cropImage (image: Tensor, width: number, height: number, x: number, y: number): Tensor {
  const left = Math.min(x, image.width - 1)
  const top = Math.min(y, image.height - 1)
  const [x0, x1] = sliceBounds(left, left + width, image.width)
  const [y0, y1] = sliceBounds(top, top + height, image.height)
  return slice(image, x0, y0, x1 - x0, y1 - y0)
}

/** ImageToMask: one channel of the image; the alpha of an RGB image does not exist (IndexError, as in torch). */
export function imageToMask (image: Tensor, channel: string): Tensor {
  const index = ['red', 'green', 'blue', 'alpha'].indexOf(channel)
  if (index >= image.channels) {
    throw new NodeException('IndexError', `index ${index} is out of bounds for dimension 3 with size ${image.channels}`)
  }
  const out = allocate(image.batch, image.height, image.width, 1)
  for (let i = 0; i < out.data.length; i++) out.data[i] = image.data[i * image.channels + index]
  return out
}

/** MaskToImage: the mask repeated into three channels. */
export function maskToImage (mask: Tensor): Tensor {
  const out = allocate(mask.batch, mask.height, mask.width, 3)
  for (let i = 0; i < mask.data.length; i++) out.data.fill(mask.data[i], i * 3, i * 3 + 3)
  return out
}

/** Concatenates two tensors of the same height, width and channels along the batch. */
export function concat (a: Tensor, b: Tensor): Tensor {
  const out = allocate(a.batch + b.batch, a.height, a.width, a.channels)
  out.data.set(a.data)
  out.data.set(b.data, a.data.length)
  return out
}

/** `torch.nn.functional.pad(image, (0, 1), value=1.0)`: an opaque alpha channel. */
export function withAlpha (image: Tensor): Tensor {
  const out = allocate(image.batch, image.height, image.width, image.channels + 1, 1)
  const pixels = image.batch * image.height * image.width
  for (let p = 0; p < pixels; p++) {
    for (let c = 0; c < image.channels; c++) out.data[p * out.channels + c] = image.data[p * image.channels + c]
  }
  return out
}

/** ImageBatch: the channel counts are matched with an opaque alpha, image2 is fitted to image1 (bilinear, center crop). */
export function batchImages (image1: Tensor, image2: Tensor): Tensor {
  let a = image1
  let b = image2
  if (a.channels !== b.channels) {
    if (a.channels > b.channels) b = withAlpha(b)
    else a = withAlpha(a)
  }
  if (a.height !== b.height || a.width !== b.width || a.channels !== b.channels) b = commonUpscale(b, a.width, a.height, 'bilinear', 'center')
  return concat(a, b)
}

/** ImagePadForOutpaint: a 0.5-grey canvas around the image, and a mask that is 1 outside and feathered inside. */
export function padForOutpaint (image: Tensor, left: number, top: number, right: number, bottom: number, feathering: number): [Tensor, Tensor] {
  const { batch, height: d2, width: d3, channels } = image
  const canvas = allocate(batch, d2 + top + bottom, d3 + left + right, channels, 0.5)
  for (let b = 0; b < batch; b++) {
    for (let y = 0; y < d2; y++) {
      const from = at(image, b, y, 0, 0)
      canvas.data.set(image.data.subarray(from, from + d3 * channels), at(canvas, b, y + top, left, 0))
    }
  }
  const mask = allocate(1, canvas.height, canvas.width, 1, 1)
  const feather = feathering > 0 && feathering * 2 < d2 && feathering * 2 < d3
  for (let i = 0; i < d2; i++) {
    for (let j = 0; j < d3; j++) {
      let value = 0
      if (feather) {
        const d = Math.min(top !== 0 ? i : d2, bottom !== 0 ? d2 - i : d2, left !== 0 ? j : d3, right !== 0 ? d3 - j : d3)
        if (d < feathering) {
          const v = (feathering - d) / feathering
          value = v * v
        }
      }
      mask.data[(i + top) * mask.width + j + left] = value
    }
  }
  return [canvas, mask]
}

/**
 * ImageFlip (`torch.flip` on the height axis for "x-axis", the width axis for "y-axis") and ImageRotate
 * (`torch.rot90(image, k, dims=[2, 1])`: k quarter turns clockwise).
 */
export function transform (image: Tensor, map: 'vertical' | 'horizontal' | 'rot90' | 'rot180' | 'rot270'): Tensor {
  const turn = map === 'rot90' || map === 'rot270'
  const out = allocate(image.batch, turn ? image.width : image.height, turn ? image.height : image.width, image.channels)
  for (let b = 0; b < image.batch; b++) {
    for (let y = 0; y < out.height; y++) {
      for (let x = 0; x < out.width; x++) {
        // the source pixel of output (x, y)
        const [sx, sy] = map === 'vertical' ? [x, image.height - 1 - y]
          : map === 'horizontal' ? [image.width - 1 - x, y]
            : map === 'rot180' ? [image.width - 1 - x, image.height - 1 - y]
              : map === 'rot90' ? [y, image.height - 1 - x]
                : [image.width - 1 - y, x]
        for (let c = 0; c < image.channels; c++) out.data[at(out, b, y, x, c)] = image.data[at(image, b, sy, sx, c)]
      }
    }
  }
  return out
}

/** comfy.utils.repeat_to_batch_size: the first entries, or the batch tiled until it is long enough. */
function repeatToBatch (t: Tensor, batch: number): Tensor {
  if (t.batch === batch) return t
  const out = allocate(batch, t.height, t.width, t.channels)
  const size = t.height * t.width * t.channels
  for (let b = 0; b < batch; b++) out.data.set(t.data.subarray((b % t.batch) * size, (b % t.batch + 1) * size), b * size)
  return out
}

/** RepeatImageBatch: `image.repeat((amount, 1, 1, 1))`. */
export function repeatBatch (image: Tensor, amount: number): Tensor {
  return repeatToBatch(image, image.batch * amount)
}

/** ImageFromBatch: `image[i:i+length]` with the index and length clamped to the batch. */
export function fromBatch (image: Tensor, index: number, length: number): Tensor {
  const start = Math.min(image.batch - 1, index)
  const count = Math.min(image.batch - start, length)
  const size = image.height * image.width * image.channels
  const out = allocate(count, image.height, image.width, image.channels)
  out.data.set(image.data.subarray(start * size, (start + count) * size))
  return out
}

/**
 * ImageCompositeMasked (nodes_mask.composite with multiplier 1): source pasted at x, y over a copy of the
 * destination, mixed by the mask (bilinear to the source size) where one is given.
 */
export function compositeImages (destination: Tensor, source: Tensor, x: number, y: number, resize: boolean, mask?: Tensor): Tensor {
  let dest = destination
  let src = source
  if (dest.channels < src.channels) dest = withAlpha(dest)
  else if (dest.channels > src.channels) src = withAlpha(src)
  if (resize) src = commonUpscale(src, dest.width, dest.height, 'bilinear', 'disabled')
  src = repeatToBatch(src, dest.batch)
  const m = mask === undefined ? undefined : repeatToBatch(commonUpscale(mask, src.width, src.height, 'bilinear', 'disabled'), src.batch)
  const left = Math.min(x, dest.width)
  const top = Math.min(y, dest.height)
  const visibleWidth = Math.min(src.width, dest.width - left)
  const visibleHeight = Math.min(src.height, dest.height - top)
  const out = allocate(dest.batch, dest.height, dest.width, dest.channels)
  out.data.set(dest.data)
  for (let b = 0; b < dest.batch; b++) {
    for (let j = 0; j < visibleHeight; j++) {
      for (let i = 0; i < visibleWidth; i++) {
        const weight = m === undefined ? 1 : m.data[at(m, b, j, i, 0)]
        for (let c = 0; c < dest.channels; c++) {
          const target = at(out, b, top + j, left + i, c)
          out.data[target] = f32(f32(weight * src.data[at(src, b, j, i, c)]) + f32(f32(1 - weight) * out.data[target]))
        }
      }
    }
  }
  return out
}

/** FeatherMask: each edge fades in linearly over the given width, left, right, top, bottom in turn. */
export function featherMask (mask: Tensor, left: number, top: number, right: number, bottom: number): Tensor {
  const out = allocate(mask.batch, mask.height, mask.width, 1)
  out.data.set(mask.data)
  const { batch, width, height } = out
  const scaleColumn = (x: number, rate: number): void => {
    for (let b = 0; b < batch; b++) for (let y = 0; y < height; y++) out.data[at(out, b, y, x, 0)] *= f32(rate)
  }
  const scaleRow = (y: number, rate: number): void => {
    for (let b = 0; b < batch; b++) for (let x = 0; x < width; x++) out.data[at(out, b, y, x, 0)] *= f32(rate)
  }
  const [l, r, t, d] = [Math.min(left, width), Math.min(right, width), Math.min(top, height), Math.min(bottom, height)]
  for (let x = 0; x < l; x++) scaleColumn(x, (x + 1) / l)
  for (let x = 0; x < r; x++) scaleColumn(width - 1 - x, (x + 1) / r)
  for (let y = 0; y < t; y++) scaleRow(y, (y + 1) / t)
  for (let y = 0; y < d; y++) scaleRow(height - 1 - y, (y + 1) / d)
  return out
}

/** torch.round: halves to even. */
const roundHalfEven = (v: number): number => pyRound(v)

/** MaskComposite: source combined into a copy of destination at x, y, then clamped to 0..1. */
export function compositeMasks (destination: Tensor, source: Tensor, x: number, y: number, operation: string): Tensor {
  const out = allocate(destination.batch, destination.height, destination.width, 1)
  out.data.set(destination.data)
  const width = Math.max(0, Math.min(x + source.width, destination.width) - x)
  const height = Math.max(0, Math.min(y + source.height, destination.height) - y)
  const ops: Record<string, (a: number, b: number) => number> = {
    multiply: (a, b) => a * b,
    add: (a, b) => a + b,
    subtract: (a, b) => a - b,
    and: (a, b) => Number(roundHalfEven(a) !== 0 && roundHalfEven(b) !== 0),
    or: (a, b) => Number(roundHalfEven(a) !== 0 || roundHalfEven(b) !== 0),
    xor: (a, b) => Number((roundHalfEven(a) !== 0) !== (roundHalfEven(b) !== 0))
  }
  const op = ops[operation]
  for (let b = 0; b < out.batch; b++) {
    const sb = Math.min(b, source.batch - 1)
    for (let j = 0; j < height; j++) {
      for (let i = 0; i < width; i++) {
        const target = at(out, b, y + j, x + i, 0)
        out.data[target] = op(out.data[target], source.data[at(source, sb, j, i, 0)])
      }
    }
  }
  for (let i = 0; i < out.data.length; i++) out.data[i] = Math.min(1, Math.max(0, out.data[i]))
  return out
}

/** GrowMask: grey dilation (or erosion when negative) with a 3x3 cross or square, `|expand|` times, edges repeated. */
export function growMask (mask: Tensor, expand: number, tapered: boolean): Tensor {
  let current = mask
  const offsets = [[0, 0], [-1, 0], [1, 0], [0, -1], [0, 1], ...(tapered ? [] : [[-1, -1], [-1, 1], [1, -1], [1, 1]])]
  const pick = expand < 0 ? Math.min : Math.max
  for (let n = 0; n < Math.abs(expand); n++) {
    const next = allocate(current.batch, current.height, current.width, 1)
    for (let b = 0; b < current.batch; b++) {
      for (let y = 0; y < current.height; y++) {
        for (let x = 0; x < current.width; x++) {
          let value = current.data[at(current, b, y, x, 0)]
          for (const [dy, dx] of offsets) {
            const yy = Math.min(current.height - 1, Math.max(0, y + dy))
            const xx = Math.min(current.width - 1, Math.max(0, x + dx))
            value = pick(value, current.data[at(current, b, yy, xx, 0)])
          }
          next.data[at(next, b, y, x, 0)] = value
        }
      }
    }
    current = next
  }
  return current
}

// ---------------------------------------------------------------------------------------------
// ImageBlend (comfy_extras/nodes_post_processing.py)

export const BLEND_MODES = ['normal', 'multiply', 'screen', 'overlay', 'soft_light', 'difference'] as const

const f32 = Math.fround
const softLightG = (x: number): number => x <= 0.25 ? f32(f32(f32(f32(16 * x) - 12) * x + 4) * x) : f32(Math.sqrt(x))

function blendPixel (a: number, b: number, mode: string): number {
  switch (mode) {
    case 'normal': return b
    case 'multiply': return f32(a * b)
    case 'screen': return f32(1 - f32(f32(1 - a) * f32(1 - b)))
    case 'overlay': return a <= 0.5 ? f32(f32(2 * a) * b) : f32(1 - f32(f32(2 * f32(1 - a)) * f32(1 - b)))
    case 'soft_light':
      return b <= 0.5
        ? f32(a - f32(f32(f32(1 - f32(2 * b)) * a) * f32(1 - a)))
        : f32(a + f32(f32(f32(2 * b) - 1) * f32(softLightG(a) - a)))
    case 'difference': return f32(a - b)
    default: throw new NodeException('ValueError', `Unsupported blend mode: ${mode}`)
  }
}

/** ImageBlend: image2 is fitted to image1 (bicubic, center crop), mixed by mode, then `image1*(1-f) + blended*f`, clamped. */
export function blendImages (image1: Tensor, image2: Tensor, factor: number, mode: string): Tensor {
  let b = image2
  if (b.batch !== image1.batch || b.height !== image1.height || b.width !== image1.width || b.channels !== image1.channels) {
    b = commonUpscale(b, image1.width, image1.height, 'bicubic', 'center')
  }
  if (b.batch !== image1.batch || b.channels !== image1.channels) {
    throw new NodeException('RuntimeError', `The size of tensor a (${image1.channels}) must match the size of tensor b (${b.channels}) at non-singleton dimension 3`)
  }
  const out = allocate(image1.batch, image1.height, image1.width, image1.channels)
  const keep = f32(1 - factor)
  const mix = f32(factor)
  for (let i = 0; i < out.data.length; i++) {
    const a = image1.data[i]
    const v = f32(f32(a * keep) + f32(blendPixel(a, b.data[i], mode) * mix))
    out.data[i] = Math.min(1, Math.max(0, v))
  }
  return out
}

// ---------------------------------------------------------------------------------------------
// Resampling: comfy.utils.common_upscale → torch.nn.functional.interpolate (align_corners=False) or PIL LANCZOS

export const UPSCALE_METHODS = ['nearest-exact', 'bilinear', 'area', 'bicubic', 'lanczos'] as const
export const CROP_METHODS = ['disabled', 'center'] as const

/** Python's round(): halves go to the even neighbour. */
export function pyRound (value: number): number {
  const floor = Math.floor(value)
  const diff = value - floor
  if (diff > 0.5) return floor + 1
  if (diff < 0.5) return floor
  return floor % 2 === 0 ? floor : floor + 1
}

/** common_upscale: optional center crop to the target aspect, then the resampling method. */
export function commonUpscale (t: Tensor, width: number, height: number, method: string, crop: string): Tensor {
  let source = t
  if (crop === 'center') {
    const oldAspect = t.width / t.height
    const newAspect = width / height
    let x = 0
    let y = 0
    if (oldAspect > newAspect) x = pyRound((t.width - t.width * (newAspect / oldAspect)) / 2)
    else if (oldAspect < newAspect) y = pyRound((t.height - t.height * (oldAspect / newAspect)) / 2)
    source = slice(t, x, y, t.width - x * 2, t.height - y * 2)
  }
  if (width < 1 || height < 1 || source.width < 1 || source.height < 1) {
    throw new NodeException('RuntimeError', `Input and output sizes should be greater than 0, but got input (H: ${source.height}, W: ${source.width}) output (H: ${height}, W: ${width})`)
  }
  if (method === 'lanczos') return lanczos(source, width, height)
  return separable(source, width, height, axisWeights(method))
}

/** For each output index: the input indices and their weights along one axis. */
type AxisWeights = (inSize: number, outSize: number) => Array<{ index: number[], weight: number[] }>

/** area_pixel_compute_scale for align_corners=False with no scale factor: computed in float32 by torch. */
const scaleOf = (inSize: number, outSize: number): number => f32(inSize / outSize)

const nearestExact: AxisWeights = (inSize, outSize) => {
  const scale = scaleOf(inSize, outSize)
  return Array.from({ length: outSize }, (_, i) => ({ index: [Math.min(Math.floor(f32((i + 0.5) * scale)), inSize - 1)], weight: [1] }))
}

const bilinear: AxisWeights = (inSize, outSize) => {
  const scale = scaleOf(inSize, outSize)
  return Array.from({ length: outSize }, (_, i) => {
    const source = Math.max(f32(f32(scale * (i + 0.5)) - 0.5), 0)
    const i0 = Math.floor(source)
    const i1 = i0 < inSize - 1 ? i0 + 1 : i0
    const l1 = f32(source - i0)
    return { index: [i0, i1], weight: [f32(1 - l1), l1] }
  })
}

/** adaptive_avg_pool: each output averages the input cells from floor(i*in/out) to ceil((i+1)*in/out). */
const area: AxisWeights = (inSize, outSize) => Array.from({ length: outSize }, (_, i) => {
  const start = Math.floor(i * inSize / outSize)
  const end = Math.ceil((i + 1) * inSize / outSize)
  const index = Array.from({ length: end - start }, (_, k) => start + k)
  return { index, weight: index.map(() => 1 / index.length) }
})

/** Keys' cubic convolution with A = -0.75 (torch's upsample_bicubic2d), border indices clamped. */
const bicubic: AxisWeights = (inSize, outSize) => {
  const scale = scaleOf(inSize, outSize)
  const A = -0.75
  const near = (x: number): number => ((A + 2) * x - (A + 3)) * x * x + 1
  const far = (x: number): number => ((A * x - 5 * A) * x + 8 * A) * x - 4 * A
  return Array.from({ length: outSize }, (_, i) => {
    const source = f32(f32(scale * (i + 0.5)) - 0.5)
    const i0 = Math.floor(source)
    const t = f32(source - i0)
    const clamp = (k: number): number => Math.min(Math.max(k, 0), inSize - 1)
    return { index: [clamp(i0 - 1), clamp(i0), clamp(i0 + 1), clamp(i0 + 2)], weight: [far(t + 1), near(t), near(1 - t), far(2 - t)] }
  })
}

function axisWeights (method: string): AxisWeights {
  switch (method) {
    case 'nearest-exact': return nearestExact
    case 'bilinear': return bilinear
    case 'area': return area
    case 'bicubic': return bicubic
    default: throw new NodeException('NotImplementedError', `Got 4D input, but ${method} mode needs 3D, 4D or 5D input`)
  }
}

/**
 * Resamples with per-axis weights: first along each row into a double-precision buffer, then along each
 * column, rounding to float32 once per output value (the same sums as a 2D kernel, far fewer operations).
 */
function separable (t: Tensor, width: number, height: number, weights: AxisWeights): Tensor {
  const xs = weights(t.width, width)
  const ys = weights(t.height, height)
  const out = allocate(t.batch, height, width, t.channels)
  const { channels } = t
  const inRow = t.width * channels
  const outRow = width * channels
  const rows = new Float64Array(t.height * outRow)
  for (let b = 0; b < t.batch; b++) {
    const source = b * t.height * inRow
    for (let y = 0; y < t.height; y++) {
      for (let x = 0; x < width; x++) {
        const { index, weight } = xs[x]
        for (let c = 0; c < channels; c++) {
          let sum = 0
          for (let i = 0; i < index.length; i++) sum += weight[i] * t.data[source + y * inRow + index[i] * channels + c]
          rows[y * outRow + x * channels + c] = sum
        }
      }
    }
    const target = b * height * outRow
    for (let y = 0; y < height; y++) {
      const { index, weight } = ys[y]
      for (let i = 0; i < outRow; i++) {
        let sum = 0
        for (let j = 0; j < index.length; j++) sum += weight[j] * rows[index[j] * outRow + i]
        out.data[target + y * outRow + i] = sum
      }
    }
  }
  return out
}

/** The 8-bit values ComfyUI hands to PIL: `np.clip(255. * x, 0, 255).astype(np.uint8)`. */
export function toByte (value: number): number {
  const v = f32(255 * value)
  return v >= 255 ? 255 : v > 0 ? Math.trunc(v) : 0
}

/** PIL's LANCZOS resize of 8-bit images (support 3, fixed-point coefficients, horizontal pass first). */
function lanczos (t: Tensor, width: number, height: number): Tensor {
  const PRECISION = 22
  const sinc = (x: number): number => x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x)
  const filter = (x: number): number => -3 <= x && x < 3 ? sinc(x) * sinc(x / 3) : 0
  const coefficients = (inSize: number, outSize: number): Array<{ start: number, k: number[] }> => {
    const scale = inSize / outSize
    const filterScale = Math.max(scale, 1)
    const support = 3 * filterScale
    return Array.from({ length: outSize }, (_, i) => {
      const center = (i + 0.5) * scale
      const start = Math.max(Math.trunc(center - support + 0.5), 0)
      const end = Math.min(Math.trunc(center + support + 0.5), inSize)
      const raw = Array.from({ length: end - start }, (_, k) => filter((k + start - center + 0.5) / filterScale))
      const total = raw.reduce((a, v) => a + v, 0)
      const k = raw.map(v => {
        const n = total === 0 ? v : v / total
        return Math.trunc(n < 0 ? -0.5 + n * (1 << PRECISION) : 0.5 + n * (1 << PRECISION))
      })
      return { start, k }
    })
  }
  const clip8 = (acc: number): number => Math.min(255, Math.max(0, Math.floor(acc / (1 << PRECISION))))
  const { batch, channels } = t
  const out = allocate(batch, height, width, channels)
  const xs = t.width === width ? undefined : coefficients(t.width, width)
  const ys = t.height === height ? undefined : coefficients(t.height, height)
  for (let b = 0; b < batch; b++) {
    // 8-bit source, as PIL sees it
    let plane = Uint8Array.from({ length: t.height * t.width * channels }, (_, i) => toByte(t.data[b * t.height * t.width * channels + i]))
    let w = t.width
    if (xs !== undefined) {
      const next = new Uint8Array(t.height * width * channels)
      for (let y = 0; y < t.height; y++) {
        for (let x = 0; x < width; x++) {
          const { start, k } = xs[x]
          for (let c = 0; c < channels; c++) {
            let acc = 1 << (PRECISION - 1)
            for (let i = 0; i < k.length; i++) acc += plane[(y * w + start + i) * channels + c] * k[i]
            next[(y * width + x) * channels + c] = clip8(acc)
          }
        }
      }
      plane = next
      w = width
    }
    if (ys !== undefined) {
      const next = new Uint8Array(height * w * channels)
      for (let y = 0; y < height; y++) {
        const { start, k } = ys[y]
        for (let x = 0; x < w; x++) {
          for (let c = 0; c < channels; c++) {
            let acc = 1 << (PRECISION - 1)
            for (let i = 0; i < k.length; i++) acc += plane[((start + i) * w + x) * channels + c] * k[i]
            next[(y * w + x) * channels + c] = clip8(acc)
          }
        }
      }
      plane = next
    }
    const base = b * height * width * channels
    for (let i = 0; i < plane.length; i++) out.data[base + i] = plane[i] / 255
  }
  return out
}

// ---------------------------------------------------------------------------------------------
// 8-bit conversion (SaveImage, LoadImage)

/** One image of the batch as 8-bit interleaved pixels, the way SaveImage converts it for PIL. */
export function imageBytes (image: Tensor, index: number): Buffer {
  const size = image.height * image.width * image.channels
  const out = Buffer.allocUnsafe(size)
  const base = index * size
  for (let i = 0; i < size; i++) out[i] = toByte(image.data[base + i])
  return out
}

/** 8-bit pixels to an IMAGE: `np.array(image).astype(np.float32) / 255.0`. */
export function fromBytes (pixels: Uint8Array, width: number, height: number, channels: number, batch = 1): Tensor {
  const out = allocate(batch, height, width, channels)
  for (let i = 0; i < out.data.length; i++) out.data[i] = pixels[i] / 255
  return out
}

/** A short `str(tensor)` for error reports (current_inputs). */
export function describe (t: Tensor, kind: 'IMAGE' | 'MASK'): string {
  const shape = kind === 'MASK' ? [t.batch, t.height, t.width] : [t.batch, t.height, t.width, t.channels]
  const first = Array.from(t.data.subarray(0, Math.min(3, t.data.length)), v => v.toFixed(4))
  return `tensor([${first.join(', ')}${t.data.length > 3 ? ', ...' : ''}], shape=(${shape.join(', ')}))`
}
