import { randomUUID } from 'node:crypto'
import t from 'tap'
import { QUEUE_LIMIT } from '../../src/simulator/app.js'
import { conforms, defaultPrompt, KEY, OTHER_KEY, startSim, submit, type Sim } from './fixtures/helpers.js'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

async function refused (sim: Sim, body: unknown): Promise<any> {
  const { status, body: answer } = await sim.json('/api/prompt', { method: 'POST', json: body })
  if (status !== 400) throw new Error(`expected 400, got ${status}: ${JSON.stringify(answer)}`)
  return answer
}

function withInputs (patch: (prompt: Record<string, any>) => void): Record<string, any> {
  const prompt = defaultPrompt()
  patch(prompt)
  return { prompt }
}

t.test('a valid prompt is accepted with a uuid, a per-account number and no node errors', async t => {
  const sim = await startSim(t, { stepMs: 1 })
  const first = await sim.json('/api/prompt', { method: 'POST', json: { prompt: defaultPrompt() } })
  t.equal(first.status, 200)
  conforms(t, 'PromptResponse', first.body)
  t.match(first.body, { prompt_id: UUID, number: 1, node_errors: {} })
  t.same(Object.keys(first.body), ['prompt_id', 'number', 'node_errors'])
  const second = await sim.json('/api/prompt', { method: 'POST', json: { prompt: defaultPrompt() } })
  t.equal(second.body.number, 2)
  t.not(second.body.prompt_id, first.body.prompt_id)
  const other = await sim.json('/api/prompt', { method: 'POST', json: { prompt: defaultPrompt() }, key: OTHER_KEY })
  t.equal(other.body.number, 1, 'another account counts from 1')
  t.same(sim.app.simulator.jobs(KEY).map(job => job.id), [first.body.prompt_id, second.body.prompt_id])
})

t.test('a client prompt_id is kept only when it is a canonical unused uuid', async t => {
  const sim = await startSim(t, { stepMs: 1 })
  const chosen = randomUUID()
  t.equal(await submit(sim, { prompt: defaultPrompt(), prompt_id: chosen }), chosen, 'kept')
  const reused = await submit(sim, { prompt: defaultPrompt(), prompt_id: chosen })
  t.not(reused, chosen, 'a used id is replaced')
  t.match(reused, UUID)
  const upper = randomUUID().toUpperCase()
  t.not(await submit(sim, { prompt: defaultPrompt(), prompt_id: upper }), upper, 'upper case is not canonical')
  t.match(await submit(sim, { prompt: defaultPrompt(), prompt_id: 'my-job' }), UUID, 'a non-uuid is replaced')
  t.match(await submit(sim, { prompt: defaultPrompt(), prompt_id: 12 }), UUID)
})

t.test('extra_data is stored with client_id, and the partner keys come back redacted', async t => {
  const sim = await startSim(t, { stepMs: 1 })
  const id = await submit(sim, {
    prompt: defaultPrompt(),
    client_id: 'c8e1d4f2',
    extra_data: {
      api_key_comfy_org: 'comfyui-partner-secret',
      auth_token_comfy_org: 'token-secret',
      extra_pnginfo: { workflow: { id: '550e8400-e29b-41d4-a716-446655440000', nodes: [], links: [], version: 0.4 } },
      preview_method: 'auto'
    }
  })
  const { body: detail, status } = await sim.json(`/api/jobs/${id}`)
  t.equal(status, 200)
  t.same(detail.workflow.extra_data, {
    api_key_comfy_org: '[REDACTED]',
    auth_token_comfy_org: '[REDACTED]',
    extra_pnginfo: { workflow: { id: '550e8400-e29b-41d4-a716-446655440000', nodes: [], links: [], version: 0.4 } },
    preview_method: 'auto',
    client_id: 'c8e1d4f2'
  })
  t.same(detail.workflow.prompt, defaultPrompt(), 'the graph is stored as posted')
  t.equal(detail.workflow_id, '550e8400-e29b-41d4-a716-446655440000', 'workflow_id comes from the UI workflow id')
  t.notOk(JSON.stringify(detail).includes('secret'), 'no secret in the detail')
  t.equal(sim.app.simulator.jobs(KEY)[0].workflow?.extra_data?.api_key_comfy_org, 'comfyui-partner-secret', 'the control API sees what was sent')
  const topLevel = await submit(sim, { prompt: defaultPrompt(), workflow_id: 'wf-top' })
  t.equal((await sim.json(`/api/jobs/${topLevel}`)).body.workflow_id, 'wf-top', 'a top-level workflow_id wins')
})

t.test('the body is read as JSON whatever the content type', async t => {
  const sim = await startSim(t, { stepMs: 1 })
  for (const type of ['text/plain', 'application/x-www-form-urlencoded']) {
    const response = await sim.call('/api/prompt', { method: 'POST', headers: { 'content-type': type }, body: JSON.stringify({ prompt: defaultPrompt() }) })
    t.equal(response.status, 200, type)
  }
  const broken = await sim.json('/api/prompt', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"prompt": {' })
  t.equal(broken.status, 400)
  t.same(broken.body, { error: { type: 'invalid_prompt', message: 'The request body is not valid JSON', details: '', extra_info: {} }, node_errors: {} })
})

t.test('no prompt, or not an object', async t => {
  const sim = await startSim(t)
  const empty = await sim.json('/api/prompt', { method: 'POST' })
  t.equal(empty.status, 400)
  t.same(empty.body, { error: { type: 'no_prompt', message: 'No prompt provided', details: 'No prompt provided', extra_info: {} }, node_errors: {} })
  t.same((await refused(sim, { client_id: 'x' })).error.type, 'no_prompt')
  t.same((await refused(sim, { prompt: [1, 2] })).error.type, 'invalid_prompt')
  t.same((await refused(sim, { prompt: defaultPrompt(), extra_data: 'x' })).error.type, 'invalid_prompt')
  t.same(sim.app.simulator.jobs(KEY), [], 'nothing was queued')
})

t.test('an unknown class_type is missing_node_type, named by its title', async t => {
  const sim = await startSim(t)
  const titled = await refused(sim, withInputs(p => { p[12] = { class_type: 'FooNode', inputs: {}, _meta: { title: 'Foo Title' } } }))
  t.same(titled, {
    error: {
      type: 'missing_node_type',
      message: "Node 'Foo Title' not found. The custom node may not be installed.",
      details: "Node ID '#12'",
      extra_info: { node_id: '12', class_type: 'FooNode', node_title: 'Foo Title' }
    },
    node_errors: {}
  })
  const untitled = await refused(sim, withInputs(p => { p[12] = { class_type: 'FooNode', inputs: {} } }))
  t.equal(untitled.error.message, "Node 'FooNode' not found. The custom node may not be installed.")
  const classless = await refused(sim, withInputs(p => { p[12] = { inputs: {} } }))
  t.equal(classless.error.type, 'missing_node_type')
  t.same(classless.error.extra_info, { node_id: '12', class_type: null, node_title: null })
})

t.test('a graph without output nodes is prompt_no_outputs', async t => {
  const sim = await startSim(t)
  const body = await refused(sim, withInputs(p => { delete p[9] }))
  t.same(body, { error: { type: 'prompt_no_outputs', message: 'Prompt has no outputs', details: '', extra_info: {} }, node_errors: {} })
  t.equal((await refused(sim, { prompt: defaultPrompt(), partial_execution_targets: ['3'] })).error.type, 'prompt_no_outputs', 'targets that are not outputs')
})

t.test('a missing required input fails validation on that node only', async t => {
  const sim = await startSim(t)
  const body = await refused(sim, withInputs(p => { delete p[5].inputs.width }))
  t.same(body, {
    // local lists only the output node's own errors here (observed finding 7: usually "")
    error: { type: 'prompt_outputs_failed_validation', message: 'Prompt outputs failed validation', details: '', extra_info: {} },
    node_errors: {
      5: {
        errors: [{ type: 'required_input_missing', message: 'Required input is missing', details: 'width', extra_info: { input_name: 'width' } }],
        dependent_outputs: ['9'],
        class_type: 'EmptyLatentImage'
      }
    }
  })
})

t.test('bad widget values: not in list, out of range, wrong type', async t => {
  const sim = await startSim(t)
  const ckpt = await refused(sim, withInputs(p => { p[4].inputs.ckpt_name = 'missing.safetensors' }))
  const ckptError = ckpt.node_errors[4].errors[0]
  t.match(ckptError, { type: 'value_not_in_list', message: 'Value not in list', extra_info: { input_name: 'ckpt_name', received_value: 'missing.safetensors' } })
  t.match(ckptError.details, /^ckpt_name: 'missing.safetensors' not in \['v1-5-pruned-emaonly.safetensors', /, 'a short list is printed')
  t.not(ckptError.extra_info.input_config, null)
  const sampler = await refused(sim, withInputs(p => { p[3].inputs.sampler_name = 'warp' }))
  t.match(sampler.node_errors[3].errors[0], { type: 'value_not_in_list', details: /^sampler_name: 'warp' not in \(list of length \d+\)$/, extra_info: { input_config: null } })

  const small = await refused(sim, withInputs(p => { p[3].inputs.steps = 0 }))
  t.match(small.node_errors[3].errors[0], { type: 'value_smaller_than_min', message: 'Value 0 smaller than min of 1', details: 'steps', extra_info: { input_name: 'steps', received_value: 0 } })
  const big = await refused(sim, withInputs(p => { p[5].inputs.width = 20000 }))
  t.match(big.node_errors[5].errors[0], { type: 'value_bigger_than_max', message: 'Value 20000 bigger than max of 16384' })
  const batch = await refused(sim, withInputs(p => { p[5].inputs.batch_size = 4097 }))
  t.match(batch.node_errors[5].errors[0], { type: 'value_bigger_than_max', details: 'batch_size' })
  const word = await refused(sim, withInputs(p => { p[3].inputs.steps = 'many' }))
  t.match(word.node_errors[3].errors[0], {
    type: 'invalid_input_type',
    message: 'Failed to convert an input steps value to a INT value',
    details: "steps, many, invalid literal for int() with base 10: 'many'",
    extra_info: { input_name: 'steps', received_value: 'many' }
  })
  t.same(word.node_errors[3].dependent_outputs, ['9'])

  const several = await refused(sim, withInputs(p => { p[3].inputs.steps = 0; p[3].inputs.cfg = 101 }))
  t.same(several.node_errors[3].errors.map((e: any) => e.type), ['value_smaller_than_min', 'value_bigger_than_max'], 'every error of a node is listed')
  t.match(several.node_errors[3].errors[1], { message: 'Value 101.0 bigger than max of 100.0' }, 'FLOAT values print like Python floats')
  const onOutput = await refused(sim, withInputs(p => { delete p[9].inputs.filename_prefix }))
  t.equal(onOutput.error.details, 'Required input is missing: filename_prefix', "the output node's own errors are summarised")

  const coerced = await sim.json('/api/prompt', { method: 'POST', json: withInputs(p => { p[3].inputs.steps = '3'; p[3].inputs.cfg = '7.5' }) })
  t.equal(coerced.status, 200, 'numeric strings convert like int()/float()')
  const stored = sim.app.simulator.jobs(KEY).at(-1)?.workflow?.prompt as any
  t.same([stored[3].inputs.steps, stored[3].inputs.cfg], [3, 7.5], 'the stored prompt holds the converted values, as local stores it')
})

t.test('links must point at an existing node and slot of the right type', async t => {
  const sim = await startSim(t)
  // A link Python cannot follow raises inside validate_inputs: on the output node itself that is
  // exception_during_validation, deeper down the node that links to it reports exception_during_inner_validation.
  const direct = await refused(sim, withInputs(p => { p[9].inputs.images = ['99', 0] }))
  t.same(direct.node_errors, {
    9: {
      errors: [{ type: 'exception_during_validation', message: 'Exception when validating node', details: "'99'", extra_info: { exception_type: 'KeyError', traceback: direct.node_errors[9].errors[0].extra_info.traceback } }],
      dependent_outputs: ['9'],
      class_type: 'SaveImage'
    }
  })
  t.ok(direct.node_errors[9].errors[0].extra_info.traceback.length > 0)
  const dangling = await refused(sim, withInputs(p => { p[3].inputs.model = ['99', 0] }))
  t.match(dangling.node_errors[8].errors[0], { type: 'exception_during_inner_validation', details: "'99'", extra_info: { input_name: 'samples', exception_type: 'KeyError', linked_node: ['3', 0] } })
  const slot = await refused(sim, withInputs(p => { p[8].inputs.vae = ['4', 7] }))
  t.match(slot.node_errors[9].errors[0], { type: 'exception_during_inner_validation', details: 'tuple index out of range', extra_info: { input_name: 'images', exception_type: 'IndexError' } })
  const shape = await refused(sim, withInputs(p => { p[8].inputs.vae = ['4'] }))
  t.match(shape.node_errors[8].errors[0], { type: 'bad_linked_input', message: 'Bad linked input, must be a length-2 list of [node_id, slot_index]' })
  const mismatch = await refused(sim, withInputs(p => { p[3].inputs.positive = ['4', 0] }))
  t.same(mismatch.node_errors[3].errors[0], {
    type: 'return_type_mismatch',
    message: 'Return type mismatch between linked nodes',
    details: 'positive, received_type(MODEL) mismatch input_type(CONDITIONING)',
    extra_info: { input_name: 'positive', input_config: ['CONDITIONING', { tooltip: 'The conditioning describing the attributes you want to include in the image.' }], received_type: 'MODEL', linked_node: ['4', 0] }
  })
  t.same(Object.keys(mismatch.node_errors), ['3'], 'downstream nodes are not repeated')
  const cycle = await refused(sim, withInputs(p => { p[3].inputs.latent_image = ['3', 0] }))
  t.equal(cycle.error.type, 'prompt_outputs_failed_validation')
  t.match(cycle.node_errors[3].errors, [{ type: 'dependency_cycle', message: 'Dependency cycle detected' }], 'a cycle is reported')
})

t.test('an invalid output is dropped and reported while valid ones run', async t => {
  const sim = await startSim(t, { stepMs: 1 })
  const prompt = { ...defaultPrompt(), 10: { class_type: 'PreviewImage', inputs: { images: ['99', 0] } } }
  const { status, body } = await sim.json('/api/prompt', { method: 'POST', json: { prompt } })
  t.equal(status, 200)
  t.same(Object.keys(body.node_errors), ['10'])
  t.same(body.node_errors[10].dependent_outputs, ['10'])
  const queue = await sim.json('/api/queue')
  const tuple = [...queue.body.queue_running, ...queue.body.queue_pending][0]
  t.same(tuple[3], ['9'], 'only the valid output is executed')
})

t.test('partial_execution_targets selects the outputs to run', async t => {
  const sim = await startSim(t, { stepMs: 1 })
  const prompt = { ...defaultPrompt(), 10: { class_type: 'PreviewImage', inputs: { images: ['8', 0] } } }
  await submit(sim, { prompt, partial_execution_targets: ['10'] })
  const queue = await sim.json('/api/queue')
  t.same([...queue.body.queue_running, ...queue.body.queue_pending][0][3], ['10'])
  t.equal((await refused(sim, { prompt, partial_execution_targets: 'x' })).error.type, 'invalid_prompt')
})

t.test('with the queue cap on, a full queue answers 429 QUEUE_LIMIT with Retry-After', async t => {
  const sim = await startSim(t, { queueLimit: QUEUE_LIMIT })
  for (let i = 0; i < QUEUE_LIMIT; i++) sim.app.simulator.seedJob(KEY, { status: 'pending' })
  const { status, headers, body } = await sim.json('/api/prompt', { method: 'POST', json: { prompt: defaultPrompt() } })
  t.equal(status, 429)
  t.equal(headers.get('retry-after'), '5')
  t.equal(body.error.type, 'QUEUE_LIMIT')
  t.type(body.error.message, 'string')
  t.equal(sim.app.simulator.jobs(KEY).length, QUEUE_LIMIT, 'nothing was queued')
  t.equal((await sim.json('/api/prompt', { method: 'POST', json: { prompt: defaultPrompt() }, key: OTHER_KEY })).status, 200, 'the limit is per account')
})

t.test('the queue cap is off by default', async t => {
  const sim = await startSim(t)
  for (let i = 0; i < QUEUE_LIMIT; i++) sim.app.simulator.seedJob(KEY, { status: 'pending' })
  t.equal((await sim.json('/api/prompt', { method: 'POST', json: { prompt: defaultPrompt() } })).status, 200)
})

t.test('GET /api/prompt counts pending and running jobs', async t => {
  const sim = await startSim(t)
  const control = sim.app.simulator
  for (const status of ['pending', 'pending', 'in_progress', 'completed', 'failed', 'cancelled'] as const) control.seedJob(KEY, { status })
  const { status, body } = await sim.json('/api/prompt')
  t.equal(status, 200)
  conforms(t, 'PromptInfo', body)
  t.same(body, { exec_info: { queue_remaining: 3 } })
})

t.test('object_info describes the node set; per-class info is a 404 like the cloud', async t => {
  const sim = await startSim(t)
  const { status, body } = await sim.json('/api/object_info')
  t.equal(status, 200)
  conforms(t, 'ObjectInfoResponse', body)
  for (const name of ['CLIPTextEncode', 'CheckpointLoaderSimple', 'EmptyLatentImage', 'KSampler', 'PreviewImage', 'SaveImage', 'VAEDecode', 'LoadImage', 'ImageScale', 'LoraLoader', 'ControlNetApplyAdvanced', 'UpscaleModelLoader']) {
    t.ok(name in body, `${name} is known`)
  }
  t.match(body.KSampler.input.required.steps, ['INT', { default: 20, min: 1, max: 10000 }])
  t.ok(body.KSampler.input.required.sampler_name[0].includes('euler'))
  t.match(body.EmptyLatentImage.input.required.width, ['INT', { min: 16, max: 16384, step: 8 }])
  t.match(body.EmptyLatentImage.input.required.batch_size, ['INT', { min: 1, max: 4096 }])
  t.ok(body.CheckpointLoaderSimple.input.required.ckpt_name[0].includes('v1-5-pruned-emaonly.safetensors'))
  t.match(body.CLIPTextEncode.input.required.text, ['STRING', { multiline: true }])
  t.same(body.CheckpointLoaderSimple.output, ['MODEL', 'CLIP', 'VAE'])
  t.equal(body.SaveImage.output_node, true)
  t.equal(body.PreviewImage.output_node, true)
  t.equal(body.KSampler.output_node, false)
  t.same(body.KSampler.input_order.required, Object.keys(body.KSampler.input.required))
  // server.py node_info: local's keys in local's order; deprecated/experimental only when set (observed finding 7)
  t.same(Object.keys(body.SaveImage), ['input', 'input_order', 'is_input_list', 'output', 'output_is_list', 'output_name', 'name', 'display_name', 'description', 'python_module', 'category', 'output_node', 'search_aliases'])
  t.same(body.SaveImage.input_order, { required: ['images', 'filename_prefix'], hidden: ['prompt', 'extra_pnginfo'] })
  t.same(body.SaveImage.input.hidden, { prompt: 'PROMPT', extra_pnginfo: 'EXTRA_PNGINFO' })
  t.equal(body.ControlNetApply.deprecated, true)
  t.notOk('deprecated' in body.KSampler)
  t.same(body.ImageToMask.python_module, 'comfy_extras.nodes_mask')
  t.same(body.ControlNetApplyAdvanced.output_name, ['positive', 'negative'])
  for (const path of ['/api/object_info/KSampler', '/api/history', '/api/history/0f3c6e2a-1b7d-4c55-9a1e-2d8f0b6c4a11', '/api/prompt/0f3c6e2a-1b7d-4c55-9a1e-2d8f0b6c4a11']) {
    const stub = await sim.json(path)
    t.equal(stub.status, 404, path)
    conforms(t, 'ErrorResponse', stub.body, path)
  }
  t.match((await sim.json('/api/history')).body.message, /history_v2/, 'the legacy stub names its replacement')
})
