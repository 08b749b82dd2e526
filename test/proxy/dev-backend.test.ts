/**
 * The built-in simulator as a development backend, seen through the proxy as a local client sees it: an
 * uploaded image runs through model-free core nodes, the result comes back with the right pixels, an identical
 * prompt is answered from the cache, and a link to a missing node is refused as local refuses it.
 */
import t from 'tap'
import { PNG } from 'pngjs'
import { getJson, postJson, runJob, startStack } from '../helpers.js'

t.test('upload, LoadImage -> ImageScale -> ImageInvert -> SaveImage, /view: the pixels local would give', async t => {
  const stack = await startStack(t)
  const png = new PNG({ width: 2, height: 2 })
  const colors = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [200, 100, 50]]
  colors.forEach((c, i) => png.data.set([...c, 255], i * 4))
  const form = new FormData()
  form.append('image', new Blob([PNG.sync.write(png, { colorType: 2 })]), 'tiny.png')
  const uploaded = await getJson(`${stack.url}/upload/image`, { method: 'POST', body: form })
  t.equal(uploaded.status, 200)
  const prompt = {
    1: { class_type: 'LoadImage', inputs: { image: uploaded.body.name } },
    2: { class_type: 'ImageScale', inputs: { image: ['1', 0], upscale_method: 'nearest-exact', width: 4, height: 4, crop: 'disabled' } },
    3: { class_type: 'ImageInvert', inputs: { image: ['2', 0] } },
    9: { class_type: 'SaveImage', inputs: { images: ['3', 0], filename_prefix: 'dev' } }
  }
  const { entry } = await runJob(stack.url, { prompt })
  t.equal(entry.status.status_str, 'success')
  const item = entry.outputs['9'].images[0]
  const view = await fetch(`${stack.url}/view?${new URLSearchParams({ filename: item.filename, subfolder: item.subfolder, type: item.type }).toString()}`)
  t.equal(view.status, 200)
  const out = PNG.sync.read(Buffer.from(await view.arrayBuffer()))
  t.match(out, { width: 4, height: 4 })
  // nearest-exact 2 -> 4 doubles each pixel; inverting in float32 then truncating gives 254 - v for most v, 255 - v for 0 and 255
  const inverted = (v: number): number => Math.trunc(Math.fround(255 * Math.fround(1 - Math.fround(v / 255))))
  const at = (x: number, y: number): number[] => [...out.data.subarray((y * 4 + x) * 4, (y * 4 + x) * 4 + 3)]
  t.same([at(0, 0), at(3, 0), at(0, 3), at(3, 3)], [colors[0], colors[1], colors[2], colors[3]].map(c => c.map(inverted)))
  t.same(at(1, 1), colors[0].map(inverted))

  const again = await runJob(stack.url, { prompt })
  const cached = again.entry.status.messages.find((m: any) => m[0] === 'execution_cached')
  t.same(cached?.[1].nodes, ['1', '2', '3', '9'], 'an identical prompt is served from the cache')
  t.same(again.entry.outputs, entry.outputs)
})

t.test('a link to a missing node is exception_during_validation, as local answers', async t => {
  const stack = await startStack(t)
  const { status, body } = await postJson(`${stack.url}/prompt`, { prompt: { 9: { class_type: 'SaveImage', inputs: { images: ['5', 0], filename_prefix: 'x' } } } })
  t.equal(status, 400)
  t.equal(body.error.type, 'prompt_outputs_failed_validation')
  t.match(body.node_errors[9], { errors: [{ type: 'exception_during_validation', message: 'Exception when validating node', details: "'5'", extra_info: { exception_type: 'KeyError' } }], dependent_outputs: ['9'], class_type: 'SaveImage' })
})

t.test('CreateVideo -> SaveVideo and SaveAnimatedWEBP through the proxy: local history shape, playable files from /view', async t => {
  const stack = await startStack(t)
  const prompt = {
    1: { class_type: 'EmptyImage', inputs: { width: 16, height: 8, batch_size: 1, color: 0xff0000 } },
    2: { class_type: 'EmptyImage', inputs: { width: 16, height: 8, batch_size: 1, color: 0x0000ff } },
    3: { class_type: 'ImageBatch', inputs: { image1: ['1', 0], image2: ['2', 0] } },
    4: { class_type: 'CreateVideo', inputs: { images: ['3', 0], fps: 24 } },
    5: { class_type: 'SaveVideo', inputs: { video: ['4', 0], filename_prefix: 'video/ComfyUI', format: 'auto', codec: 'auto' } },
    6: { class_type: 'SaveAnimatedWEBP', inputs: { images: ['3', 0], filename_prefix: 'ComfyUI', fps: 6, lossless: true, quality: 80, method: 'default' } }
  }
  const { entry } = await runJob(stack.url, { prompt })
  t.equal(entry.status.status_str, 'success')
  t.same(Object.keys(entry.outputs['5']), ['images', 'animated'])
  t.same(entry.outputs['5'].animated, [true])
  t.same(entry.outputs['6'].animated, [true])
  const view = async (item: { filename: string, subfolder: string, type: string }): Promise<Response> =>
    await fetch(`${stack.url}/view?${new URLSearchParams(item).toString()}`)
  const mp4 = await view(entry.outputs['5'].images[0])
  t.equal(mp4.status, 200)
  t.equal(mp4.headers.get('content-type'), 'video/mp4')
  t.equal(Buffer.from(await mp4.arrayBuffer()).toString('latin1', 4, 8), 'ftyp')
  const webp = await view(entry.outputs['6'].images[0])
  t.equal(webp.headers.get('content-type'), 'image/webp')
  const bytes = Buffer.from(await webp.arrayBuffer())
  t.equal(bytes.toString('latin1', 8, 12), 'WEBP')
  t.ok(bytes.includes(Buffer.from('ANMF')), 'an animated WebP (ANMF frames)')
})
