/**
 * Animation and video savers: SaveAnimatedWEBP, SaveAnimatedPNG, SaveWEBM, SaveVideo with CreateVideo and
 * GetVideoComponents. Each file is decoded here (sharp for WebP and VP8, pngjs per APNG frame, a small I_PCM reader
 * for H.264) and compared with colours and timings computed in the test.
 */
import t, { type Test } from 'tap'
import { inflateSync } from 'node:zlib'
import { ALL_FORMATS, BufferSource, EncodedPacketSink, Input } from 'mediabunny'
import { PNG } from 'pngjs'
import sharp from 'sharp'
import { download, openWs, startSim, submit, waitForStatus, type Sim } from './fixtures/helpers.js'

type Rgb = [number, number, number]
const COLOURS: Rgb[] = [[200, 30, 40], [20, 180, 60], [30, 60, 220]]
const hex = ([r, g, b]: Rgb): number => (r << 16) | (g << 8) | b

/** Three solid frames of `width` x `height` (EmptyImage, batched), as nodes 1–5 of a prompt. */
function frames (width: number, height: number, colours: Rgb[] = COLOURS): Record<string, any> {
  return {
    1: { class_type: 'EmptyImage', inputs: { width, height, batch_size: 1, color: hex(colours[0]) } },
    2: { class_type: 'EmptyImage', inputs: { width, height, batch_size: 1, color: hex(colours[1]) } },
    3: { class_type: 'EmptyImage', inputs: { width, height, batch_size: 1, color: hex(colours[2]) } },
    4: { class_type: 'ImageBatch', inputs: { image1: ['1', 0], image2: ['2', 0] } },
    5: { class_type: 'ImageBatch', inputs: { image1: ['4', 0], image2: ['3', 0] } }
  }
}

/** Nodes 6–8: `seconds` of decoded audio, AUDIO at ['8', 0]. */
function sound (seconds: number): Record<string, any> {
  return {
    6: { class_type: 'EmptyLatentAudio', inputs: { seconds, batch_size: 1 } },
    7: { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: 'v1-5-pruned-emaonly.safetensors' } },
    8: { class_type: 'VAEDecodeAudio', inputs: { samples: ['6', 0], vae: ['7', 2] } }
  }
}

async function run (sim: Sim, prompt: Record<string, any>, extra: Record<string, unknown> = {}): Promise<any> {
  return await waitForStatus(sim, await submit(sim, { prompt, ...extra }), ['completed', 'failed'])
}

async function completed (sim: Sim, prompt: Record<string, any>, extra: Record<string, unknown> = {}): Promise<any> {
  const done = await run(sim, prompt, extra)
  if (done.status !== 'completed') throw new Error(`job failed: ${JSON.stringify(done.execution_error)}`)
  return done
}

function near (t: Test, actual: ArrayLike<number>, expected: Rgb, tolerance: number, what: string): void {
  const off = [0, 1, 2].map(c => Math.abs(actual[c] - expected[c]))
  t.ok(off.every(d => d <= tolerance), `${what}: ${Array.from(actual).slice(0, 3).join(',')} is within ${tolerance} of ${expected.join(',')}`)
}

/** PNG chunks in file order. */
function chunks (png: Buffer): Array<{ type: string, data: Buffer }> {
  const list = []
  for (let at = 8; at < png.length;) {
    const length = png.readUInt32BE(at)
    list.push({ type: png.toString('latin1', at + 4, at + 8), data: png.subarray(at + 8, at + 8 + length) })
    at += 12 + length
  }
  return list
}

t.test('object_info has the savers and video nodes with local inputs', async t => {
  const sim = await startSim(t)
  const info = (await sim.json('/api/object_info')).body
  t.same(info.SaveAnimatedWEBP.input.required.method, [['default', 'fastest', 'slowest'], {}])
  t.same(info.SaveAnimatedWEBP.input.required.quality, ['INT', { default: 80, min: 0, max: 100 }])
  t.same(info.SaveAnimatedWEBP.input_order, { required: ['images', 'filename_prefix', 'fps', 'lossless', 'quality', 'method'], hidden: ['prompt', 'extra_pnginfo'] })
  t.same(info.SaveWEBM.input.required.codec, [['vp9', 'av1'], {}])
  t.equal(info.SaveWEBM.experimental, true)
  t.same(info.SaveVideo.input.required.format[0], ['auto', 'mp4'])
  t.same(info.SaveVideo.input.required.codec[0], ['auto', 'h264'])
  t.same(info.CreateVideo.input.optional.audio[0], 'AUDIO')
  t.same(info.CreateVideo.output, ['VIDEO'])
  t.same(info.GetVideoComponents.output_name, ['images', 'audio', 'fps'])
  t.equal(info.GetVideoComponents.python_module, 'comfy_extras.nodes_video')
  for (const name of ['SaveAnimatedWEBP', 'SaveAnimatedPNG', 'SaveWEBM', 'SaveVideo']) t.equal(info[name].output_node, true, name)

  const bad = await sim.json('/api/prompt', {
    method: 'POST',
    json: {
      prompt: {
        ...frames(8, 8),
        6: { class_type: 'CreateVideo', inputs: { images: ['5', 0], fps: 0.5 } },
        7: { class_type: 'SaveVideo', inputs: { video: ['6', 0], filename_prefix: 'v', format: 'webm', codec: 'auto' } },
        8: { class_type: 'SaveVideo', inputs: { video: ['5', 0], filename_prefix: 'v', format: 'auto', codec: 'auto' } }
      }
    }
  })
  t.equal(bad.status, 400)
  t.same(bad.body.node_errors['7'].errors.map((e: any) => e.type), ['value_not_in_list'])
  t.same(bad.body.node_errors['6'].errors.map((e: any) => e.type), ['value_smaller_than_min'])
  t.same(bad.body.node_errors['8'].errors.map((e: any) => e.type), ['return_type_mismatch'])
})

t.test('SaveAnimatedWEBP writes a looping WebP with one frame per image', async t => {
  const sim = await startSim(t)
  const prompt = { ...frames(20, 12), 6: { class_type: 'SaveAnimatedWEBP', inputs: { images: ['5', 0], filename_prefix: 'anim', fps: 4, lossless: true, quality: 80, method: 'default' } } }
  const output = (await completed(sim, prompt, { extra_data: { extra_pnginfo: { workflow: { nodes: [] } } } })).outputs['6']
  t.match(output, { images: [{ filename: /^[0-9a-f]{64}\.webp$/, subfolder: '', type: 'output' }], animated: [true] })
  const { response, bytes } = await download(sim, output.images[0])
  t.equal(response.headers.get('content-type'), 'image/webp')
  const meta = await sharp(bytes, { animated: true }).metadata()
  t.match(meta, { format: 'webp', width: 20, pageHeight: 12, pages: 3, loop: 0, delay: [250, 250, 250] })
  const exif = meta.exif!.toString('latin1')
  t.ok(exif.includes('prompt:{"1": {"class_type": "EmptyImage"'), 'the prompt is in the EXIF Model tag')
  t.ok(exif.includes('workflow:{"nodes": []}'), 'extra_pnginfo is in the EXIF Make tag')
  const pixels = await sharp(bytes, { animated: true }).removeAlpha().raw().toBuffer()
  COLOURS.forEach((colour, frame) => {
    for (const p of [0, 20 * 12 - 1]) t.same([...pixels.subarray((frame * 240 + p) * 3, (frame * 240 + p) * 3 + 3)], colour, `lossless frame ${frame} pixel ${p}`)
  })

  const still = (await completed(sim, { 1: frames(6, 4)[1], 2: { class_type: 'SaveAnimatedWEBP', inputs: { images: ['1', 0], filename_prefix: 'one', fps: 6, lossless: false, quality: 90, method: 'fastest' } } })).outputs['2']
  t.notOk('animated' in still, 'one image: no animated flag')
  const one = await sharp((await download(sim, still.images[0])).bytes).metadata()
  t.match(one, { format: 'webp', width: 6, height: 4 })
  t.notOk((one.pages ?? 1) > 1, 'one image is a still WebP')
})

t.test('SaveAnimatedPNG writes an APNG as Pillow does', async t => {
  const sim = await startSim(t)
  const output = (await completed(sim, { ...frames(10, 6), 6: { class_type: 'SaveAnimatedPNG', inputs: { images: ['5', 0], filename_prefix: 'anim', fps: 4, compress_level: 4 } } })).outputs['6']
  t.same(output.animated, [true])
  const bytes = (await download(sim, output.images[0])).bytes
  const list = chunks(bytes)
  const ihdr = list[0].data
  t.same([ihdr.readUInt32BE(0), ihdr.readUInt32BE(4)], [10, 6])
  t.equal(list.find(c => c.type === 'acTL')!.data.readUInt32BE(0), 3, 'acTL: three frames')
  const controls = list.filter(c => c.type === 'fcTL')
  t.same(controls.map(c => [c.data.readUInt16BE(20), c.data.readUInt16BE(22)]), [[1, 4], [1, 4], [1, 4]], 'each frame lasts 1/4 s')
  // each frame's data as a standalone PNG, decoded by pngjs
  const frameData = [list.find(c => c.type === 'IDAT')!.data, ...list.filter(c => c.type === 'fdAT').map(c => c.data.subarray(4))]
  t.equal(frameData.length, 3)
  frameData.forEach((data, i) => {
    const rows = inflateSync(data)
    t.equal(rows.length, (10 * 3 + 1) * 6, `frame ${i} holds 10x6 RGB rows`)
    const pixels = unfilter(rows, 10, 6, 3)
    t.same([...pixels.subarray(0, 3)], COLOURS[i], `frame ${i} first pixel`)
    t.same([...pixels.subarray(59 * 3, 60 * 3)], COLOURS[i], `frame ${i} last pixel`)
  })
  const types = list.map(c => c.type)
  const comf = list.filter(c => c.type === 'comf').map(c => c.data.toString('latin1'))
  t.ok(comf[0].startsWith('prompt\0{"1": '), 'the prompt is a comf chunk')
  t.ok(types.lastIndexOf('fdAT') < types.indexOf('comf'), 'comf chunks follow the image data')

  // Pillow drops a frame equal to the one before: three equal images are one plain PNG, still flagged animated
  const same = (await completed(sim, { 1: { class_type: 'EmptyImage', inputs: { width: 8, height: 8, batch_size: 3, color: 0x445566 } }, 2: { class_type: 'SaveAnimatedPNG', inputs: { images: ['1', 0], filename_prefix: 'same', fps: 4, compress_level: 4 } } })).outputs['2']
  t.same(same.animated, [true])
  const plain = (await download(sim, same.images[0])).bytes
  t.notOk(chunks(plain).some(c => c.type === 'acTL'), 'no acTL')
  t.same([...PNG.sync.read(plain).data.subarray(0, 3)], [0x44, 0x55, 0x66])
})

/** Undoes PNG row filters (None, Sub, Up, Average, Paeth) of 8-bit rows with `bpp` bytes per pixel. */
function unfilter (raw: Buffer, width: number, height: number, bpp: number): Buffer {
  const stride = width * bpp
  const out = Buffer.alloc(stride * height)
  for (let y = 0; y < height; y++) {
    const type = raw[y * (stride + 1)]
    for (let i = 0; i < stride; i++) {
      const a = i >= bpp ? out[y * stride + i - bpp] : 0
      const b = y > 0 ? out[(y - 1) * stride + i] : 0
      const c = i >= bpp && y > 0 ? out[(y - 1) * stride + i - bpp] : 0
      const p = a + b - c
      const paeth = Math.abs(p - a) <= Math.abs(p - b) && Math.abs(p - a) <= Math.abs(p - c) ? a : Math.abs(p - b) <= Math.abs(p - c) ? b : c
      const predictor = [0, a, b, (a + b) >> 1, paeth][type]
      out[y * stride + i] = (raw[y * (stride + 1) + 1 + i] + predictor) & 0xff
    }
  }
  return out
}

/** Every video packet with its timestamp, and the track's size and codec, read with mediabunny's demuxer. */
async function demux (bytes: Buffer): Promise<{ format: string, codec: string | null, width: number, height: number, description?: Uint8Array, packets: Array<{ data: Uint8Array, timestamp: number, type: string }> }> {
  const input = new Input({ source: new BufferSource(bytes), formats: ALL_FORMATS })
  const track = (await input.getPrimaryVideoTrack())!
  const config = await track.getDecoderConfig()
  const packets = []
  for await (const packet of new EncodedPacketSink(track).packets()) packets.push({ data: packet.data, timestamp: packet.timestamp, type: packet.type })
  const description = config?.description === undefined ? undefined : new Uint8Array(config.description as ArrayBuffer)
  return { format: (await input.getFormat()).name, codec: track.codec, width: track.displayWidth, height: track.displayHeight, description, packets }
}

t.test('SaveWEBM writes a WebM whose VP8 frames decode to the images', async t => {
  const sim = await startSim(t)
  const prompt = { ...frames(24, 16), 6: { class_type: 'SaveWEBM', inputs: { images: ['5', 0], filename_prefix: 'clip', codec: 'vp9', fps: 8, crf: 4 } } }
  const output = (await completed(sim, prompt)).outputs['6']
  t.match(output, { images: [{ filename: /^[0-9a-f]{64}\.webm$/, type: 'output' }], animated: [true] })
  const { response, bytes } = await download(sim, output.images[0])
  t.equal(response.headers.get('content-type'), 'video/webm')
  t.same([...bytes.subarray(0, 4)], [0x1a, 0x45, 0xdf, 0xa3], 'EBML header')
  const video = await demux(bytes)
  t.match(video, { format: 'WebM', codec: 'vp8', width: 24, height: 16 })
  t.same(video.packets.map(p => p.timestamp), [0, 0.125, 0.25], 'one frame every 1/8 s')
  for (const [i, packet] of video.packets.entries()) {
    // a VP8 key frame wrapped as a lossy WebP is something sharp (libwebp) decodes
    const riff = Buffer.alloc(20)
    riff.write('RIFF', 0, 'latin1')
    riff.writeUInt32LE(12 + packet.data.length + (packet.data.length % 2), 4)
    riff.write('WEBPVP8 ', 8, 'latin1')
    riff.writeUInt32LE(packet.data.length, 16)
    const webp = Buffer.concat([riff, packet.data, Buffer.alloc(packet.data.length % 2)])
    const { data, info } = await sharp(webp).raw().toBuffer({ resolveWithObject: true })
    t.same([info.width, info.height], [24, 16])
    near(t, data.subarray((8 * 24 + 12) * info.channels), COLOURS[i], 8, `frame ${i}`)
  }
})

/** Reads I_PCM macroblocks from an H.264 IDR slice (the only coding SaveVideo uses) and returns RGB at (x, y). */
function pcmPixel (sample: Uint8Array, avcC: Uint8Array, x: number, y: number): Rgb {
  const unescape = (nal: Uint8Array): Uint8Array => {
    const out: number[] = []
    for (let i = 0; i < nal.length; i++) {
      if (i >= 2 && nal[i] === 3 && nal[i - 1] === 0 && nal[i - 2] === 0) continue
      out.push(nal[i])
    }
    return Uint8Array.from(out)
  }
  const reader = (bytes: Uint8Array): { u: (n: number) => number, ue: () => number, align: () => void, pos: () => number } => {
    let bit = 0
    const u = (n: number): number => {
      if (bit + n > bytes.length * 8) throw new Error('read past the end')
      let v = 0
      for (let i = 0; i < n; i++, bit++) v = v * 2 + ((bytes[bit >> 3] >> (7 - (bit & 7))) & 1)
      return v
    }
    const ue = (): number => {
      let zeros = 0
      while (u(1) === 0) zeros++
      return 2 ** zeros - 1 + u(zeros)
    }
    return { u, ue, align: () => { bit = Math.ceil(bit / 8) * 8 }, pos: () => bit >> 3 }
  }
  // avcC: SPS then PPS
  const spsLength = (avcC[6] << 8) | avcC[7]
  const sps = reader(unescape(avcC.subarray(9, 8 + spsLength)))
  sps.u(24)
  sps.ue()
  sps.ue()
  if (sps.ue() !== 2) throw new Error('expected pic_order_cnt_type 2')
  sps.ue()
  sps.u(1)
  const mbWidth = sps.ue() + 1
  const ppsAt = 8 + spsLength + 1
  const pps = reader(unescape(avcC.subarray(ppsAt + 3, ppsAt + 2 + ((avcC[ppsAt] << 8) | avcC[ppsAt + 1]))))
  pps.ue() // pic_parameter_set_id
  pps.ue() // seq_parameter_set_id
  if (pps.u(1) !== 0) throw new Error('expected CAVLC')
  pps.u(1)
  pps.ue() // num_slice_groups_minus1
  pps.ue()
  pps.ue()
  pps.u(3) // weighted prediction
  pps.ue() // pic_init_qp_minus26, pic_init_qs_minus26, chroma_qp_index_offset (se)
  pps.ue()
  pps.ue()
  const deblockingControl = pps.u(1) === 1
  // the slice: one NAL, 4-byte length
  const nal = unescape(sample.subarray(4))
  if ((nal[0] & 0x1f) !== 5) throw new Error('expected an IDR slice')
  const slice = reader(nal.subarray(1))
  slice.ue()
  slice.ue()
  slice.ue()
  slice.u(4)
  slice.ue()
  slice.u(2)
  slice.ue()
  if (deblockingControl && slice.ue() !== 1) slice.ue()
  const target = Math.floor(y / 16) * mbWidth + Math.floor(x / 16)
  const body = nal.subarray(1)
  for (let mb = 0; ; mb++) {
    if (slice.ue() !== 25) throw new Error('expected mb_type I_PCM')
    slice.align()
    const at = slice.pos()
    if (mb === target) {
      const luma = body[at + (y % 16) * 16 + (x % 16)]
      const cb = body[at + 256 + Math.floor((y % 16) / 2) * 8 + Math.floor((x % 16) / 2)]
      const cr = body[at + 320 + Math.floor((y % 16) / 2) * 8 + Math.floor((x % 16) / 2)]
      const l = 1.164 * (luma - 16)
      return [l + 1.596 * (cr - 128), l - 0.392 * (cb - 128) - 0.813 * (cr - 128), l + 2.017 * (cb - 128)].map(v => Math.round(Math.min(255, Math.max(0, v)))) as Rgb
    }
    slice.u(384 * 8)
  }
}

t.test('SaveVideo writes an H.264 MP4 of the frames CreateVideo collected', async t => {
  const sim = await startSim(t)
  const prompt = (width: number): Record<string, any> => ({
    ...frames(width, 20),
    6: { class_type: 'CreateVideo', inputs: { images: ['5', 0], fps: 10 } },
    7: { class_type: 'SaveVideo', inputs: { video: ['6', 0], filename_prefix: 'video/ComfyUI', format: 'auto', codec: 'auto' } }
  })
  const output = (await completed(sim, prompt(36))).outputs['7']
  t.match(output, { images: [{ filename: /^[0-9a-f]{64}\.mp4$/, type: 'output' }], animated: [true] })
  const { response, bytes } = await download(sim, output.images[0])
  t.equal(response.headers.get('content-type'), 'video/mp4')
  t.equal(bytes.toString('latin1', 4, 8), 'ftyp')
  const video = await demux(bytes)
  t.match(video, { format: 'MP4', codec: 'avc', width: 36, height: 20 })
  t.same(video.packets.map(p => p.timestamp), [0, 0.1, 0.2], 'one frame every 1/10 s')
  t.same(video.packets.map(p => p.type), ['key', 'key', 'key'])
  for (const [i, packet] of video.packets.entries()) {
    for (const [x, y] of [[0, 0], [35, 19], [20, 10]]) near(t, pcmPixel(packet.data, video.description!, x, y), COLOURS[i], 3, `frame ${i} at ${x},${y}`)
  }

  const odd = await run(sim, prompt(35))
  t.equal(odd.status, 'failed', 'H.264 4:2:0 needs an even size')
  t.match(odd.execution_error, { node_id: '7', exception_type: 'ValueError' })
})

t.test('SaveVideo of a video with audio adds a FLAC track cut to the video length', async t => {
  const sim = await startSim(t)
  const prompt = {
    ...frames(16, 16),
    ...sound(2),
    9: { class_type: 'CreateVideo', inputs: { images: ['5', 0], fps: 10, audio: ['8', 0] } },
    10: { class_type: 'SaveVideo', inputs: { video: ['9', 0], filename_prefix: 'video/ComfyUI', format: 'auto', codec: 'auto' } }
  }
  const bytes = (await download(sim, (await completed(sim, prompt)).outputs['10'].images[0])).bytes
  const input = new Input({ source: new BufferSource(bytes), formats: ALL_FORMATS })
  const audio = (await input.getPrimaryAudioTrack())!
  t.match(audio, { codec: 'flac', sampleRate: 44100, numberOfChannels: 2 })
  let samples = 0
  for await (const packet of new EncodedPacketSink(audio).packets()) {
    t.equal((packet.data[0] << 8 | packet.data[1]) & 0xfffe, 0xfff8, 'a FLAC frame')
    samples += Math.round(packet.duration * 44100)
  }
  t.equal(samples, Math.ceil(3 / 10 * 44100), 'three frames at 10 fps of 44.1 kHz audio')
  t.equal((await demux(bytes)).packets.length, 3, 'the video track is still there')
})

t.test('GetVideoComponents gives back the frames, the audio and the frame rate', async t => {
  const sim = await startSim(t)
  const prompt = {
    ...frames(8, 8),
    ...sound(1),
    9: { class_type: 'CreateVideo', inputs: { images: ['5', 0], fps: 12, audio: ['8', 0] } },
    10: { class_type: 'GetVideoComponents', inputs: { video: ['9', 0] } },
    11: { class_type: 'SaveImage', inputs: { images: ['10', 0], filename_prefix: 'frames' } },
    12: { class_type: 'SaveAudio', inputs: { audio: ['10', 1], filename_prefix: 'audio/ComfyUI' } },
    13: { class_type: 'CreateVideo', inputs: { images: ['10', 0], fps: ['10', 2] } },
    14: { class_type: 'SaveVideo', inputs: { video: ['13', 0], filename_prefix: 'again', format: 'mp4', codec: 'h264' } }
  }
  const done = await completed(sim, prompt)
  const images = done.outputs['11'].images
  t.equal(images.length, 3)
  for (const [i, item] of images.entries()) t.same([...PNG.sync.read((await download(sim, item)).bytes).data.subarray(0, 3)], COLOURS[i], `frame ${i}`)
  t.match(done.outputs['12'].audio, [{ filename: /\.flac$/ }])
  const again = await demux((await download(sim, done.outputs['14'].images[0])).bytes)
  t.same(again.packets.map(p => p.timestamp), [0, 1 / 12, 2 / 12], 'the fps came through GetVideoComponents')

  const silent = await run(sim, { ...frames(8, 8), 6: { class_type: 'CreateVideo', inputs: { images: ['5', 0], fps: 12 } }, 7: { class_type: 'GetVideoComponents', inputs: { video: ['6', 0] } }, 8: { class_type: 'SaveAudio', inputs: { audio: ['7', 1], filename_prefix: 'a' } } })
  t.equal(silent.status, 'failed', 'a video made without audio has None as its audio')
  t.match(silent.execution_error, { node_id: '8', exception_type: 'TypeError', exception_message: /NoneType/ })
})

t.test('a job whose output is an MP4 counts as video for output_type', async t => {
  const sim = await startSim(t)
  const id = await submit(sim, { prompt: { ...frames(8, 8), 6: { class_type: 'CreateVideo', inputs: { images: ['5', 0], fps: 5 } }, 7: { class_type: 'SaveVideo', inputs: { video: ['6', 0], filename_prefix: 'v', format: 'auto', codec: 'auto' } } } })
  await waitForStatus(sim, id, ['completed'])
  const ids = async (type: string): Promise<string[]> => (await sim.json(`/api/jobs?output_type=${type}`)).body.jobs.map((job: any) => job.id)
  t.same(await ids('video'), [id])
  t.same(await ids('image'), [])
})

t.test("Wan 2.1's text-to-video template runs: a video latent decodes to (frames - 1) * 4 + 1 images", async t => {
  const sim = await startSim(t, { stepMs: 1 })
  const prompt: Record<string, any> = {
    37: { class_type: 'UNETLoader', inputs: { unet_name: 'wan2.1_t2v_1.3B_fp16.safetensors', weight_dtype: 'default' } },
    38: { class_type: 'CLIPLoader', inputs: { clip_name: 'umt5_xxl_fp8_e4m3fn_scaled.safetensors', type: 'wan', device: 'default' } },
    39: { class_type: 'VAELoader', inputs: { vae_name: 'wan_2.1_vae.safetensors' } },
    6: { class_type: 'CLIPTextEncode', inputs: { text: 'a fox in the snow', clip: ['38', 0] } },
    7: { class_type: 'CLIPTextEncode', inputs: { text: 'blurry', clip: ['38', 0] } },
    40: { class_type: 'EmptyHunyuanLatentVideo', inputs: { width: 64, height: 48, length: 9, batch_size: 1 } },
    48: { class_type: 'ModelSamplingSD3', inputs: { model: ['37', 0], shift: 8 } },
    3: { class_type: 'KSampler', inputs: { seed: 82628696717253, steps: 2, cfg: 6, sampler_name: 'uni_pc', scheduler: 'simple', denoise: 1, model: ['48', 0], positive: ['6', 0], negative: ['7', 0], latent_image: ['40', 0] } },
    8: { class_type: 'VAEDecode', inputs: { samples: ['3', 0], vae: ['39', 0] } },
    28: { class_type: 'SaveAnimatedWEBP', inputs: { images: ['8', 0], filename_prefix: 'ComfyUI', fps: 16, lossless: false, quality: 90, method: 'default' } },
    49: { class_type: 'CreateVideo', inputs: { images: ['8', 0], fps: 16 } },
    50: { class_type: 'SaveVideo', inputs: { video: ['49', 0], filename_prefix: 'video/ComfyUI', format: 'auto', codec: 'auto' } }
  }
  const done = await completed(sim, prompt)
  const webp = await sharp((await download(sim, done.outputs['28'].images[0])).bytes, { animated: true }).metadata()
  t.match(webp, { width: 64, pageHeight: 48, pages: 9 }, 'length 9: three latent frames, nine images')
  const mp4 = await demux((await download(sim, done.outputs['50'].images[0])).bytes)
  t.match(mp4, { width: 64, height: 48 })
  t.equal(mp4.packets.length, 9)

  const i2v = {
    ...frames(32, 32),
    38: prompt[38],
    39: prompt[39],
    6: prompt[6],
    7: prompt[7],
    41: { class_type: 'WanImageToVideo', inputs: { positive: ['6', 0], negative: ['7', 0], vae: ['39', 0], start_image: ['1', 0], width: 32, height: 32, length: 5, batch_size: 1 } },
    8: { class_type: 'VAEDecode', inputs: { samples: ['41', 2], vae: ['39', 0] } },
    10: { class_type: 'SaveImage', inputs: { images: ['8', 0], filename_prefix: 'i2v' } }
  }
  t.equal((await completed(sim, i2v)).outputs['10'].images.length, 5, 'WanImageToVideo length 5: five images')
})

t.test('a job cancelled while SaveVideo encodes stops there: no executed event, no output, nothing after the end', async t => {
  const sim = await startSim(t)
  const ws = await openWs(t, sim)
  const prompt = {
    1: { class_type: 'EmptyImage', inputs: { width: 832, height: 480, batch_size: 33, color: 0x336699 } },
    2: { class_type: 'CreateVideo', inputs: { images: ['1', 0], fps: 16 } },
    3: { class_type: 'SaveVideo', inputs: { video: ['2', 0], filename_prefix: 'video/cancelled', format: 'mp4', codec: 'h264' } }
  }
  const id = await submit(sim, { prompt })
  await ws.waitFor(m => m.type === 'executing' && m.data?.prompt_id === id && m.data?.node === '3', 'SaveVideo started')
  t.equal((await sim.json(`/api/jobs/${id}/cancel`, { method: 'POST' })).status, 200)
  const ended = await waitForStatus(sim, id, ['cancelled', 'failed'])
  // Long enough for the encoder (about a second for these 33 frames) to have finished, had the run gone on.
  await new Promise(resolve => setTimeout(resolve, 2500))
  const events = ws.messages().filter(m => m.data?.prompt_id === id)
  const end = events.findIndex(m => m.type === 'executing' && m.data?.node === null)
  t.ok(end >= 0, 'the run ended')
  t.same(events.slice(end + 1).map(m => m.type), [], 'no event after the end')
  t.notOk(events.some(m => m.type === 'executed' && m.data?.node === '3'), 'SaveVideo never reported an output')
  const job = (await sim.json(`/api/jobs/${id}`)).body
  t.equal(job.status, ended.status)
  t.notOk(JSON.stringify(job.outputs ?? {}).includes('cancelled_'), 'the cancelled job has no video output')
})
