/**
 * /models, /models/{folder} and /embeddings (issue 17; issue 11 rule 7): local's shapes (observed
 * finding 32, a JSON list each), with and without /api, from the cloud's model listing or, where the
 * cloud has none, from the loaders in /object_info.
 */
import t from 'tap'
import { getJson, startStack } from '../helpers.js'
import { DEFAULT_MODELS } from '../../src/simulator/models.js'
import { LOCAL_MODEL_FOLDERS } from '../../src/compat/models.js'

t.test('/models lists local\'s folder names and /models/{folder} the cloud\'s files, with and without /api', async t => {
  const stack = await startStack(t)
  for (const prefix of ['', '/api']) {
    const folders = await getJson(`${stack.url}${prefix}/models`)
    t.equal(folders.status, 200)
    t.match(folders.headers.get('content-type'), /^application\/json/)
    t.ok(Array.isArray(folders.body) && folders.body.every((name: unknown) => typeof name === 'string'), 'a list of folder names')
    t.same(folders.body, LOCAL_MODEL_FOLDERS, 'every folder a local client may ask for')
    const checkpoints = await getJson(`${stack.url}${prefix}/models/checkpoints`)
    t.equal(checkpoints.status, 200)
    t.same(checkpoints.body, DEFAULT_MODELS.checkpoints, 'the file names the cloud lists')
    t.same((await getJson(`${stack.url}${prefix}/models/loras`)).body, DEFAULT_MODELS.loras)
    const gligen = await getJson(`${stack.url}${prefix}/models/gligen`)
    t.same([gligen.status, gligen.body], [200, []], 'a standard folder the cloud has nothing in is empty')
  }
  const sim = stack.simulator.app.simulator
  t.ok(sim.requests.some(r => r.url === '/api/experiment/models/checkpoints' && r.headers['x-api-key'] === stack.key), 'asked the cloud listing with the key')
})

t.test('an unknown folder is a 404 JSON error, and costs no cloud call', async t => {
  const stack = await startStack(t)
  await getJson(`${stack.url}/models`)
  const sim = stack.simulator.app.simulator
  sim.requests.length = 0
  for (const folder of ['no_such_folder', '..%2F..%2Fsecrets', 'clip']) {
    const answer = await getJson(`${stack.url}/models/${folder}`)
    t.equal(answer.status, 404, folder)
    t.equal(answer.body.error.type, 'not_found')
  }
  t.same(sim.requests.filter(r => r.url.startsWith('/api/experiment/models/')), [], 'only folders the cloud lists are asked for')
})

t.test('where the cloud has no model listing, the loaders\' choices in /object_info answer', async t => {
  const stack = await startStack(t)
  const sim = stack.simulator.app.simulator
  sim.faults.set('GET /api/experiment/models', { status: 404 })
  sim.faults.set('GET /api/experiment/models/:folder', { status: 404 })
  t.same((await getJson(`${stack.url}/models`)).body, LOCAL_MODEL_FOLDERS)
  const checkpoints = await getJson(`${stack.url}/api/models/checkpoints`)
  t.same([checkpoints.status, checkpoints.body], [200, [...DEFAULT_MODELS.checkpoints].sort()], 'CheckpointLoaderSimple\'s ckpt_name choices, sorted like local')
  t.same((await getJson(`${stack.url}/models/loras`)).body, [...DEFAULT_MODELS.loras].sort(), 'LoraLoader\'s lora_name choices')
  t.same((await getJson(`${stack.url}/models/gligen`)).body, [], 'a standard folder no loader lists is empty')
  t.equal((await getJson(`${stack.url}/models/unknown`)).status, 404)
  t.ok(sim.requests.some(r => r.url.startsWith('/api/object_info')), 'read the node catalogue')
})

t.test('model listings are cached: many reads, one cloud call each', async t => {
  const stack = await startStack(t)
  for (let i = 0; i < 5; i++) {
    t.equal((await getJson(`${stack.url}/models/checkpoints`)).status, 200)
    t.equal((await getJson(`${stack.url}/models`)).status, 200)
  }
  const calls = stack.simulator.app.simulator.requests.filter(r => r.url.startsWith('/api/experiment/models'))
  t.same(calls.map(r => r.url).sort(), ['/api/experiment/models', '/api/experiment/models/checkpoints'])
})

t.test('a cloud failure on the listing is a JSON 5xx, not a crash', async t => {
  const stack = await startStack(t, { cloudRetries: 0 })
  stack.simulator.app.simulator.faults.set('GET /api/experiment/models', { status: 500 })
  const answer = await getJson(`${stack.url}/models`)
  t.equal(answer.status, 502)
  t.equal(answer.body.error.type, 'cloud_error')
})

t.test('/embeddings is a list ([] when the cloud has none), with and without /api', async t => {
  const stack = await startStack(t, {}, { models: { embeddings: [] } })
  for (const path of ['/embeddings', '/api/embeddings']) {
    const answer = await getJson(`${stack.url}${path}`)
    t.same([answer.status, answer.body], [200, []], path)
    t.match(answer.headers.get('content-type'), /^application\/json/)
  }
})

t.test('/embeddings lists the cloud\'s embeddings without their extension', async t => {
  const stack = await startStack(t, {}, { models: { embeddings: ['easynegative.safetensors', 'bad_hands.pt'] } })
  t.same((await getJson(`${stack.url}/embeddings`)).body, ['easynegative', 'bad_hands'])
  t.same((await getJson(`${stack.url}/models/embeddings`)).body, ['easynegative.safetensors', 'bad_hands.pt'], '/models/embeddings keeps them')
})
