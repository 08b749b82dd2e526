/**
 * comfy-ui-client (npm), unchanged, against proxy + simulator: the README flow (connect, getImages,
 * disconnect). getImages POSTs /prompt, waits on /ws for `executing {node: null}` of its prompt,
 * then reads /history/{id} and downloads each image with its own /view helper.
 */
import t from 'tap'
import type WebSocket from 'ws'
import { ComfyUIClient, type ImagesResponse, type Prompt } from 'comfy-ui-client'
import { defaultGraph, startStack } from '../helpers.js'
import { assertCloudJob, assertKeyHidden, assertPng, HEIGHT, recordFetch, routesOf, STEP_MS, STEPS, WIDTH, within } from './fixtures/observe.js'

/** The same client; only lets the test read the socket it opened, to see the frames it received. */
class ObservedClient extends ComfyUIClient {
  get socket (): WebSocket | undefined {
    return this.ws
  }
}

t.test('comfy-ui-client: connect, getImages (WebSocket + /history + /view), disconnect', { timeout: 30_000 }, async t => {
  const started = Date.now()
  const stack = await startStack(t, {}, { stepMs: STEP_MS })
  const exchanges = recordFetch(t)
  const address = new URL(stack.url).host
  const clientId = 'baadbabe-b00b-4206-9420-deadd00d1337'
  const client = new ObservedClient(address, clientId)
  const frames: string[] = []
  try {
    await within(client.connect(), 5_000, 'the WebSocket to open')
    const socket = client.socket
    t.ok(socket, 'the client opened its WebSocket')
    socket?.on('message', (data: WebSocket.RawData, isBinary: boolean) => {
      frames.push(isBinary ? Buffer.from(data as Buffer).toString('latin1') : data.toString())
    })

    const prompt = defaultGraph(8566257, WIDTH, HEIGHT, STEPS) as Prompt
    const images: ImagesResponse = await within(client.getImages(prompt), 15_000, 'getImages')

    t.same(Object.keys(images), ['9'], 'images of the SaveImage node')
    const saved = images['9'] ?? []
    t.equal(saved.length, 1, 'one image')
    const [first] = saved
    t.match(first?.image, { filename: /\.png$/, subfolder: '', type: 'output' }, 'the image reference from /history')
    const bytes = Buffer.from(await first.blob.arrayBuffer())
    assertPng(t, bytes, WIDTH, HEIGHT, 'the image getImages downloaded')

    // The prompt id is not returned by getImages: take it from the submit the client made.
    const submit = exchanges.find(exchange => exchange.method === 'POST' && new URL(exchange.url).pathname === '/prompt')
    t.ok(submit, 'the client submitted through POST /prompt')
    const promptId = (JSON.parse(submit?.body.toString() ?? '{}') as { prompt_id?: string }).prompt_id ?? ''
    t.match(promptId, /\S/, 'the submit answered a prompt_id')
    assertCloudJob(t, stack, promptId, clientId)

    const routes = routesOf(exchanges)
    t.same(routes, ['POST /prompt', `GET /history/${promptId}`, 'GET /view'], 'HTTP routes the client used')
    const texts = frames.filter(frame => frame.startsWith('{')).map(frame => JSON.parse(frame) as { type: string, data: Record<string, unknown> })
    t.match(texts[0], { type: 'status', data: { sid: clientId } }, 'the first frame is status with the client\'s sid')
    t.ok(texts.some(frame => frame.type === 'executing' && frame.data.node === null && frame.data.prompt_id === promptId), 'the client saw executing {node: null} for its prompt')
    assertKeyHidden(t, stack, exchanges, frames)
    t.comment(`comfy-ui-client routes: ${routes.join(', ')}, WS /ws?clientId=…; ${frames.length} frames; ${Date.now() - started} ms`)
  } finally {
    await client.disconnect()
  }
})
