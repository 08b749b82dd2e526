/**
 * The MP4 and WebM files the simulator writes play in a real browser: Debian's Chromium decodes each frame and the
 * MP4's audio, and the colours drawn on a canvas are the colours that went in.
 */
import t from 'tap'
import { openBrowser } from '../fixtures/browser.js'
import { download, startSim, submit, waitForStatus } from './fixtures/helpers.js'

const COLOURS = [[220, 40, 30], [30, 200, 60], [40, 50, 230]]
const FPS = 4

/**
 * Runs in the page (as text: the project compiles without the DOM library): plays the file a moment (counting the
 * audio bytes Chromium decodes), then seeks to each time and reads the centre pixel.
 */
const PLAY = `async ({ base64, type, times }) => {
  const video = document.createElement('video')
  video.muted = true
  video.src = URL.createObjectURL(new Blob([Uint8Array.from(atob(base64), c => c.charCodeAt(0))], { type }))
  await new Promise((resolve, reject) => {
    video.onloadeddata = resolve
    video.onerror = () => reject(new Error('cannot play: ' + (video.error ? video.error.message : '')))
  })
  await video.play()
  await new Promise(resolve => setTimeout(resolve, 300))
  video.pause()
  const audioBytes = video.webkitAudioDecodedByteCount
  const pixels = []
  for (const time of times) {
    // 'seeked' may come before the frame is decoded (seen on a loaded machine): wait for it to be shown too.
    const shown = new Promise(resolve => { video.requestVideoFrameCallback(resolve); setTimeout(resolve, 3000) })
    const seeked = new Promise(resolve => { video.onseeked = resolve })
    video.currentTime = time
    await seeked
    await shown
    const canvas = document.createElement('canvas')
    canvas.width = video.videoWidth
    canvas.height = video.videoHeight
    const context = canvas.getContext('2d')
    context.drawImage(video, 0, 0)
    pixels.push(Array.from(context.getImageData(canvas.width / 2, canvas.height / 2, 1, 1).data.slice(0, 3)))
  }
  return { width: video.videoWidth, height: video.videoHeight, duration: video.duration, pixels, audioBytes }
}`

t.test('Chromium plays SaveVideo MP4 (with its audio) and SaveWEBM WebM with the right size, length and frames', async t => {
  const sim = await startSim(t)
  const images: Record<string, any> = {}
  COLOURS.forEach(([r, g, b], i) => { images[i + 1] = { class_type: 'EmptyImage', inputs: { width: 32, height: 24, batch_size: 1, color: (r << 16) | (g << 8) | b } } })
  images[4] = { class_type: 'ImageBatch', inputs: { image1: ['1', 0], image2: ['2', 0] } }
  images[5] = { class_type: 'ImageBatch', inputs: { image1: ['4', 0], image2: ['3', 0] } }
  const prompt = {
    ...images,
    9: { class_type: 'EmptyLatentAudio', inputs: { seconds: 1, batch_size: 1 } },
    10: { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: 'v1-5-pruned-emaonly.safetensors' } },
    11: { class_type: 'VAEDecodeAudio', inputs: { samples: ['9', 0], vae: ['10', 2] } },
    6: { class_type: 'CreateVideo', inputs: { images: ['5', 0], fps: FPS, audio: ['11', 0] } },
    7: { class_type: 'SaveVideo', inputs: { video: ['6', 0], filename_prefix: 'video/ComfyUI', format: 'mp4', codec: 'h264' } },
    8: { class_type: 'SaveWEBM', inputs: { images: ['5', 0], filename_prefix: 'ComfyUI', codec: 'vp9', fps: FPS, crf: 4 } }
  }
  const done = await waitForStatus(sim, await submit(sim, { prompt }), ['completed', 'failed'])
  t.equal(done.status, 'completed')

  const page = await openBrowser(t)
  for (const [node, type] of [['7', 'video/mp4'], ['8', 'video/webm']]) {
    const bytes = (await download(sim, done.outputs[node].images[0])).bytes
    // a fifth into each frame: Chromium seeks MP4 to the nearest frame and WebM to the one before, which agree there
    const args = { base64: bytes.toString('base64'), type, times: COLOURS.map((_, i) => (i + 0.2) / FPS) }
    const played = await page.evaluate(`(${PLAY})(${JSON.stringify(args)})`) as { width: number, height: number, duration: number, pixels: number[][], audioBytes: number }
    if (type === 'video/mp4') t.ok(played.audioBytes > 0, `the MP4's FLAC track plays (${played.audioBytes} bytes decoded)`)
    else t.equal(played.audioBytes, 0, 'SaveWEBM has no audio, as in ComfyUI')
    t.same([played.width, played.height], [32, 24], `${type} size`)
    t.ok(Math.abs(played.duration - COLOURS.length / FPS) < 0.01, `${type} lasts ${COLOURS.length} frames at ${FPS} fps (${played.duration} s)`)
    played.pixels.forEach((pixel, i) => {
      t.ok(pixel.every((v, c) => Math.abs(v - COLOURS[i][c]) <= 8), `${type} frame ${i}: ${pixel.join(',')} is ${COLOURS[i].join(',')}`)
    })
  }
})
