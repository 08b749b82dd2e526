/**
 * A platform where sharp (libvips) cannot load: the simulator still starts and runs everything else, SaveVideo
 * included, and only the savers that need sharp fail, with a Python-style error naming it.
 * This file's process resolves no `sharp` at all.
 */
import '../fixtures/no-sharp.js'
import t from 'tap'
import { startSim, submit, waitForStatus } from './fixtures/helpers.js'

t.test('without sharp: SaveVideo and SaveAnimatedPNG run, SaveAnimatedWEBP fails with ModuleNotFoundError', async t => {
  await t.rejects(import('sharp'), { code: 'ERR_MODULE_NOT_FOUND' }, 'sharp cannot be loaded here')
  const sim = await startSim(t)
  const images = { 1: { class_type: 'EmptyImage', inputs: { width: 8, height: 8, batch_size: 2, color: 0x102030 } } }
  const run = async (saver: Record<string, any>): Promise<any> => await waitForStatus(sim, await submit(sim, { prompt: { ...images, ...saver } }), ['completed', 'failed'])

  const video = await run({ 2: { class_type: 'CreateVideo', inputs: { images: ['1', 0], fps: 8 } }, 3: { class_type: 'SaveVideo', inputs: { video: ['2', 0], filename_prefix: 'v', format: 'auto', codec: 'auto' } } })
  t.equal(video.status, 'completed', 'MP4 needs no sharp')
  const apng = await run({ 2: { class_type: 'SaveAnimatedPNG', inputs: { images: ['1', 0], filename_prefix: 'a', fps: 8, compress_level: 4 } } })
  t.equal(apng.status, 'completed', 'APNG needs no sharp')
  const webp = await run({ 2: { class_type: 'SaveAnimatedWEBP', inputs: { images: ['1', 0], filename_prefix: 'w', fps: 8, lossless: true, quality: 80, method: 'default' } } })
  t.equal(webp.status, 'failed')
  t.match(webp.execution_error, { node_id: '2', exception_type: 'ModuleNotFoundError', exception_message: /sharp/ })
})
