import t from 'tap'
import WebSocket from 'ws'
import { defaultGraph, getJson, postJson, runJob, startStack, waitFor } from '../helpers.js'

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])

t.test('untranslated routes pass through to /api/<route> with the server key and without client credentials', async t => {
  const stack = await startStack(t)
  const sim = stack.simulator.app.simulator
  const headers = { authorization: 'Bearer client', 'x-api-key': 'client-key', cookie: 'a=b', 'x-comfy-workspace-id': 'ws-1' }
  for (const path of ['/history_v2', '/api/history_v2', '/history_v2?max_items=1']) {
    sim.requests.length = 0
    const { status, body } = await getJson(`${stack.url}${path}`, { headers })
    t.equal(status, 200, path)
    t.type(body, 'object')
    const [forwarded] = sim.requests
    t.equal(forwarded.url, path.startsWith('/api') ? path : `/api${path}`)
    t.equal(forwarded.headers['x-api-key'], stack.key)
    for (const name of ['authorization', 'cookie', 'x-comfy-workspace-id']) t.equal(forwarded.headers[name], undefined, `${path} ${name}`)
  }
  t.ok((await getJson(`${stack.url}/object_info`)).body.KSampler, 'the node set')
})

t.test('regression: a passed-through request reaches the cloud once (a success was retried)', async t => {
  const stack = await startStack(t)
  const sim = stack.simulator.app.simulator
  for (let i = 0; i < 3; i++) t.equal((await getJson(`${stack.url}/history_v2`)).status, 200)
  t.equal(sim.requests.filter(r => r.url === '/api/history_v2').length, 3)
})

t.test('a passed-through read is retried once after a dropped connection; a write never is', async t => {
  const stack = await startStack(t)
  const sim = stack.simulator.app.simulator
  sim.faults.set('GET /api/history_v2', { reset: true, times: 1 })
  t.equal((await getJson(`${stack.url}/history_v2`)).status, 200)
  t.equal(sim.requests.filter(r => r.url === '/api/history_v2').length, 2)
  sim.faults.set('POST /api/upload/image', { reset: true, times: 1 })
  const form = new FormData()
  form.append('image', new Blob([Buffer.from('x')], { type: 'image/png' }), 'x.png')
  const failed = await getJson(`${stack.url}/upload/image`, { method: 'POST', body: form })
  t.equal(failed.status, 502)
  t.equal(failed.body.error.type, 'cloud_connection_failed')
  t.equal(sim.requests.filter(r => r.url === '/api/upload/image').length, 1)
})

t.test('/object_info/{class} answers the class, or {} when unknown, like local', async t => {
  const stack = await startStack(t)
  const known = await getJson(`${stack.url}/object_info/KSampler`)
  t.same(Object.keys(known.body), ['KSampler'])
  t.same((await getJson(`${stack.url}/api/object_info/NoSuchNode`)).body, {})
})

t.test('an image upload streams through and can be viewed', async t => {
  const stack = await startStack(t)
  const { entry } = await runJob(stack.url)
  const image = entry.outputs['9'].images[0]
  const png = Buffer.from(await (await fetch(`${stack.url}/view?filename=${image.filename}&type=output&subfolder=`)).arrayBuffer())
  const form = new FormData()
  form.append('image', new Blob([png], { type: 'image/png' }), 'mine.png')
  form.append('overwrite', 'true')
  const uploaded = await getJson(`${stack.url}/upload/image`, { method: 'POST', body: form, headers: { authorization: 'Bearer client' } })
  t.equal(uploaded.status, 200)
  t.type(uploaded.body.name, 'string')
  const back = await fetch(`${stack.url}/api/view?filename=${encodeURIComponent(uploaded.body.name)}&type=input`)
  t.equal(back.status, 200)
  t.same(Buffer.from(await back.arrayBuffer()), png)
})

t.test('/view streams the file from the signed URL with its type and length; the key never reaches storage', async t => {
  const stack = await startStack(t)
  const { entry } = await runJob(stack.url, { prompt: defaultGraph(5, 96, 64) })
  const image = entry.outputs['9'].images[0]
  for (const prefix of ['', '/api']) {
    const response = await fetch(`${stack.url}${prefix}/view?filename=${image.filename}&subfolder=&type=output`)
    t.equal(response.status, 200)
    t.equal(response.headers.get('content-type'), 'image/png')
    const bytes = Buffer.from(await response.arrayBuffer())
    t.equal(Number(response.headers.get('content-length')), bytes.length)
    t.same(bytes.subarray(0, 8), PNG_SIGNATURE)
    t.equal(bytes.readUInt32BE(16), 96, 'width')
    t.equal(bytes.readUInt32BE(20), 64, 'height')
  }
  const storageRequests = stack.simulator.app.simulator.requests.filter(r => r.url.startsWith('/storage'))
  t.ok(storageRequests.length >= 2)
  for (const request of storageRequests) {
    t.equal(request.headers['x-api-key'], undefined)
    t.equal(request.headers.authorization, undefined)
    t.notMatch(request.url, stack.key)
  }
  const missing = await getJson(`${stack.url}/view?filename=nope.png&type=output`)
  t.equal(missing.status, 404)
  t.equal(missing.body.error.type, 'not_found')
  const noName = await getJson(`${stack.url}/view`)
  t.equal(noName.status, 404, 'no filename is a 404, as local answers it')
})

t.test('/view with channel streams the cloud\'s bytes directly; VIEW_MODE=redirect hands over the 302', async t => {
  const stack = await startStack(t, { viewMode: 'redirect' })
  const { entry } = await runJob(stack.url)
  const image = entry.outputs['9'].images[0]
  const redirected = await fetch(`${stack.url}/view?filename=${image.filename}&type=output`, { redirect: 'manual' })
  t.equal(redirected.status, 302)
  const location = redirected.headers.get('location')!
  t.match(location, /\/storage\//)
  t.notMatch(location, stack.key)
  const followed = await fetch(location)
  t.equal(followed.status, 200, 'the signed URL works without credentials')
  const channel = await fetch(`${stack.url}/view?filename=${image.filename}&type=output&channel=rgb`, { redirect: 'manual' })
  t.equal(channel.status, 200)
  t.equal(channel.headers.get('content-type'), 'image/png')
  t.same(Buffer.from(await channel.arrayBuffer()).subarray(0, 8), PNG_SIGNATURE)
})

t.test('/api/jobs sends the cloud its own sort_by names', async t => {
  const stack = await startStack(t)
  await runJob(stack.url)
  const sim = stack.simulator.app.simulator
  sim.requests.length = 0
  const { status, body } = await getJson(`${stack.url}/api/jobs?sort_by=created_at&sort_order=asc&limit=5`)
  t.equal(status, 200)
  t.equal(body.jobs.length, 1)
  t.match(sim.requests.at(-1)!.url, /sort_by=create_time/)
  await getJson(`${stack.url}/api/jobs?sort_by=EXECUTION_DURATION`)
  t.match(sim.requests.at(-1)!.url, /sort_by=execution_time/)
  const detail = await getJson(`${stack.url}/api/jobs/${body.jobs[0].id}`)
  t.equal(detail.body.id, body.jobs[0].id)
})

t.test('GET /queue has the local tuple order, and a job is in it as soon as POST /prompt returns', async t => {
  const stack = await startStack(t, { listTtlMs: 60_000 }, { stepMs: 30 })
  t.same((await getJson(`${stack.url}/queue`)).body, { queue_running: [], queue_pending: [] }, 'empty, and now cached')
  const first = await postJson(`${stack.url}/prompt`, { prompt: defaultGraph(1, 64, 64, 20), client_id: 'me' })
  const second = await postJson(`${stack.url}/api/prompt`, { prompt: defaultGraph(2, 64, 64, 20), client_id: 'me' })
  const { body } = await getJson(`${stack.url}/queue`)
  const ids = [...body.queue_running, ...body.queue_pending].map((item: unknown[]) => item[1])
  t.same(ids.sort(), [first.body.prompt_id, second.body.prompt_id].sort())
  const tuple = [...body.queue_running, ...body.queue_pending].find((item: unknown[]) => item[1] === second.body.prompt_id)
  t.equal(tuple.length, 5)
  t.type(tuple[0], 'number')
  t.same(tuple[2], defaultGraph(2, 64, 64, 20), 'the API graph')
  t.equal(tuple[3].client_id, 'me', 'extra_data as submitted')
  t.type(tuple[3].create_time, 'number')
  t.same(tuple[4], ['9'], 'outputs_to_execute')
  t.equal(tuple[0], second.body.number, 'number is the one POST /prompt answered')
})

t.test('POST /queue cancels pending jobs only; POST /interrupt only running ones; both answer 200 empty', async t => {
  const stack = await startStack(t, {}, { stepMs: 50 })
  const sim = stack.simulator.app.simulator
  const running = (await postJson(`${stack.url}/prompt`, { prompt: defaultGraph(1, 64, 64, 200) })).body.prompt_id
  const pendingA = (await postJson(`${stack.url}/prompt`, { prompt: defaultGraph(2, 64, 64, 200) })).body.prompt_id
  const pendingB = (await postJson(`${stack.url}/prompt`, { prompt: defaultGraph(3, 64, 64, 200) })).body.prompt_id
  const statusOf = (id: string): string | undefined => sim.jobs(stack.key).find(j => j.id === id)?.status
  // The deployed cloud records an interrupted run as failed with InterruptProcessingException (drift §2.2).
  const interruptedStatus = process.env.SIMULATOR_PROFILE === 'current' ? 'failed' : 'cancelled'
  await waitFor(async () => statusOf(running) === 'in_progress' ? true : undefined)

  const deleted = await fetch(`${stack.url}/queue`, { method: 'POST', body: JSON.stringify({ delete: [running, pendingA] }) })
  t.equal(deleted.status, 200)
  t.equal(await deleted.text(), '')
  t.equal(statusOf(running), 'in_progress', 'a running job is not touched by /queue delete')
  t.equal(statusOf(pendingA), 'cancelled')

  const noop = await fetch(`${stack.url}/api/interrupt`, { method: 'POST', body: JSON.stringify({ prompt_id: pendingB }) })
  t.equal(noop.status, 200)
  t.equal(statusOf(pendingB), 'pending', '/interrupt never touches pending prompts')

  const interrupted = await fetch(`${stack.url}/interrupt`, { method: 'POST', body: JSON.stringify({ prompt_id: running }) })
  t.equal(interrupted.status, 200)
  t.equal(await interrupted.text(), '')
  await waitFor(async () => statusOf(running) === interruptedStatus ? true : undefined)
  const entry = (await getJson(`${stack.url}/history/${running}`)).body[running]
  t.equal(entry.status.status_str, 'error')
  t.equal(entry.status.messages.at(-1)[0], 'execution_interrupted')

  await waitFor(async () => statusOf(pendingB) === 'in_progress' ? true : undefined)
  const global = await fetch(`${stack.url}/interrupt`, { method: 'POST' })
  t.equal(global.status, 200)
  await waitFor(async () => statusOf(pendingB) === interruptedStatus ? true : undefined)

  const bad = await postJson(`${stack.url}/queue`, '{"delete": 5}')
  t.equal(bad.status, 400)
  const junk = await fetch(`${stack.url}/interrupt`, { method: 'POST', body: 'not json' })
  t.equal(junk.status, 200, 'local treats a non-JSON /interrupt body as {}')
})

interface Frame { type: string, data: Record<string, unknown> }

function collect (socket: WebSocket): { frames: Frame[], binary: Buffer[] } {
  const frames: Frame[] = []
  const binary: Buffer[] = []
  socket.on('message', (data: Buffer, isBinary: boolean) => {
    if (isBinary) binary.push(data)
    else frames.push(JSON.parse(data.toString()))
  })
  return { frames, binary }
}

async function opened (socket: WebSocket): Promise<void> {
  await new Promise<void>((resolve, reject) => { socket.once('open', () => resolve()); socket.once('error', reject) })
}

t.test('/ws relays the cloud socket: sid rewritten, own events in order, other clients\' events filtered, key kept server-side', async t => {
  const stack = await startStack(t)
  const wsUrl = stack.url.replace('http', 'ws')
  const mine = new WebSocket(`${wsUrl}/ws?clientId=client-mine`)
  const theirs = new WebSocket(`${wsUrl}/api/ws?clientId=client-theirs`)
  t.teardown(() => { mine.terminate(); theirs.terminate() })
  const mineFrames = collect(mine)
  const theirFrames = collect(theirs)
  await Promise.all([opened(mine), opened(theirs)])
  await waitFor(async () => mineFrames.frames.length > 0 && theirFrames.frames.length > 0 ? true : undefined)
  t.same(mineFrames.frames[0], { type: 'status', data: { status: { exec_info: { queue_remaining: 0 } }, sid: 'client-mine' } })
  t.equal(theirFrames.frames[0].data.sid, 'client-theirs')

  const submitted = await postJson(`${stack.url}/prompt`, { prompt: defaultGraph(), client_id: 'client-mine' })
  const promptId = submitted.body.prompt_id
  const last = await waitFor(async () => mineFrames.frames.find(f => f.type === 'executing' && f.data.node === null && f.data.prompt_id === promptId))
  t.ok(last)
  const types = mineFrames.frames.filter(f => f.data.prompt_id === promptId).map(f => f.type)
  t.equal(types[0], 'execution_start')
  t.ok(types.includes('execution_success'))
  t.equal(types.at(-1), 'executing', 'ends with executing node null')
  t.ok(types.indexOf('execution_success') < types.lastIndexOf('executing'))
  const history = await getJson(`${stack.url}/history/${promptId}`)
  t.ok(history.body[promptId], 'history is readable once executing null arrives')
  t.ok(mineFrames.binary.length > 0, 'binary preview frames relayed')
  t.same(mineFrames.binary[0].subarray(0, 4), Buffer.from([0, 0, 0, 1]), 'unchanged binary frame')
  await new Promise(resolve => setTimeout(resolve, 50))
  t.notOk(theirFrames.frames.some(f => f.data.prompt_id === promptId), 'another client_id does not see my prompt\'s events')
  t.ok(theirFrames.frames.some(f => f.type === 'status'), 'status broadcasts still reach everyone')
  for (const line of stack.logs) t.notMatch(line, stack.key)
})

t.test('/ws closes the client with a meaningful code when the cloud socket drops or refuses the key', async t => {
  const stack = await startStack(t)
  const socket = new WebSocket(`${stack.url.replace('http', 'ws')}/ws?clientId=c1`)
  const frames = collect(socket)
  await opened(socket)
  await waitFor(async () => frames.frames.length > 0 ? true : undefined)
  const closed = new Promise<number>(resolve => socket.once('close', (code: number) => resolve(code)))
  for (const client of stack.simulator.app.websocketServer.clients) client.terminate()
  t.equal(await closed, 1014, 'Bad Gateway')

  const { startProxy } = await import('../helpers.js')
  const wrong = await startProxy(t, { cloudUrl: stack.simulator.url, apiKey: 'comfyui-wrong' })
  const refused = new WebSocket(`${wrong.url.replace('http', 'ws')}/ws`)
  const [code, reason] = await new Promise<[number, string]>(resolve => refused.once('close', (c: number, r: Buffer) => resolve([c, r.toString()])))
  t.equal(code, 1008)
  t.match(reason, /API key/)
})
