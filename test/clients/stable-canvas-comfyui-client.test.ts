/**
 * @stable-canvas/comfyui-client (npm), unchanged, against proxy + simulator, in both of its modes:
 * - polling: `connect({polling: {enabled: true}})` (no WebSocket at all) and `enqueue_polling`, which
 *   POSTs /prompt, polls GET /queue until the prompt has left it, then finds it in GET /history;
 * - WebSocket: `connect()` (WebSocket is the default) and `enqueue`, which POSTs /prompt and waits on
 *   /ws for the prompt's `executed` event.
 * Either way the result holds /view URLs built by the client's viewURL, which the library's own
 * outToB64Urls downloads. Every request of this client carries `?clientId=`. Polling mode runs twice:
 * with the default api_base '' and with api_base '/api' (every HTTP route under /api, as the
 * ComfyUI frontend calls them).
 */
import t, { type Test } from 'tap'
import WebSocket from 'ws'
import { Client, outToB64Urls, type WorkflowOutput } from '@stable-canvas/comfyui-client'
import { defaultGraph, startStack, type Stack } from '../helpers.js'
import {
  assertCloudJob, assertKeyHidden, assertPng, fromDataUrl, HEIGHT, pngSize, recordFetch, routesOf, STEP_MS, STEPS, WIDTH, within, type Exchange
} from './fixtures/observe.js'

/** The saved image in a result: its /view URL, downloaded with the library's outToB64Urls. */
async function assertSavedImage (t: Test, stack: Stack, result: WorkflowOutput, apiBase = ''): Promise<void> {
  const urls = result.images.flatMap(image => image.type === 'url' ? [image.data] : [])
  t.equal(urls.length, 1, 'one saved image, as a URL')
  const url = new URL(urls[0] ?? '/', stack.url)
  t.equal(url.origin, stack.url, 'the URL points at the proxy')
  t.equal(url.pathname, `${apiBase}/view`, `the URL is ${apiBase}/view`)
  t.match(Object.fromEntries(url.searchParams), { filename: /\.png$/, subfolder: '', type: 'output' }, 'the URL names the saved file')
  const dataUrls = await within(outToB64Urls({ ...result, images: result.images.filter(image => image.type === 'url') }), 5_000, 'outToB64Urls')
  t.equal(dataUrls.length, 1, 'outToB64Urls downloaded it')
  // The data URL's mime comes from the URL's ending (outToB64Urls' url2mime), never .png for a /view URL: only the bytes tell.
  const { bytes } = fromDataUrl(dataUrls[0] ?? '')
  assertPng(t, bytes, WIDTH, HEIGHT, 'the saved image')
}

function submitted (exchanges: Exchange[]): string {
  const submit = exchanges.find(exchange => exchange.method === 'POST' && /^(\/api)?\/prompt$/.test(new URL(exchange.url).pathname))
  return (JSON.parse(submit?.body.toString() ?? '{}') as { prompt_id?: string }).prompt_id ?? ''
}

for (const apiBase of ['', '/api']) {
  t.test(`@stable-canvas/comfyui-client, polling mode: connect({polling}) + enqueue_polling, api_base '${apiBase}'`, { timeout: 30_000 }, async t => {
    await pollingMode(t, apiBase)
  })
}

async function pollingMode (t: Test, apiBase: string): Promise<void> {
  const started = Date.now()
  const stack = await startStack(t, {}, { stepMs: STEP_MS })
  const exchanges = recordFetch(t)
  // No WebSocket implementation (Node 20 has no global one): the client cannot use anything but HTTP.
  const client = new Client({ api_host: new URL(stack.url).host, api_base: apiBase })
  try {
    t.equal(await within(client.connect({ polling: { enabled: true, interval: 100 }, timeout_ms: 5_000 }), 5_000, 'connect'), true, 'connect pinged /system_stats')
    const statuses: unknown[] = []
    client.on('status', status => { statuses.push(status) })

    const result = await within(client.enqueue_polling(defaultGraph(11, WIDTH, HEIGHT, STEPS), { polling_ms: 50, timeout_ms: 15_000 }), 20_000, 'enqueue_polling')
    const promptId = submitted(exchanges)
    t.match(promptId, /\S/, 'POST /prompt answered a prompt_id')
    t.equal(result.prompt_id, promptId, 'the result is for the submitted prompt')
    await assertSavedImage(t, stack, result, apiBase)
    assertCloudJob(t, stack, promptId, client.clientId)

    await within(new Promise(resolve => setTimeout(resolve, 250)), 1_000, 'a status poll')
    t.match(statuses.find(status => status !== null), { exec_info: { queue_remaining: Number } }, 'the status poll (GET /prompt) answered exec_info')
    t.equal(client.socket ?? null, null, 'no WebSocket was opened')
    const routes = routesOf(exchanges)
    for (const [method, path] of [['GET', '/system_stats'], ['POST', '/prompt'], ['GET', '/queue'], ['GET', '/history'], ['GET', '/view'], ['GET', '/prompt']]) {
      t.ok(routes.includes(`${method} ${apiBase}${path}`), `the client used ${method} ${apiBase}${path}`)
    }
    t.ok(exchanges.every(exchange => new URL(exchange.url).pathname.startsWith(`${apiBase}/`)), `every request went to ${apiBase}/…`)
    const history = exchanges.find(exchange => new URL(exchange.url).pathname === `${apiBase}/history`)
    t.equal(new URL(history?.url ?? stack.url).searchParams.get('max_items'), '200', 'history was read with max_items=200')
    t.ok(exchanges.every(exchange => new URL(exchange.url).pathname === `${apiBase}/view` || new URL(exchange.url).searchParams.get('clientId') === client.clientId), 'every API call carried ?clientId=')
    t.same(exchanges.filter(exchange => exchange.status !== 200).map(exchange => `${exchange.method} ${exchange.url} ${exchange.status}`), [], 'every response was 200')
    assertKeyHidden(t, stack, exchanges)
    t.comment(`stable-canvas polling routes: ${routes.join(', ')}; ${exchanges.length} requests; ${Date.now() - started} ms`)
  } finally {
    client.close()
  }
}

t.test('@stable-canvas/comfyui-client, WebSocket mode: connect() + enqueue', { timeout: 30_000 }, async t => {
  const started = Date.now()
  const stack = await startStack(t, {}, { stepMs: STEP_MS })
  const exchanges = recordFetch(t)
  // The README's Node.js setup: the WebSocket class from `ws` passed in.
  const client = new Client({ api_host: new URL(stack.url).host, WebSocket })
  const frames: string[] = []
  client.on('message', event => {
    const data: unknown = event.data
    frames.push(typeof data === 'string' ? data : Buffer.from(data as ArrayBuffer).toString('latin1'))
  })
  try {
    t.equal(await within(client.connect(), 5_000, 'the WebSocket to connect'), true, 'connect() opened the WebSocket')
    const progress: Array<{ value: number, max: number, prompt_id: string }> = []
    const result = await within(client.enqueue(defaultGraph(12, WIDTH, HEIGHT, STEPS), {
      timeout_ms: 15_000,
      progress: p => { progress.push(p) }
    }), 20_000, 'enqueue')
    const promptId = submitted(exchanges)
    t.match(promptId, /\S/, 'POST /prompt answered a prompt_id')
    t.equal(result.prompt_id, promptId, 'the result is for the submitted prompt')
    await assertSavedImage(t, stack, result)
    // Binary preview frames of the running prompt are collected too (image_data events).
    const previews = result.images.flatMap(image => image.type === 'buff' ? [Buffer.from(image.data)] : [])
    t.ok(previews.length > 0, 'the binary previews sent during the run reached the client')
    t.ok(previews.every(preview => pngSize(preview) !== undefined), 'each preview is a PNG')
    t.ok(progress.length > 0, 'progress callbacks fired')
    t.ok(progress.every(p => p.prompt_id === promptId && p.max === STEPS), 'progress of this prompt, out of its steps')
    assertCloudJob(t, stack, promptId, client.clientId)

    const texts = frames.filter(frame => frame.startsWith('{')).map(frame => JSON.parse(frame) as { type: string, data: Record<string, unknown> })
    t.match(texts[0], { type: 'status', data: { sid: client.clientId } }, 'the first frame is status, its sid the client\'s clientId')
    t.ok(texts.some(frame => frame.type === 'executed' && frame.data.prompt_id === promptId && frame.data.node === '9'), 'the client saw executed for node 9 of its prompt')
    const routes = routesOf(exchanges)
    t.same(routes, ['POST /prompt', 'GET /view'], 'HTTP routes the client used (besides /ws)')
    assertKeyHidden(t, stack, exchanges, frames)
    t.comment(`stable-canvas websocket routes: WS /ws?clientId=…, ${routes.join(', ')}; ${frames.length} frames; ${Date.now() - started} ms`)
  } finally {
    client.close()
  }
})
