/**
 * The model-free core nodes compute the pixels ComfyUI computes. Every expected value here is worked out in the
 * test from ComfyUI's formulas (float32 tensors, `np.clip(255. * x, 0, 255).astype(np.uint8)` on save), and the
 * simulator's PNGs are decoded with pngjs, not with the simulator's own code.
 */
import t from 'tap'
import { PNG } from 'pngjs'
import { download, startSim, submit, waitForStatus, type Sim } from './fixtures/helpers.js'

const f32 = Math.fround
/** What SaveImage writes for a float32 value. */
const byte = (value: number): number => Math.min(255, Math.max(0, Math.trunc(f32(255 * f32(value)))))
/** What LoadImage makes of an 8-bit value. */
const loaded = (value: number): number => f32(value / 255)

interface Decoded { width: number, height: number, rgba: Buffer }

async function run (sim: Sim, prompt: Record<string, unknown>): Promise<any> {
  const id = await submit(sim, { prompt })
  return await waitForStatus(sim, id, ['completed', 'failed'])
}

async function images (sim: Sim, prompt: Record<string, unknown>, node = '9'): Promise<Decoded[]> {
  const done = await run(sim, prompt)
  if (done.status !== 'completed') throw new Error(`job failed: ${JSON.stringify(done.execution_error)}`)
  const out: Decoded[] = []
  for (const item of done.outputs[node].images) {
    const png = PNG.sync.read((await download(sim, item)).bytes)
    out.push({ width: png.width, height: png.height, rgba: png.data })
  }
  return out
}

const pixel = (image: Decoded, x: number, y: number): number[] => [...image.rgba.subarray((y * image.width + x) * 4, (y * image.width + x) * 4 + 3)]
const save = (from: string): Record<string, unknown> => ({ 9: { class_type: 'SaveImage', inputs: { images: [from, 0], filename_prefix: 'test' } } })

/** Uploads an RGB(A) image given as a function of x, y; returns its name for LoadImage. */
async function upload (sim: Sim, width: number, height: number, color: (x: number, y: number) => number[], alpha = false): Promise<string> {
  const png = new PNG({ width, height })
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const [r, g, b, a = 255] = color(x, y)
      png.data.set([r, g, b, a], (y * width + x) * 4)
    }
  }
  const bytes = PNG.sync.write(png, alpha ? { colorType: 6 } : { colorType: 2 })
  const form = new FormData()
  form.append('image', new Blob([bytes]), 'input.png')
  const { status, body } = await sim.json('/api/upload/image', { method: 'POST', body: form })
  if (status !== 200) throw new Error(`upload failed: ${status}`)
  return body.name
}

/** A pattern with a different value in every pixel and channel. */
const pattern = (x: number, y: number): number[] => [(x * 37 + y * 11) % 256, (x * 5 + y * 53 + 17) % 256, (x * y * 7 + 90) % 256]

t.test('EmptyImage and ImageInvert: solid colours, exactly', async t => {
  const sim = await startSim(t)
  // inverting in float32 and truncating on save gives 254 - c, not 255 - c, for about half the values (0x80 among them)
  for (const color of [0x336699, 0x01fe80, 0xffffff, 0]) {
    const channels = [(color >> 16) & 0xff, (color >> 8) & 0xff, color & 0xff]
    const plain = channels.map(c => byte(c / 255))
    const inverted = channels.map(c => byte(1 - f32(c / 255)))
    const prompt = {
      1: { class_type: 'EmptyImage', inputs: { width: 5, height: 3, batch_size: 2, color } },
      2: { class_type: 'ImageInvert', inputs: { image: ['1', 0] } },
      ...save('1'),
      10: { class_type: 'SaveImage', inputs: { images: ['2', 0], filename_prefix: 'inv' } }
    }
    const done = await run(sim, prompt)
    t.equal(done.outputs['9'].images.length, 2, 'one file per batch entry')
    for (const [node, expected] of [['9', plain], ['10', inverted]] as const) {
      const png = PNG.sync.read((await download(sim, done.outputs[node].images[0])).bytes)
      t.match(png, { width: 5, height: 3 })
      const all = new Set<string>()
      for (let i = 0; i < 15; i++) all.add(String([...png.data.subarray(i * 4, i * 4 + 3)]))
      t.same([...all], [String(expected)], `${color.toString(16)} node ${node}`)
    }
  }
})

t.test('LoadImage and ImageCrop: uploaded pixels come back exactly, cropped like image[:, y:y+h, x:x+w]', async t => {
  const sim = await startSim(t)
  const name = await upload(sim, 12, 9, pattern)
  const info = (await sim.json('/api/object_info')).body
  t.ok(info.LoadImage.input.required.image[0].includes(name), 'LoadImage lists the account\'s uploads')
  const crops = [
    { x: 3, y: 2, width: 5, height: 4, expect: { x0: 3, y0: 2, w: 5, h: 4 } },
    { x: 10, y: 7, width: 6, height: 6, expect: { x0: 10, y0: 7, w: 2, h: 2 } }, // the window is cut at the border
    { x: 40, y: 40, width: 3, height: 3, expect: { x0: 11, y0: 8, w: 1, h: 1 } } // x, y are clamped to the last pixel
  ]
  for (const crop of crops) {
    const [image] = await images(sim, {
      1: { class_type: 'LoadImage', inputs: { image: name } },
      2: { class_type: 'ImageCrop', inputs: { image: ['1', 0], width: crop.width, height: crop.height, x: crop.x, y: crop.y } },
      ...save('2')
    })
    const { x0, y0, w, h } = crop.expect
    t.match(image, { width: w, height: h })
    let same = true
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        if (String(pixel(image, x, y)) !== String(pattern(x0 + x, y0 + y).map(v => byte(loaded(v))))) same = false
      }
    }
    t.ok(same, `crop at ${crop.x},${crop.y}`)
  }
})

t.test('ImageScale and ImageScaleBy: nearest-exact exactly, bilinear within 1', async t => {
  const sim = await startSim(t)
  const [inW, inH] = [7, 5]
  const name = await upload(sim, inW, inH, pattern)
  const source = (x: number, y: number): number[] => pattern(x, y).map(loaded)

  // torch nearest-exact: src = min(floor((dst + 0.5) * (in / out)), in - 1), the scale in float32
  const nearest = (dst: number, inSize: number, outSize: number): number => Math.min(Math.floor(f32((dst + 0.5) * f32(inSize / outSize))), inSize - 1)
  const [near] = await images(sim, {
    1: { class_type: 'LoadImage', inputs: { image: name } },
    2: { class_type: 'ImageScale', inputs: { image: ['1', 0], upscale_method: 'nearest-exact', width: 17, height: 3, crop: 'disabled' } },
    ...save('2')
  })
  t.match(near, { width: 17, height: 3 })
  let exact = true
  for (let y = 0; y < 3; y++) for (let x = 0; x < 17; x++) if (String(pixel(near, x, y)) !== String(source(nearest(x, inW, 17), nearest(y, inH, 3)).map(byte))) exact = false
  t.ok(exact, 'nearest-exact picks the same source pixels as torch')

  // bilinear, align_corners=False: src = max((dst + 0.5) * in / out - 0.5, 0), two taps per axis
  const taps = (dst: number, inSize: number, outSize: number): Array<[number, number]> => {
    const src = Math.max((dst + 0.5) * inSize / outSize - 0.5, 0)
    const i0 = Math.floor(src)
    const i1 = Math.min(i0 + 1, inSize - 1)
    return [[i0, 1 - (src - i0)], [i1, src - i0]]
  }
  const [bilinear] = await images(sim, {
    1: { class_type: 'LoadImage', inputs: { image: name } },
    2: { class_type: 'ImageScale', inputs: { image: ['1', 0], upscale_method: 'bilinear', width: 16, height: 11, crop: 'disabled' } },
    ...save('2')
  })
  let worst = 0
  for (let y = 0; y < 11; y++) {
    for (let x = 0; x < 16; x++) {
      const expected = [0, 0, 0]
      for (const [sy, wy] of taps(y, inH, 11)) for (const [sx, wx] of taps(x, inW, 16)) source(sx, sy).forEach((v, c) => { expected[c] += v * wx * wy })
      pixel(bilinear, x, y).forEach((v, c) => { worst = Math.max(worst, Math.abs(v - byte(expected[c]))) })
    }
  }
  t.ok(worst <= 1, `bilinear is within 1 of torch (worst ${worst})`)

  // width 0 keeps the aspect ratio with Python's round(); ScaleBy rounds halves to even: 7 * 2.5 = 17.5 -> 18, 5 * 2.5 = 12.5 -> 12
  const [aspect] = await images(sim, {
    1: { class_type: 'LoadImage', inputs: { image: name } },
    2: { class_type: 'ImageScale', inputs: { image: ['1', 0], upscale_method: 'area', width: 0, height: 10, crop: 'disabled' } },
    ...save('2')
  })
  t.match(aspect, { width: 14, height: 10 })
  const [by] = await images(sim, {
    1: { class_type: 'LoadImage', inputs: { image: name } },
    2: { class_type: 'ImageScaleBy', inputs: { image: ['1', 0], upscale_method: 'nearest-exact', scale_by: 2.5 } },
    ...save('2')
  })
  t.match(by, { width: 18, height: 12 })

  // center crop to the target aspect, then scale: 7x5 -> 3x3 crops columns round((7 - 5) / 2) = 1 on each side
  const [centered] = await images(sim, {
    1: { class_type: 'LoadImage', inputs: { image: name } },
    2: { class_type: 'ImageScale', inputs: { image: ['1', 0], upscale_method: 'nearest-exact', width: 5, height: 5, crop: 'center' } },
    ...save('2')
  })
  let cropped = true
  for (let y = 0; y < 5; y++) for (let x = 0; x < 5; x++) if (String(pixel(centered, x, y)) !== String(source(x + 1, y).map(byte))) cropped = false
  t.ok(cropped, 'center crop keeps the middle columns')
})

t.test('ImageBlend mixes in float32 like torch', async t => {
  const sim = await startSim(t)
  const a = [0x20, 0x80, 0xf0]
  const b = [0xc0, 0x40, 0x10]
  const modes: Record<string, (x: number, y: number) => number> = {
    normal: (_x, y) => y,
    multiply: (x, y) => x * y,
    screen: (x, y) => 1 - (1 - x) * (1 - y),
    overlay: (x, y) => x <= 0.5 ? 2 * x * y : 1 - 2 * (1 - x) * (1 - y),
    difference: (x, y) => x - y
  }
  for (const [mode, blend] of Object.entries(modes)) {
    const [image] = await images(sim, {
      1: { class_type: 'EmptyImage', inputs: { width: 4, height: 4, batch_size: 1, color: (a[0] << 16) | (a[1] << 8) | a[2] } },
      2: { class_type: 'EmptyImage', inputs: { width: 2, height: 2, batch_size: 1, color: (b[0] << 16) | (b[1] << 8) | b[2] } },
      3: { class_type: 'ImageBlend', inputs: { image1: ['1', 0], image2: ['2', 0], blend_factor: 0.25, blend_mode: mode } },
      ...save('3')
    })
    t.match(image, { width: 4, height: 4 }, 'image2 is fitted to image1')
    const expected = a.map((va, c) => {
      const x = va / 255
      const mixed = x * 0.75 + blend(x, b[c] / 255) * 0.25
      return byte(Math.min(1, Math.max(0, mixed)))
    })
    pixel(image, 2, 1).forEach((v, c) => t.ok(Math.abs(v - expected[c]) <= 1, `${mode} channel ${c}: ${v} vs ${expected[c]}`))
  }
})

t.test('ImagePadForOutpaint: grey canvas and a feathered mask', async t => {
  const sim = await startSim(t)
  const color = 0x10a0f0
  const [left, top, right, bottom, feathering] = [8, 0, 4, 8, 3]
  const prompt = {
    1: { class_type: 'EmptyImage', inputs: { width: 10, height: 9, batch_size: 1, color } },
    2: { class_type: 'ImagePadForOutpaint', inputs: { image: ['1', 0], left, top, right, bottom, feathering } },
    3: { class_type: 'MaskToImage', inputs: { mask: ['2', 1] } },
    ...save('2'),
    10: { class_type: 'SaveImage', inputs: { images: ['3', 0], filename_prefix: 'mask' } }
  }
  const [canvas] = await images(sim, prompt)
  const [mask] = await images(sim, prompt, '10')
  t.match(canvas, { width: 22, height: 17 })
  t.match(mask, { width: 22, height: 17 })
  const inner = [(color >> 16) & 0xff, (color >> 8) & 0xff, color & 0xff].map(c => byte(c / 255))
  t.same(pixel(canvas, 0, 0), [127, 127, 127], 'the canvas is 0.5 grey (127 after truncation)')
  t.same(pixel(canvas, left, top), inner)
  t.same(pixel(canvas, left + 9, top + 8), inner)
  t.same(pixel(canvas, left + 10, 0), [127, 127, 127])
  let same = true
  for (let y = 0; y < 17; y++) {
    for (let x = 0; x < 22; x++) {
      let value = 1
      const [i, j] = [y - top, x - left]
      if (i >= 0 && i < 9 && j >= 0 && j < 10) {
        const d = Math.min(top !== 0 ? i : 9, bottom !== 0 ? 9 - i : 9, left !== 0 ? j : 10, right !== 0 ? 10 - j : 10)
        value = d >= feathering ? 0 : ((feathering - d) / feathering) ** 2
      }
      if (String(pixel(mask, x, y)) !== String([byte(value), byte(value), byte(value)])) same = false
    }
  }
  t.ok(same, 'mask: 1 outside, (f - d)^2 / f^2 near padded edges, 0 inside')
})

t.test('ImageBatch, masks and LoadImage alpha', async t => {
  const sim = await startSim(t)
  const batch = await images(sim, {
    1: { class_type: 'EmptyImage', inputs: { width: 6, height: 4, batch_size: 1, color: 0xff0000 } },
    2: { class_type: 'EmptyImage', inputs: { width: 3, height: 9, batch_size: 2, color: 0x00ff00 } },
    3: { class_type: 'ImageBatch', inputs: { image1: ['1', 0], image2: ['2', 0] } },
    ...save('3')
  })
  t.same(batch.map(image => [image.width, image.height, pixel(image, 5, 3)]), [[6, 4, [255, 0, 0]], [6, 4, [0, 255, 0]], [6, 4, [0, 255, 0]]], 'image2 is fitted to image1 and appended')

  const [solid] = await images(sim, {
    1: { class_type: 'SolidMask', inputs: { value: 0.3, width: 3, height: 2 } },
    2: { class_type: 'InvertMask', inputs: { mask: ['1', 0] } },
    3: { class_type: 'MaskToImage', inputs: { mask: ['2', 0] } },
    ...save('3')
  })
  const inverted = byte(1 - f32(0.3))
  t.match(solid, { width: 3, height: 2 })
  t.same(pixel(solid, 2, 1), [inverted, inverted, inverted])

  const [green] = await images(sim, {
    1: { class_type: 'EmptyImage', inputs: { width: 2, height: 2, batch_size: 1, color: 0x12c834 } },
    2: { class_type: 'ImageToMask', inputs: { image: ['1', 0], channel: 'green' } },
    3: { class_type: 'MaskToImage', inputs: { mask: ['2', 0] } },
    ...save('3')
  })
  t.same(pixel(green, 1, 1), [byte(0xc8 / 255), byte(0xc8 / 255), byte(0xc8 / 255)])

  const alpha = (x: number, y: number): number => (x * 60 + y * 100) % 256
  const name = await upload(sim, 4, 3, (x, y) => [...pattern(x, y), alpha(x, y)], true)
  const [mask] = await images(sim, {
    1: { class_type: 'LoadImage', inputs: { image: name } },
    3: { class_type: 'MaskToImage', inputs: { mask: ['1', 1] } },
    ...save('3')
  })
  let exact = true
  for (let y = 0; y < 3; y++) for (let x = 0; x < 4; x++) if (pixel(mask, x, y)[0] !== byte(1 - loaded(alpha(x, y)))) exact = false
  t.ok(exact, 'the mask is 1 - alpha')
  const opaque = await upload(sim, 4, 3, pattern)
  const [none] = await images(sim, {
    1: { class_type: 'LoadImage', inputs: { image: opaque } },
    3: { class_type: 'MaskToImage', inputs: { mask: ['1', 1] } },
    ...save('3')
  })
  t.match(none, { width: 64, height: 64 }, 'without alpha the mask is 64x64 zeros')
  t.same(pixel(none, 63, 63), [0, 0, 0])
})

t.test('PreviewImage writes the same pixels as temp files; SaveImage embeds the prompt', async t => {
  const sim = await startSim(t)
  const prompt = {
    1: { class_type: 'EmptyImage', inputs: { width: 3, height: 3, batch_size: 1, color: 0x808080 } },
    10: { class_type: 'PreviewImage', inputs: { images: ['1', 0] } },
    ...save('1')
  }
  const done = await run(sim, prompt)
  t.equal(done.outputs['10'].images[0].type, 'temp')
  const preview = PNG.sync.read((await download(sim, done.outputs['10'].images[0])).bytes)
  t.same([...preview.data.subarray(0, 3)], [byte(128 / 255), byte(128 / 255), byte(128 / 255)])
  const saved = (await download(sim, done.outputs['9'].images[0])).bytes.toString('latin1')
  t.match(saved, /tEXtprompt\0\{"1": \{"class_type": "EmptyImage"/, 'the prompt in a tEXt chunk, as json.dumps writes it')
})

t.test('validation: unknown classes and upload names (links to missing nodes: prompt.test.ts)', async t => {
  const sim = await startSim(t)
  const unknown = await sim.json('/api/prompt', { method: 'POST', json: { prompt: { 1: { class_type: 'NotACoreNode', inputs: {} }, ...save('1') } } })
  t.equal(unknown.status, 400)
  t.equal(unknown.body.error.type, 'missing_node_type')
  const missing = await sim.json('/api/prompt', { method: 'POST', json: { prompt: { 1: { class_type: 'LoadImage', inputs: { image: 'nope.png' } }, ...save('1') } } })
  t.equal(missing.status, 400)
  t.match(missing.body.node_errors[1].errors[0], { type: 'custom_validation_failed', message: 'Custom validation failed for node', details: 'image - Invalid image file: nope.png' })
})

t.test('batches, compositing and mask edits', async t => {
  const sim = await startSim(t)
  const colors = [0x102030, 0x405060, 0x708090]
  const picked = await images(sim, {
    1: { class_type: 'EmptyImage', inputs: { width: 2, height: 2, batch_size: 1, color: colors[0] } },
    2: { class_type: 'EmptyImage', inputs: { width: 2, height: 2, batch_size: 1, color: colors[1] } },
    3: { class_type: 'ImageBatch', inputs: { image1: ['1', 0], image2: ['2', 0] } },
    4: { class_type: 'RepeatImageBatch', inputs: { image: ['3', 0], amount: 2 } },
    5: { class_type: 'ImageFromBatch', inputs: { image: ['4', 0], batch_index: 1, length: 2 } },
    ...save('5')
  })
  const rgb = (color: number): number[] => [(color >> 16) & 0xff, (color >> 8) & 0xff, color & 0xff].map(c => byte(c / 255))
  t.same(picked.map(image => pixel(image, 0, 0)), [rgb(colors[1]), rgb(colors[0])], 'repeat [a, b] twice, then take 2 from index 1')

  // source 3x2 pasted at (4, 1) onto 6x4: only 2 columns fit; with a 0.25 mask the mix is 0.25*src + 0.75*dst
  const [pasted] = await images(sim, {
    1: { class_type: 'EmptyImage', inputs: { width: 6, height: 4, batch_size: 1, color: colors[0] } },
    2: { class_type: 'EmptyImage', inputs: { width: 3, height: 2, batch_size: 1, color: colors[2] } },
    3: { class_type: 'SolidMask', inputs: { value: 0.25, width: 3, height: 2 } },
    4: { class_type: 'ImageCompositeMasked', inputs: { destination: ['1', 0], source: ['2', 0], x: 4, y: 1, resize_source: false, mask: ['3', 0] } },
    ...save('4')
  })
  const mixed = [16, 32, 48].map((d, c) => byte(f32(f32(f32(0.25) * f32([0x70, 0x80, 0x90][c] / 255)) + f32(f32(1 - f32(0.25)) * f32(d / 255)))))
  t.same([pixel(pasted, 3, 1), pixel(pasted, 4, 1), pixel(pasted, 5, 2), pixel(pasted, 4, 3)], [rgb(colors[0]), mixed, mixed, rgb(colors[0])])

  // FeatherMask on a solid 1: the left 4 columns scale by (x + 1) / 4; MaskComposite subtract then clamps
  const [feathered] = await images(sim, {
    1: { class_type: 'SolidMask', inputs: { value: 1, width: 6, height: 2 } },
    2: { class_type: 'FeatherMask', inputs: { mask: ['1', 0], left: 4, top: 0, right: 0, bottom: 0 } },
    3: { class_type: 'SolidMask', inputs: { value: 0.6, width: 1, height: 1 } },
    4: { class_type: 'MaskComposite', inputs: { destination: ['2', 0], source: ['3', 0], x: 5, y: 0, operation: 'subtract' } },
    5: { class_type: 'MaskToImage', inputs: { mask: ['4', 0] } },
    ...save('5')
  })
  t.same([0, 1, 2, 3, 4, 5].map(x => pixel(feathered, x, 0)[0]), [byte(0.25), byte(0.5), byte(0.75), 255, 255, byte(1 - f32(0.6))])
  t.equal(pixel(feathered, 5, 1)[0], 255, 'the source covers one row only')

  // GrowMask: one lit pixel grows into a cross (tapered) after one step
  const [grown] = await images(sim, {
    1: { class_type: 'SolidMask', inputs: { value: 0, width: 5, height: 5 } },
    2: { class_type: 'SolidMask', inputs: { value: 1, width: 1, height: 1 } },
    3: { class_type: 'MaskComposite', inputs: { destination: ['1', 0], source: ['2', 0], x: 2, y: 2, operation: 'add' } },
    4: { class_type: 'GrowMask', inputs: { mask: ['3', 0], expand: 1, tapered_corners: true } },
    5: { class_type: 'MaskToImage', inputs: { mask: ['4', 0] } },
    ...save('5')
  })
  const lit = []
  for (let y = 0; y < 5; y++) for (let x = 0; x < 5; x++) if (pixel(grown, x, y)[0] === 255) lit.push(`${x},${y}`)
  t.same(lit, ['2,1', '1,2', '2,2', '3,2', '2,3'])
})

t.test('ImageFlip, ImageRotate (clockwise, like torch.rot90 on dims [2, 1]) and GetImageSize', async t => {
  const sim = await startSim(t)
  const name = await upload(sim, 3, 2, pattern)
  const source = (x: number, y: number): string => String(pattern(x, y).map(v => byte(loaded(v))))
  const cases: Array<[string, Record<string, unknown>, number, number, (x: number, y: number) => string]> = [
    ['ImageFlip', { flip_method: 'x-axis: vertically' }, 3, 2, (x, y) => source(x, 1 - y)],
    ['ImageFlip', { flip_method: 'y-axis: horizontally' }, 3, 2, (x, y) => source(2 - x, y)],
    ['ImageRotate', { rotation: '90 degrees' }, 2, 3, (x, y) => source(y, 1 - x)],
    ['ImageRotate', { rotation: '270 degrees' }, 2, 3, (x, y) => source(2 - y, x)]
  ]
  for (const [classType, inputs, width, height, expected] of cases) {
    const [image] = await images(sim, { 1: { class_type: 'LoadImage', inputs: { image: `${name} [input]` } }, 2: { class_type: classType, inputs: { image: ['1', 0], ...inputs } }, ...save('2') })
    t.match(image, { width, height })
    let same = true
    for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) if (String(pixel(image, x, y)) !== expected(x, y)) same = false
    t.ok(same, `${classType} ${JSON.stringify(inputs)}`)
  }
  const [sized] = await images(sim, {
    1: { class_type: 'LoadImage', inputs: { image: name } },
    2: { class_type: 'GetImageSize', inputs: { image: ['1', 0] } },
    3: { class_type: 'EmptyImage', inputs: { width: ['2', 1], height: ['2', 0], batch_size: ['2', 2], color: 0 } },
    ...save('3')
  })
  t.match(sized, { width: 2, height: 3 }, 'sizes flow into widget inputs through links')
})
