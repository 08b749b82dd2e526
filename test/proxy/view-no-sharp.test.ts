/**
 * A platform where sharp (libvips) cannot load: the proxy starts and serves files, and only a
 * preview= answers 501 with a JSON error. This file's process resolves no `sharp` at all.
 */
import '../fixtures/no-sharp.js'
import t from 'tap'
import { defaultGraph, runJob, startStack } from '../helpers.js'

t.test('without sharp a preview is 501 preview_unavailable and the file itself is still served', async t => {
  await t.rejects(import('sharp'), { code: 'ERR_MODULE_NOT_FOUND' }, 'sharp cannot be loaded here')
  const stack = await startStack(t)
  const { entry } = await runJob(stack.url, { prompt: defaultGraph(9, 96, 64) })
  const { filename } = entry.outputs['9'].images[0]
  for (const preview of ['webp;50', 'jpeg;80']) {
    const response = await fetch(`${stack.url}/view?filename=${filename}&preview=${preview}`)
    t.equal(response.status, 501, preview)
    t.match(response.headers.get('content-type'), /^application\/json/)
    t.match(await response.json(), { error: { type: 'preview_unavailable', message: /sharp/ } })
  }
  const file = await fetch(`${stack.url}/view?filename=${filename}`)
  t.equal(file.status, 200)
  t.equal(file.headers.get('content-type'), 'image/png')
})
