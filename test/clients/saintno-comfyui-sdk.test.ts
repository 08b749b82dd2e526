/**
 * @saintno/comfyui-sdk (npm), unchanged, against proxy + simulator: the README's basic usage.
 * `new ComfyApi(host).init()` pings GET /prompt, reads /system_stats (OS type), probes its extensions
 * (/manager/version, /object_info/{Crystools node}), subscribes to terminal logs (PATCH
 * /internal/logs/subscribe) and opens /ws with the `ws` package it bundles. A PromptBuilder over
 * the default workflow runs through CallWrapper (POST /prompt with a text/plain body, since its
 * fetchApi drops the Content-Type; /ws events; /history/{id}), and `getImage` downloads via /view.
 */
import t from 'tap'
import WebSocket from 'ws'
import { CallWrapper, ComfyApi, PromptBuilder } from '@saintno/comfyui-sdk'
import { defaultGraph, startStack, waitFor } from '../helpers.js'
import { assertCloudJob, assertKeyHidden, assertPng, HEIGHT, recordFetch, routesOf, STEP_MS, STEPS, WIDTH, within } from './fixtures/observe.js'

/** An API-format node as ComfyUI exports it (the SDK's NodeData wants `_meta`). */
interface ApiNode { class_type: string, inputs: Record<string, unknown>, _meta: { title: string } }
type ApiWorkflow = Record<string, ApiNode>
interface ImageRef { filename: string, subfolder: string, type: string }

/** The ComfyUI default text-to-image workflow as "Export (API)" writes it. */
function defaultWorkflow (): ApiWorkflow {
  const titles: Record<string, string> = {
    3: 'KSampler', 4: 'Load Checkpoint', 5: 'Empty Latent Image', 6: 'CLIP Text Encode (Prompt)', 7: 'CLIP Text Encode (Prompt)', 8: 'VAE Decode', 9: 'Save Image'
  }
  const graph = defaultGraph(1, 512, 512, 20) as Record<string, { class_type: string, inputs: Record<string, unknown> }>
  return Object.fromEntries(Object.entries(graph).map(([id, node]) => [id, { ...node, _meta: { title: titles[id] ?? node.class_type } }]))
}

t.test('@saintno/comfyui-sdk: ComfyApi.init + CallWrapper(PromptBuilder).run + getImage', { timeout: 30_000 }, async t => {
  const started = Date.now()
  const stack = await startStack(t, {}, { stepMs: STEP_MS })
  const exchanges = recordFetch(t)
  const clientId = ComfyApi.generateId()
  const api = new ComfyApi(stack.url, clientId)
  // Every frame the client receives, read from the `ws` socket the SDK opened (a private field; the
  // SDK's own `all` event skips binary frames and frames without type/data).
  const frames: string[] = []
  let observed = false
  const connected = new Promise<void>(resolve => {
    api.on('connected', () => {
      const socket = (api as unknown as { socket?: { client?: WebSocket } }).socket?.client
      observed = socket instanceof WebSocket
      socket?.on('message', (data: WebSocket.RawData, isBinary: boolean) => {
        frames.push(isBinary ? Buffer.from(data as Buffer).toString('latin1') : data.toString())
      })
      resolve()
    })
  })
  let previews = 0
  api.on('b_preview', () => { previews++ })
  const failures: Error[] = []
  api.on('connection_error', event => { failures.push(event.detail) })
  try {
    api.init(3, 200)
    await within(api.waitForReady(), 10_000, 'waitForReady')
    await within(connected, 10_000, 'the WebSocket to connect')
    t.ok(observed, 'the SDK opened its socket with the ws package, and the test reads its frames')
    t.same(failures, [], 'init reported no connection error')
    // init reads the OS type without waiting for it.
    t.equal(await waitFor(async () => api.osType, 5_000, 'the OS type'), 'posix', 'the OS type came from /system_stats')
    t.same(api.availableFeatures, { manager: false, monitor: false }, 'no extension is claimed (the cloud has neither)')

    const workflow = new PromptBuilder(defaultWorkflow(), ['seed', 'width', 'height', 'steps', 'positive'], ['images'])
      .setInputNode('seed', '3.inputs.seed')
      .setInputNode('steps', '3.inputs.steps')
      .setInputNode('width', '5.inputs.width')
      .setInputNode('height', '5.inputs.height')
      .setInputNode('positive', '6.inputs.text')
      .setOutputNode('images', '9')
      .input('seed', 1234)
      .input('steps', STEPS)
      .input('width', WIDTH)
      .input('height', HEIGHT)
      .input('positive', 'a lighthouse at dusk')

    let pendingId: string | undefined
    let finishedId: string | undefined
    const runFailures: Error[] = []
    const result = await within(new CallWrapper(api, workflow)
      .onPending(id => { pendingId = id })
      .onFinished((_data, id) => { finishedId = id })
      .onFailed(err => { runFailures.push(err) })
      .run(), 15_000, 'CallWrapper.run')
    t.same(runFailures.map(err => err.message), [], 'the run reported no failure')
    t.ok(result, 'run() resolved with the outputs')
    if (result === undefined || result === false) return
    t.match(pendingId, /\S/, 'onPending got the prompt id')
    t.equal(finishedId, pendingId, 'onFinished for the same prompt')
    const promptId = pendingId ?? ''
    const images = (result.images as { images?: ImageRef[] } | undefined)?.images ?? []
    t.equal(images.length, 1, 'one image from the SaveImage node')
    const [image] = images
    t.match(image, { filename: /\.png$/, subfolder: '', type: 'output' }, 'the image reference')
    t.ok(previews > 0, 'binary preview frames reached the client')

    t.equal(new URL(api.getPathImage(image)).pathname, '/view', 'getPathImage builds a /view URL')
    const blob = await within(api.getImage(image), 5_000, 'getImage')
    assertPng(t, Buffer.from(await blob.arrayBuffer()), WIDTH, HEIGHT, 'the image getImage downloaded')

    assertCloudJob(t, stack, promptId, clientId)
    const submit = stack.simulator.app.simulator.jobs(stack.key).find(job => job.id === promptId)
    t.match(submit?.workflow?.prompt?.['3'], { class_type: 'KSampler', inputs: { seed: 1234, steps: STEPS } }, 'the builder\'s inputs reached the cloud')

    const routes = routesOf(exchanges)
    for (const route of ['GET /prompt', 'GET /system_stats', 'POST /prompt', `GET /history/${promptId}`, 'GET /view']) {
      t.ok(routes.includes(route), `the client used ${route}`)
    }
    const parsed = frames.filter(frame => frame.startsWith('{')).map(frame => JSON.parse(frame) as { type: string, data: Record<string, unknown> })
    t.match(parsed[0], { type: 'status', data: { sid: clientId } }, 'the first frame is status with the client\'s sid')
    t.ok(parsed.some(frame => frame.type === 'executed' && frame.data.prompt_id === promptId), 'the client saw executed for its prompt')
    assertKeyHidden(t, stack, exchanges, frames)
    t.comment(`saintno routes: ${routes.join(', ')}, WS /ws?clientId=…; ${frames.length} frames; ${Date.now() - started} ms`)
  } finally {
    api.destroy()
  }
})
