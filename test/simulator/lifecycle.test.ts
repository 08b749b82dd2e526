import { createHash } from 'node:crypto'
import t from 'tap'
import { conforms, defaultPrompt, download, inspectPng, KEY, openWs, OTHER_KEY, startSim, submit, waitFor, waitForStatus } from './fixtures/helpers.js'

const SHA_PNG = /^[0-9a-f]{64}\.png$/

t.test('a job goes pending -> in_progress -> completed and writes real PNGs of the latent size', async t => {
  const sim = await startSim(t, { stepMs: 15 })
  const blocker = await submit(sim, { prompt: defaultPrompt({ steps: 1000 }) })
  await waitForStatus(sim, blocker, ['in_progress'])
  const id = await submit(sim, { prompt: defaultPrompt({ width: 96, height: 40, batch: 2, steps: 6 }) })
  const pending = await sim.json(`/api/jobs/${id}`)
  t.equal(pending.body.status, 'pending', 'pending behind the running job')
  t.match(pending.body, { queue_reason: 'concurrency_limit', queue_position: 1 })
  t.notOk('outputs' in pending.body || 'execution_start_time' in pending.body)
  conforms(t, 'JobDetailResponse', pending.body, 'pending detail')
  await sim.json(`/api/jobs/${blocker}/cancel`, { method: 'POST' })

  const running = await waitForStatus(sim, id, ['in_progress'])
  t.type(running.execution_start_time, 'number')
  t.notOk('outputs' in running || 'execution_status' in running || 'queue_position' in running, 'no terminal fields while running')
  t.same(Object.keys(running.workflow), ['prompt', 'extra_data'])
  conforms(t, 'JobDetailResponse', running, 'in_progress detail')

  const done = await waitForStatus(sim, id, ['completed', 'failed'])
  conforms(t, 'JobDetailResponse', done, 'completed detail')
  t.equal(done.status, 'completed')
  t.ok(done.create_time > 1e12 && done.create_time <= done.execution_start_time, 'ms timestamps, created before started')
  t.ok(done.execution_start_time <= done.execution_end_time && done.execution_end_time <= done.update_time)
  t.ok(done.execution_end_time - done.execution_start_time >= 6 * 15 - 5, 'takes about steps * stepMs')
  const images = done.outputs['9'].images
  t.equal(images.length, 2, 'one file per batch item')
  t.equal(done.outputs_count, 2)
  for (const image of images) {
    t.match(image, { filename: SHA_PNG, subfolder: '', type: 'output' })
    const { response, bytes } = await download(sim, image)
    t.equal(response.status, 200)
    t.equal(response.headers.get('content-type'), 'image/png')
    t.equal(Number(response.headers.get('content-length')), bytes.length)
    t.equal(createHash('sha256').update(bytes).digest('hex') + '.png', image.filename, 'the name is the content hash')
    t.match(inspectPng(bytes), { width: 96, height: 40, colorType: 2, chunks: ['IHDR', 'tEXt', 'IDAT', 'IEND'] })
  }
  t.not(images[0].filename, images[1].filename, 'batch items differ')
  t.same(done.preview_output, { ...images[0], nodeId: '9', mediaType: 'images' })
  t.same(done.execution_meta, { 9: { node_id: '9', display_node: '9', parent_node: null, real_node_id: '9' } })
  const messages = done.execution_status.messages
  t.same(messages.map((m: any) => m[0]), ['execution_start', 'execution_cached', 'execution_success'])
  t.match(done.execution_status, { status_str: 'success', completed: true })
  t.same(messages[1][1].nodes, ['4', '6', '7'], 'the loader and the prompts the cancelled job computed come from the cache')
  t.equal(messages[0][1].timestamp, done.execution_start_time)
  t.equal(messages[2][1].timestamp, done.execution_end_time)
  t.ok(messages.every((m: any) => m[1].prompt_id === id))
  t.notOk('execution_error' in done)
})

t.test('pixels follow the seed: same seed same file, other seed other file', async t => {
  const sim = await startSim(t, { stepMs: 1, concurrency: 3 })
  const ids = [await submit(sim, { prompt: defaultPrompt({ seed: 7 }) }), await submit(sim, { prompt: defaultPrompt({ seed: 7 }) }), await submit(sim, { prompt: defaultPrompt({ seed: 8 }) })]
  const names = []
  for (const id of ids) names.push((await waitForStatus(sim, id, ['completed'])).outputs['9'].images[0].filename)
  t.equal(names[0], names[1])
  t.not(names[0], names[2])
})

t.test('PreviewImage writes temp files', async t => {
  const sim = await startSim(t, { stepMs: 1 })
  const id = await submit(sim, { prompt: defaultPrompt({ preview: true, width: 32, height: 32 }) })
  const done = await waitForStatus(sim, id, ['completed'])
  const image = done.outputs['10'].images[0]
  t.match(image, { filename: SHA_PNG, subfolder: '', type: 'temp' })
  t.match(done.preview_output, { nodeId: '10', mediaType: 'images', type: 'temp' })
  const { bytes } = await download(sim, image)
  t.match(inspectPng(bytes), { width: 32, height: 32 })
  const both = await submit(sim, { prompt: { ...defaultPrompt({ width: 32, height: 32 }), 10: { class_type: 'PreviewImage', inputs: { images: ['8', 0] } } } })
  const finished = await waitForStatus(sim, both, ['completed'])
  t.same(Object.keys(finished.outputs), ['9', '10'])
  t.match(finished.preview_output, { nodeId: '9', type: 'output' }, 'the saved output is preferred for the preview')
  t.equal(finished.outputs_count, 2)
})

t.test('extra_data.simulator makes a job fail at a node with a realistic execution_error', async t => {
  const sim = await startSim(t, { stepMs: 1 })
  const ws = await openWs(t, sim)
  const id = await submit(sim, { prompt: defaultPrompt(), extra_data: { simulator: { outcome: 'fail', node: '3' } } })
  const failed = await waitForStatus(sim, id, ['failed', 'completed'])
  conforms(t, 'JobDetailResponse', failed, 'failed detail')
  t.equal(failed.status, 'failed')
  t.match(failed.execution_error, {
    node_id: '3',
    node_type: 'KSampler',
    exception_type: 'torch.OutOfMemoryError',
    exception_message: /^Allocation on device/,
    current_inputs: { seed: [42], steps: [4], sampler_name: ['euler'] },
    current_outputs: {}
  })
  t.ok(failed.execution_error.traceback.length > 0 && failed.execution_error.traceback.every((line: unknown) => typeof line === 'string'))
  conforms(t, 'ExecutionError', failed.execution_error)
  t.match(failed.execution_status, { status_str: 'error', completed: false })
  const last = failed.execution_status.messages.at(-1)
  t.equal(last[0], 'execution_error')
  t.same(last[1].executed, ['4', '6', '7', '5'], 'the nodes that ran before the failure')
  t.same(failed.outputs, {})
  t.equal(failed.outputs_count, 0)
  t.notOk('preview_output' in failed)
  const end = await ws.waitFor(m => m.type === 'executing' && m.data.node === null && m.data.prompt_id === id)
  const types = ws.messages().map(m => m.type)
  t.same(types.slice(types.lastIndexOf('execution_error')), ['execution_error', 'status', 'executing'])
  t.match(ws.messages().find(m => m.type === 'execution_error')?.data, { prompt_id: id, node_id: '3', node_type: 'KSampler', exception_type: 'torch.OutOfMemoryError', executed: ['4', '6', '7', '5'] })
  t.ok(end)
  const entry = (await sim.json('/api/jobs')).body.jobs[0]
  t.same(entry.execution_error, failed.execution_error, 'the list entry carries the error too')
})

t.test('a failure late in the graph keeps the outputs written before it', async t => {
  const sim = await startSim(t, { stepMs: 1 })
  const prompt = { ...defaultPrompt({ width: 16, height: 16 }), 10: { class_type: 'PreviewImage', inputs: { images: ['8', 0] } } }
  const id = await submit(sim, { prompt, extra_data: { simulator: { outcome: 'fail', node: '10', exception_type: 'RuntimeError', exception_message: 'boom\n' } } })
  const failed = await waitForStatus(sim, id, ['failed'])
  t.same(Object.keys(failed.outputs), ['9'])
  t.match(failed.execution_error, { node_id: '10', node_type: 'PreviewImage', exception_type: 'RuntimeError', exception_message: 'boom\n' })
  t.equal(failed.outputs_count, 1)
})

t.test('an image too large for the simulated GPU fails in VAEDecode with an OOM', async t => {
  const sim = await startSim(t, { stepMs: 1 })
  const id = await submit(sim, { prompt: defaultPrompt({ width: 16384, height: 16384, steps: 1 }) })
  const failed = await waitForStatus(sim, id, ['failed', 'completed'])
  t.match(failed, { status: 'failed', execution_error: { node_id: '8', node_type: 'VAEDecode', exception_type: 'torch.OutOfMemoryError' } })
})

t.test('with concurrency 1 the second job waits until the first is done', async t => {
  const sim = await startSim(t, { stepMs: 10 })
  const first = await submit(sim, { prompt: defaultPrompt({ steps: 8 }) })
  const second = await submit(sim, { prompt: defaultPrompt({ steps: 2 }) })
  await waitForStatus(sim, first, ['in_progress'])
  const waiting = await sim.json(`/api/jobs/${second}`)
  t.match(waiting.body, { status: 'pending', queue_reason: 'concurrency_limit', queue_position: 1 })
  const queue = await sim.json('/api/queue')
  t.same(queue.body.queue_running.map((item: any) => item[1]), [first])
  t.same(queue.body.queue_pending.map((item: any) => item[1]), [second])
  const firstDone = await waitForStatus(sim, first, ['completed'])
  const secondDone = await waitForStatus(sim, second, ['completed'])
  t.ok(secondDone.execution_start_time >= firstDone.execution_end_time, 'the second started after the first ended')
})

t.test('with concurrency 2 two jobs run at once; each account has its own slots', async t => {
  const sim = await startSim(t, { stepMs: 10, concurrency: 2 })
  const a = await submit(sim, { prompt: defaultPrompt({ steps: 20 }) })
  const b = await submit(sim, { prompt: defaultPrompt({ steps: 20 }) })
  const c = await submit(sim, { prompt: defaultPrompt({ steps: 20 }) })
  const other = await submit(sim, { prompt: defaultPrompt({ steps: 20 }) }, OTHER_KEY)
  await waitForStatus(sim, a, ['in_progress'])
  await waitForStatus(sim, b, ['in_progress'])
  await waitForStatus(sim, other, ['in_progress'], OTHER_KEY)
  t.equal((await sim.json(`/api/jobs/${c}`)).body.status, 'pending')
  t.equal((await sim.json('/api/prompt')).body.exec_info.queue_remaining, 3)
  for (const id of [a, b, c]) await sim.json(`/api/jobs/${id}/cancel`, { method: 'POST' })
  await sim.json(`/api/jobs/${other}/cancel`, { method: 'POST', key: OTHER_KEY })
})

t.test('WebSocket: every event of a job, in ComfyUI order, ending with executing null once the job is readable', async t => {
  const sim = await startSim(t, { stepMs: 2 })
  const ws = await openWs(t, sim, { clientId: 'first' })
  const second = await openWs(t, sim, { clientId: 'second' })
  let readAtEnd: any
  ws.socket.on('message', (raw: Buffer, binary: boolean) => {
    const message = binary ? undefined : JSON.parse(raw.toString())
    if (message?.type === 'executing' && message.data.node === null) {
      // read the job the moment the terminal signal arrives
      sim.json(`/api/jobs/${message.data.prompt_id as string}`).then(r => { readAtEnd = r.body }, () => {})
    }
  })
  const id = await submit(sim, { prompt: defaultPrompt({ steps: 8 }), client_id: 'first' })
  await ws.waitFor(m => m.type === 'executing' && m.data.node === null)
  const detail = await waitFor(() => readAtEnd, 'the read after executing null')
  t.equal(detail.status, 'completed', 'the job is completed when executing null arrives')

  const messages = ws.messages()
  for (const message of messages) conforms(t, 'WebSocketMessage', message, `ws ${message.type}`)
  const sequence = messages.slice(1).map(m => m.type === 'executing' ? `executing:${String(m.data.node)}` : m.type)
  // per node: progress_state(running), executing, [progress…], [executed], progress_state(finished) (observed finding 25)
  const node = (id: string, ...middle: string[]): string[] => ['progress_state', `executing:${id}`, ...middle, 'progress_state']
  t.same(sequence, [
    'status', 'execution_start', 'execution_cached',
    ...node('4'), ...node('6'), ...node('7'), ...node('5'),
    ...node('3', ...Array.from({ length: 8 }, () => ['progress_state', 'progress']).flat()),
    ...node('8'), ...node('9', 'executed'),
    'execution_success', 'status', 'executing:null'
  ])
  t.same(messages[1].data, { status: { exec_info: { queue_remaining: 1 } } }, 'status on submit')
  t.same(messages.at(-2)?.data, { status: { exec_info: { queue_remaining: 0 } } }, 'status after the end')
  t.same(messages.at(-1)?.data, { node: null, prompt_id: id })
  t.match(messages.find(m => m.type === 'execution_start')?.data, { prompt_id: id, timestamp: Number })
  t.match(messages.find(m => m.type === 'execution_cached')?.data, { nodes: [], prompt_id: id })
  t.same(messages.find(m => m.type === 'executing')?.data, { node: '4', display_node: '4', prompt_id: id })
  const progress = messages.filter(m => m.type === 'progress').map(m => m.data)
  t.same(progress.map(p => p.value), [1, 2, 3, 4, 5, 6, 7, 8])
  t.ok(progress.every(p => p.max === 8 && p.node === '3' && p.prompt_id === id))
  const state = messages.filter(m => m.type === 'progress_state').at(-1)?.data
  t.same(state.nodes['9'], { value: 1, max: 1, state: 'finished', node_id: '9', prompt_id: id, display_node_id: '9', parent_node_id: null, real_node_id: '9' }, "local's keys only")
  const executed = messages.find(m => m.type === 'executed')?.data
  t.same(executed, { node: '9', display_node: '9', output: detail.outputs['9'], prompt_id: id })
  t.match(messages.find(m => m.type === 'execution_success')?.data, { prompt_id: id, timestamp: detail.execution_end_time })

  const previews = ws.frames.filter((f): f is Buffer => Buffer.isBuffer(f))
  t.equal(previews.length, 4, 'a preview on some steps')
  for (const frame of previews) {
    t.equal(frame.readUInt32BE(0), 1, 'PREVIEW_IMAGE')
    t.equal(frame.readUInt32BE(4), 2, 'PNG')
    t.match(inspectPng(frame.subarray(8)), { width: 8, height: 8 }, 'a small valid PNG (1/8 of the latent size, at least 8 px)')
  }
  const firstPreview = ws.frames.findIndex(f => Buffer.isBuffer(f))
  t.equal((ws.frames[firstPreview - 1] as any).type, 'progress', 'previews come right after a progress message')

  await second.waitFor(m => m.type === 'executing' && m.data.node === null)
  t.same(second.frames.slice(1), ws.frames.slice(1), 'every socket of the account gets every event, whatever its clientId')
})

t.test('cancelling a running job interrupts it at once', async t => {
  const sim = await startSim(t, { stepMs: 20 })
  const ws = await openWs(t, sim)
  const id = await submit(sim, { prompt: defaultPrompt({ steps: 100 }) })
  await ws.waitFor(m => m.type === 'progress', 'the sampler to start')
  const cancel = await sim.json(`/api/jobs/${id}/cancel`, { method: 'POST' })
  t.equal(cancel.status, 200)
  conforms(t, 'CancelResponse', cancel.body)
  t.same(cancel.body, { cancelled: true })
  const detail = (await sim.json(`/api/jobs/${id}`)).body
  conforms(t, 'JobDetailResponse', detail, 'cancelled detail')
  t.equal(detail.status, 'cancelled', 'cancelled as soon as the call returns')
  t.match(detail.execution_status, { status_str: 'error', completed: false })
  const last = detail.execution_status.messages.at(-1)
  t.same(last[0], 'execution_interrupted')
  t.match(last[1], { prompt_id: id, node_id: '3', node_type: 'KSampler', executed: ['4', '6', '7', '5'] })
  t.type(detail.execution_end_time, 'number')
  await ws.waitFor(m => m.type === 'executing' && m.data.node === null)
  const types = ws.messages().map(m => m.type)
  t.same(types.slice(types.indexOf('execution_interrupted')), ['execution_interrupted', 'status', 'executing'])
  const count = ws.frames.length
  await new Promise(resolve => setTimeout(resolve, 60))
  t.equal(ws.frames.length, count, 'nothing more is sent for the job')
  t.same((await sim.json(`/api/jobs/${id}/cancel`, { method: 'POST' })).body, { cancelled: false }, 'a terminal job is not cancelled again')
  t.equal((await sim.json('/api/jobs/0f3c6e2a-1b7d-4c55-9a1e-2d8f0b6c4a11/cancel', { method: 'POST' })).status, 404)
  t.equal((await sim.json('/api/jobs/not-a-uuid/cancel', { method: 'POST' })).status, 400)
})

t.test('a cancelled pending job never starts', async t => {
  const sim = await startSim(t, { stepMs: 5 })
  const first = await submit(sim, { prompt: defaultPrompt({ steps: 6 }) })
  const second = await submit(sim, { prompt: defaultPrompt({ steps: 6 }) })
  await waitForStatus(sim, first, ['in_progress'])
  t.same((await sim.json(`/api/jobs/${second}/cancel`, { method: 'POST' })).body, { cancelled: true })
  await waitForStatus(sim, first, ['completed'])
  await new Promise(resolve => setTimeout(resolve, 30))
  const detail = (await sim.json(`/api/jobs/${second}`)).body
  conforms(t, 'JobDetailResponse', detail)
  t.equal(detail.status, 'cancelled')
  t.notOk('execution_start_time' in detail || 'execution_status' in detail, 'it never ran')
  t.equal((await sim.json(`/api/history_v2/${second}`)).status, 404, 'so it has no history record')
})

t.test('interrupt: a named job, else the oldest running, else the oldest pending', async t => {
  const sim = await startSim(t, { stepMs: 20 })
  const control = sim.app.simulator
  const a = await submit(sim, { prompt: defaultPrompt({ steps: 100 }) })
  const b = await submit(sim, { prompt: defaultPrompt({ steps: 100 }) })
  const c = await submit(sim, { prompt: defaultPrompt({ steps: 100 }) })
  await waitForStatus(sim, a, ['in_progress'])

  const named = await sim.call('/api/interrupt', { method: 'POST', json: { prompt_id: c } })
  t.equal(named.status, 200)
  t.equal(await named.text(), '', 'an empty body')
  t.equal((await sim.json(`/api/jobs/${c}`)).body.status, 'cancelled', 'the named pending job')
  t.equal((await sim.json(`/api/jobs/${a}`)).body.status, 'in_progress')

  t.equal((await sim.call('/api/interrupt', { method: 'POST' })).status, 200)
  t.equal((await sim.json(`/api/jobs/${a}`)).body.status, 'cancelled', 'the running job')
  await waitForStatus(sim, b, ['in_progress'])
  t.equal((await sim.call('/api/interrupt', { method: 'POST', json: {} })).status, 200)
  t.equal((await sim.json(`/api/jobs/${b}`)).body.status, 'cancelled')

  const seeded = control.seedJob(KEY, { status: 'pending' })
  t.equal((await sim.call('/api/interrupt', { method: 'POST' })).status, 200)
  t.equal(control.jobs(KEY).find(job => job.id === seeded.id)?.status, 'cancelled', 'the oldest pending job when nothing runs')
  t.equal((await sim.call('/api/interrupt', { method: 'POST' })).status, 200, 'nothing to interrupt is fine')

  const unknown = await sim.json('/api/interrupt', { method: 'POST', json: { prompt_id: '0f3c6e2a-1b7d-4c55-9a1e-2d8f0b6c4a11' } })
  t.equal(unknown.status, 404)
  conforms(t, 'ErrorResponse', unknown.body)
  t.equal((await sim.json('/api/interrupt', { method: 'POST', json: { prompt_id: 'nope' } })).status, 404)
  t.equal((await sim.json('/api/interrupt', { method: 'POST', json: { prompt_id: 5 } })).status, 400)
})

t.test('a seeded running job can be interrupted too', async t => {
  const sim = await startSim(t)
  const ws = await openWs(t, sim)
  const job = sim.app.simulator.seedJob(KEY, { status: 'in_progress', execution_start_time: Date.now() - 1000, workflow: { prompt: defaultPrompt(), extra_data: {} } })
  t.same((await sim.json(`/api/jobs/${job.id}/cancel`, { method: 'POST' })).body, { cancelled: true })
  const detail = (await sim.json(`/api/jobs/${job.id}`)).body
  t.equal(detail.status, 'cancelled')
  t.same(detail.execution_status.messages.map((m: any) => m[0]), ['execution_start', 'execution_cached', 'execution_interrupted'])
  await ws.waitFor(m => m.type === 'executing' && m.data.node === null && m.data.prompt_id === job.id)
})

t.test('job ids: unknown is 404, not a uuid is 400', async t => {
  const sim = await startSim(t)
  const unknown = await sim.json('/api/jobs/0f3c6e2a-1b7d-4c55-9a1e-2d8f0b6c4a11')
  t.equal(unknown.status, 404)
  t.equal(unknown.body.code, 'NOT_FOUND')
  conforms(t, 'ErrorResponse', unknown.body)
  const bad = await sim.json('/api/jobs/12345')
  t.equal(bad.status, 400)
  conforms(t, 'ErrorResponse', bad.body)
  const seeded = sim.app.simulator.seedJob(KEY, { status: 'completed' })
  t.equal((await sim.json(`/api/jobs/${seeded.id.toUpperCase()}`)).body.id, seeded.id, 'any uuid spelling finds the job')
})
