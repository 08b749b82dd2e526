/** The simulator's model listing: /api/experiment/models and /api/experiment/models/{folder} as the spec gives them. */
import t from 'tap'
import { DEFAULT_MODELS, MODEL_FOLDERS } from '../../src/simulator/models.js'
import { conforms, startSim } from './fixtures/helpers.js'

t.test('the folders and files the loaders accept, in the spec\'s shapes, without a key (public)', async t => {
  const sim = await startSim(t)
  for (const key of [undefined, null]) {
    const folders = await sim.json('/api/experiment/models', { key })
    t.equal(folders.status, 200)
    conforms(t, 'ModelFolderList', folders.body, 'GET /api/experiment/models')
    t.same(folders.body.map((folder: { name: string }) => folder.name), [...MODEL_FOLDERS])
    const files = await sim.json('/api/experiment/models/checkpoints', { key })
    conforms(t, 'ModelFileList', files.body, 'GET /api/experiment/models/checkpoints')
    t.same(files.body.map((file: { name: string }) => file.name), DEFAULT_MODELS.checkpoints)
  }
  const loader = (await sim.json('/api/object_info')).body.CheckpointLoaderSimple.input.required.ckpt_name
  const choices = Array.isArray(loader[0]) ? loader[0] : loader[1].options
  t.same(choices, DEFAULT_MODELS.checkpoints, 'the listing is what CheckpointLoaderSimple accepts')
})

t.test('SIMULATOR_MODELS (the models option) sets the listing; an unknown or empty folder is the spec\'s 404', async t => {
  const sim = await startSim(t, { models: { checkpoints: ['a.safetensors'], loras: [] } })
  t.same((await sim.json('/api/experiment/models/checkpoints')).body, [{ name: 'a.safetensors', pathIndex: 0 }])
  for (const folder of ['nope', 'loras', '__proto__', 'constructor']) {
    const answer = await sim.json(`/api/experiment/models/${folder}`)
    t.equal(answer.status, 404, folder)
    conforms(t, 'ErrorResponse', answer.body, `404 for ${folder}`)
  }
})
