/**
 * The simulator as a development backend: common workflows beyond text-to-image run, results are cached like
 * ComfyUI caches them, WebSocket previews follow the client's feature flags, failures report like local, and
 * memory stays bounded by maxJobs.
 */
import t from 'tap'
import { PNG } from 'pngjs'
import { defaultPrompt, download, KEY, openWs, startSim, submit, waitFor, waitForStatus, type Sim } from './fixtures/helpers.js'

async function completed (sim: Sim, body: Record<string, unknown>): Promise<any> {
  const done = await waitForStatus(sim, await submit(sim, body), ['completed', 'failed'])
  if (done.status !== 'completed') throw new Error(`job failed: ${JSON.stringify(done.execution_error)}`)
  return done
}

async function sizeOf (sim: Sim, item: any): Promise<[number, number]> {
  const png = PNG.sync.read((await download(sim, item)).bytes)
  return [png.width, png.height]
}

async function uploadPng (sim: Sim, width: number, height: number): Promise<string> {
  const png = new PNG({ width, height })
  png.data.fill(200)
  const form = new FormData()
  form.append('image', new Blob([PNG.sync.write(png)]), 'photo.png')
  return (await sim.json('/api/upload/image', { method: 'POST', body: form })).body.name
}

t.test('common workflows run and produce outputs of the right size', async t => {
  const sim = await startSim(t, { stepMs: 1 })
  const photo = await uploadPng(sim, 80, 56)
  const base = (): Record<string, any> => defaultPrompt({ width: 64, height: 48, steps: 2 })

  const lora: Record<string, any> = { ...base(), 10: { class_type: 'LoraLoader', inputs: { model: ['4', 0], clip: ['4', 1], lora_name: 'add_detail.safetensors', strength_model: 0.8, strength_clip: 1 } } }
  lora[3].inputs.model = ['10', 0]
  lora[6].inputs.clip = ['10', 1]
  t.same(await sizeOf(sim, (await completed(sim, { prompt: lora })).outputs['9'].images[0]), [64, 48], 'LoRA')

  const controlnet: Record<string, any> = {
    ...base(),
    11: { class_type: 'LoadImage', inputs: { image: photo } },
    12: { class_type: 'ControlNetLoader', inputs: { control_net_name: 'control_v11p_sd15_canny.pth' } },
    13: { class_type: 'ControlNetApplyAdvanced', inputs: { positive: ['6', 0], negative: ['7', 0], control_net: ['12', 0], image: ['11', 0], strength: 1, start_percent: 0, end_percent: 1 } }
  }
  controlnet[3].inputs.positive = ['13', 0]
  controlnet[3].inputs.negative = ['13', 1]
  t.same(await sizeOf(sim, (await completed(sim, { prompt: controlnet })).outputs['9'].images[0]), [64, 48], 'ControlNet')

  const upscale: Record<string, any> = {
    ...base(),
    14: { class_type: 'UpscaleModelLoader', inputs: { model_name: 'RealESRGAN_x2plus.pth' } },
    15: { class_type: 'ImageUpscaleWithModel', inputs: { upscale_model: ['14', 0], image: ['8', 0] } }
  }
  upscale[9].inputs.images = ['15', 0]
  t.same(await sizeOf(sim, (await completed(sim, { prompt: upscale })).outputs['9'].images[0]), [128, 96], 'a 2x upscale model doubles the size')

  const img2img: Record<string, any> = { ...base(), 16: { class_type: 'LoadImage', inputs: { image: photo } }, 17: { class_type: 'VAEEncode', inputs: { pixels: ['16', 0], vae: ['4', 2] } } }
  img2img[3].inputs.latent_image = ['17', 0]
  img2img[3].inputs.denoise = 0.6
  t.same(await sizeOf(sim, (await completed(sim, { prompt: img2img })).outputs['9'].images[0]), [80, 56], 'img2img keeps the input size (a multiple of 8)')

  const inpaint: Record<string, any> = {
    ...base(),
    16: { class_type: 'LoadImage', inputs: { image: photo } },
    18: { class_type: 'VAEEncodeForInpaint', inputs: { pixels: ['16', 0], vae: ['4', 2], mask: ['16', 1], grow_mask_by: 6 } }
  }
  inpaint[3].inputs.latent_image = ['18', 0]
  t.same(await sizeOf(sim, (await completed(sim, { prompt: inpaint })).outputs['9'].images[0]), [80, 56], 'inpaint')

  const odd = defaultPrompt({ width: 100, height: 60, steps: 1 })
  t.same(await sizeOf(sim, (await completed(sim, { prompt: odd })).outputs['9'].images[0]), [96, 56], 'a latent is width // 8 by height // 8')

  const hires: Record<string, any> = { ...base(), 19: { class_type: 'LatentUpscaleBy', inputs: { samples: ['3', 0], upscale_method: 'nearest-exact', scale_by: 1.5 } } }
  hires[8].inputs.samples = ['19', 0]
  t.same(await sizeOf(sim, (await completed(sim, { prompt: hires })).outputs['9'].images[0]), [96, 72], 'latent upscale')
})

t.test('model names come from the configured folders', async t => {
  const sim = await startSim(t, { stepMs: 1, models: { checkpoints: ['mine.safetensors'], loras: ['style.safetensors'] } })
  const info = (await sim.json('/api/object_info')).body
  t.same(info.CheckpointLoaderSimple.input.required.ckpt_name[0], ['mine.safetensors'])
  t.same(info.LoraLoader.input.required.lora_name[0], ['style.safetensors'])
  t.ok(info.VAELoader.input.required.vae_name[0].includes('vae-ft-mse-840000-ema-pruned.safetensors'), 'folders not named keep their defaults')
  const refused = await sim.json('/api/prompt', { method: 'POST', json: { prompt: defaultPrompt() } })
  t.equal(refused.status, 400)
  t.equal(refused.body.node_errors[4].errors[0].details, "ckpt_name: 'v1-5-pruned-emaonly.safetensors' not in ['mine.safetensors']")
  const prompt = defaultPrompt({ steps: 1 })
  prompt[4].inputs.ckpt_name = 'mine.safetensors'
  t.equal((await completed(sim, { prompt })).status, 'completed')
})

t.test('an identical prompt is served from the cache; a changed input re-runs what depends on it', async t => {
  const sim = await startSim(t, { stepMs: 1 })
  const ws = await openWs(t, sim)
  const run = async (prompt: Record<string, unknown>): Promise<{ detail: any, events: Array<{ type: string, data: any }> }> => {
    const before = ws.messages().length
    const id = await submit(sim, { prompt, client_id: 'c' })
    await ws.waitFor(m => m.type === 'executing' && m.data.node === null && m.data.prompt_id === id)
    return { detail: (await sim.json(`/api/jobs/${id}`)).body, events: ws.messages().slice(before).filter(m => m.data?.prompt_id === id) }
  }
  const first = await run(defaultPrompt({ seed: 1 }))
  t.same(first.events.find(m => m.type === 'execution_cached')?.data.nodes, [])
  const again = await run(defaultPrompt({ seed: 1 }))
  t.same(again.events.map(m => m.type), ['execution_start', 'execution_cached', 'executed', 'execution_success', 'executing'],
    'no node runs: only executed is re-sent for the output node (observed finding 26)')
  t.same(again.events[1].data.nodes, ['3', '4', '5', '6', '7', '8', '9'], 'every node is cached')
  t.same(again.events[2].data, { node: '9', display_node: '9', output: first.detail.outputs['9'], prompt_id: again.detail.id })
  t.same(again.detail.outputs, first.detail.outputs, 'the history outputs are the cached ones')
  const reseeded = await run(defaultPrompt({ seed: 2 }))
  t.same(reseeded.events[1].data.nodes, ['4', '5', '6', '7'], 'the loader, prompts and empty latent are reused')
  t.same(reseeded.events.filter(m => m.type === 'executing' && m.data.node !== null).map(m => m.data.node), ['3', '8', '9'], 'only what depends on the seed runs')
  t.not(reseeded.detail.outputs['9'].images[0].filename, first.detail.outputs['9'].images[0].filename)
})

t.test('previews: type-1 frames by default, type-4 with metadata after feature_flags', async t => {
  const sim = await startSim(t, { stepMs: 1 })
  const plain = await openWs(t, sim)
  const rich = await openWs(t, sim)
  rich.socket.send(JSON.stringify({ type: 'feature_flags', data: { supports_preview_metadata: true } }))
  await rich.waitFor(m => m.type === 'feature_flags')
  const prompt = {
    1: { class_type: 'EmptyImage', inputs: { width: 4, height: 2, batch_size: 3, color: 0x0000ff } },
    2: { class_type: 'SaveImageWebsocket', inputs: { images: ['1', 0] } }
  }
  const id = await submit(sim, { prompt })
  const done = await waitForStatus(sim, id, ['completed'])
  t.same(done.outputs, {}, 'SaveImageWebsocket writes no files')
  await rich.waitFor(m => m.type === 'executing' && m.data.node === null && m.data.prompt_id === id)
  await plain.waitFor(m => m.type === 'executing' && m.data.node === null && m.data.prompt_id === id)
  const progress = rich.messages().filter(m => m.type === 'progress').map(m => [m.data.value, m.data.max])
  t.same(progress, [[0, 3], [1, 3], [2, 3]], 'progress runs 0 … max-1')

  const plainFrames = plain.frames.filter((f): f is Buffer => Buffer.isBuffer(f))
  t.equal(plainFrames.length, 3)
  for (const frame of plainFrames) {
    t.same([frame.readUInt32BE(0), frame.readUInt32BE(4)], [1, 2], 'PREVIEW_IMAGE, PNG')
    const png = PNG.sync.read(frame.subarray(8))
    t.same([png.width, png.height, ...png.data.subarray(0, 3)], [4, 2, 0, 0, 255], 'the full image')
  }
  const richFrames = rich.frames.filter((f): f is Buffer => Buffer.isBuffer(f))
  t.equal(richFrames.length, 3)
  for (const frame of richFrames) {
    t.equal(frame.readUInt32BE(0), 4, 'PREVIEW_IMAGE_WITH_METADATA')
    const length = frame.readUInt32BE(4)
    const metadata = JSON.parse(frame.subarray(8, 8 + length).toString())
    t.same(Object.keys(metadata), ['node_id', 'prompt_id', 'display_node_id', 'parent_node_id', 'real_node_id', 'image_type'])
    t.same(metadata, { node_id: '2', prompt_id: id, display_node_id: '2', parent_node_id: null, real_node_id: '2', image_type: 'image/png' })
    t.equal(PNG.sync.read(frame.subarray(8 + length)).width, 4)
  }
})

t.test('a node that raises: execution_error like local, with linked inputs and current_outputs []', async t => {
  const sim = await startSim(t, { stepMs: 1 })
  const ws = await openWs(t, sim)
  const prompt = {
    1: { class_type: 'EmptyImage', inputs: { width: 4, height: 4, batch_size: 1, color: 0 } },
    2: { class_type: 'ImageToMask', inputs: { image: ['1', 0], channel: 'alpha' } },
    3: { class_type: 'MaskToImage', inputs: { mask: ['2', 0] } },
    9: { class_type: 'SaveImage', inputs: { images: ['3', 0], filename_prefix: 'x' } }
  }
  const id = await submit(sim, { prompt })
  const failed = await waitForStatus(sim, id, ['failed', 'completed'])
  t.match(failed.execution_error, {
    node_id: '2',
    node_type: 'ImageToMask',
    exception_type: 'IndexError',
    exception_message: 'index 3 is out of bounds for dimension 3 with size 3\n',
    current_inputs: { image: [/^tensor\(/], channel: ['alpha'] },
    current_outputs: []
  })
  const message = (await ws.waitFor(m => m.type === 'execution_error')).data
  t.same(Object.keys(message), ['prompt_id', 'node_id', 'node_type', 'executed', 'exception_message', 'exception_type', 'traceback', 'current_inputs', 'current_outputs', 'timestamp'], "local's key order")
  t.same(message.executed, ['1'])
})

t.test('finished jobs beyond maxJobs are forgotten oldest first, with their files', async t => {
  const sim = await startSim(t, { stepMs: 1, maxJobs: 2 })
  const items = []
  const ids = []
  for (let color = 1; color <= 4; color++) {
    const prompt = { 1: { class_type: 'EmptyImage', inputs: { width: 2, height: 2, batch_size: 1, color } }, 9: { class_type: 'SaveImage', inputs: { images: ['1', 0], filename_prefix: 'x' } } }
    const done = await completed(sim, { prompt })
    ids.push(done.id)
    items.push(done.outputs['9'].images[0])
  }
  t.same(sim.app.simulator.jobs(KEY).map(job => job.id), ids.slice(2), 'the two newest remain')
  t.equal((await sim.json(`/api/jobs/${ids[0]}`)).status, 404)
  const query = (item: any): string => new URLSearchParams({ filename: item.filename, type: 'output' }).toString()
  t.equal((await sim.call(`/api/view?${query(items[0])}`)).status, 404, 'the oldest output file is gone')
  t.equal((await sim.call(`/api/view?${query(items[3])}`)).status, 302, 'the newest is kept')
  await waitFor(async () => (await sim.json('/api/prompt')).body.exec_info.queue_remaining === 0 ? true : undefined)
})

t.test('a job deleted from history gives up its files at once; an output the cache still holds stays downloadable', async t => {
  const sim = await startSim(t, { stepMs: 1 })
  const saved = async (color: number): Promise<any> => {
    const prompt = { 1: { class_type: 'EmptyImage', inputs: { width: 2, height: 2, batch_size: 1, color } }, 9: { class_type: 'SaveImage', inputs: { images: ['1', 0], filename_prefix: 'x' } } }
    return await completed(sim, { prompt })
  }
  const query = (done: any): string => new URLSearchParams({ filename: done.outputs['9'].images[0].filename, type: 'output' }).toString()
  const first = await saved(1)
  const second = await saved(2)
  t.equal((await sim.call('/api/history', { method: 'POST', json: { delete: [first.id] } })).status, 200)
  t.equal((await sim.call(`/api/view?${query(first)}`)).status, 404, 'the deleted job\'s file is gone now, not at some later job\'s end')
  t.equal((await sim.call('/api/history', { method: 'POST', json: { clear: true } })).status, 200)
  const again = await saved(2)
  t.same(again.outputs['9'], second.outputs['9'], 'the same prompt again is served from the cache, naming the same file')
  t.equal((await sim.call(`/api/view?${query(again)}`)).status, 302, 'which the cache kept although its job was deleted')
})

t.test('audio: an empty latent sampled, decoded and saved as a valid FLAC', async t => {
  const sim = await startSim(t, { stepMs: 1 })
  const prompt: Record<string, any> = {
    ...defaultPrompt({ steps: 2 }),
    5: { class_type: 'EmptyLatentAudio', inputs: { seconds: 1.5, batch_size: 1 } },
    8: { class_type: 'VAEDecodeAudio', inputs: { samples: ['3', 0], vae: ['4', 2] } },
    9: { class_type: 'SaveAudio', inputs: { audio: ['8', 0], filename_prefix: 'audio/ComfyUI' } }
  }
  const done = await completed(sim, { prompt })
  const item = done.outputs['9'].audio[0]
  t.match(item, { filename: /^[0-9a-f]{64}\.flac$/, type: 'output' })
  t.equal(done.outputs_count, 1)
  t.match(done.preview_output, { nodeId: '9', mediaType: 'audio' })
  const { response, bytes } = await download(sim, item)
  t.equal(response.headers.get('content-type'), 'audio/flac')
  t.equal(bytes.toString('latin1', 0, 4), 'fLaC')
  t.equal(bytes[4] & 0x7f, 0, 'STREAMINFO first')
  const info = bytes.readBigUInt64BE(18)
  const samples = Math.round(1.5 * 44100 / 2048) * 2048 // Stable Audio latents hold 2048 samples per step
  t.same([Number(info >> 44n), Number((info >> 41n) & 7n) + 1, Number((info >> 36n) & 31n) + 1, Number(info & 0xfffffffffn)], [44100, 2, 16, samples])
  // every frame: sync code, header CRC-8 (poly 0x07) and frame CRC-16 (poly 0x8005), computed here
  const crc = (data: Buffer, width: number, poly: number): number => {
    let value = 0
    const top = 1 << (width - 1)
    for (const b of data) {
      value ^= b << (width - 8)
      for (let i = 0; i < 8; i++) value = ((value & top) !== 0 ? (value << 1) ^ poly : value << 1) & ((1 << width) - 1)
    }
    return value
  }
  let at = 42
  let frames = 0
  let decoded = 0
  while (at < bytes.length) {
    t.equal(bytes.readUInt16BE(at) & 0xfffe, 0xfff8, 'frame sync')
    let header = at + 4
    while ((bytes[header] & 0xc0) === 0x80 || header === at + 4) { header++; if ((bytes[at + 4] & 0x80) === 0) break }
    const size = bytes.readUInt16BE(header) + 1
    header += 2
    t.equal(bytes[header], crc(bytes.subarray(at, header), 8, 0x07), 'header CRC-8')
    const end = header + 1 + 2 * (1 + size * 2)
    t.equal(bytes.readUInt16BE(end), crc(bytes.subarray(at, end), 16, 0x8005), 'frame CRC-16')
    decoded += size
    frames++
    at = end + 2
  }
  t.equal(decoded, samples)
  t.equal(frames, Math.ceil(samples / 4096))
})
