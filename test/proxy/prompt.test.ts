import t from 'tap'
import { defaultGraph, getJson, postJson, startProxy, startStack, testKey, waitFor } from '../helpers.js'

t.test('GET /prompt answers {"exec_info":{"queue_remaining":N}}', async t => {
  const stack = await startStack(t, { listTtlMs: 100 })
  for (const prefix of ['', '/api']) {
    const { status, text } = await getJson(`${stack.url}${prefix}/prompt`)
    t.equal(status, 200)
    t.equal(text, '{"exec_info":{"queue_remaining":0}}')
  }
  const sim = stack.simulator.app.simulator
  sim.seedJob(stack.key, { status: 'pending' })
  sim.seedJob(stack.key, { status: 'pending' })
  // Jobs queued elsewhere (another client of the account) count once the shared list is LIST_TTL_MS old.
  await new Promise(resolve => setTimeout(resolve, 150))
  t.same((await getJson(`${stack.url}/prompt`)).body, { exec_info: { queue_remaining: 2 } })
})

t.test('POST /prompt forwards the submit, copies client_id into extra_data and answers {prompt_id, number, node_errors}', async t => {
  const stack = await startStack(t)
  // Local clients send any Content-Type; the body is JSON regardless.
  const response = await fetch(`${stack.url}/prompt`, {
    method: 'POST',
    headers: { 'content-type': 'text/plain;charset=UTF-8' },
    body: JSON.stringify({ prompt: defaultGraph(), client_id: 'client-77', extra_data: { extra_pnginfo: { workflow: { id: 'w' } } }, unknown_field: 1 })
  })
  t.equal(response.status, 200)
  const text = await response.text()
  const body = JSON.parse(text)
  t.same(Object.keys(body), ['prompt_id', 'number', 'node_errors'])
  t.match(body.prompt_id, /^[0-9a-f-]{36}$/)
  t.type(body.number, 'number')
  t.same(body.node_errors, {})
  const job = stack.simulator.app.simulator.jobs(stack.key).find(j => j.id === body.prompt_id)!
  t.equal(job.workflow?.extra_data?.client_id, 'client-77')
  t.same(job.workflow?.extra_data?.extra_pnginfo, { workflow: { id: 'w' } })

  const form = await fetch(`${stack.url}/api/prompt`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: JSON.stringify({ prompt: defaultGraph() })
  })
  t.equal(form.status, 200, 'form-urlencoded bodies are JSON too')
})

t.test('local-side rejections use the local envelope', async t => {
  const stack = await startStack(t)
  const noPrompt = await postJson(`${stack.url}/prompt`, { client_id: 'x' })
  t.equal(noPrompt.status, 400)
  t.equal(noPrompt.text, '{"error":{"type":"no_prompt","message":"No prompt provided","details":"No prompt provided","extra_info":{}},"node_errors":{}}')
  const broken = await postJson(`${stack.url}/prompt`, '{"prompt": ')
  t.equal(broken.status, 400)
  t.same(Object.keys(broken.body), ['error', 'node_errors'])
  t.equal(broken.body.error.type, 'invalid_json')
  t.equal(stack.simulator.app.simulator.jobs(stack.key).length, 0, 'nothing reached the cloud')
})

t.test('a cloud validation error keeps its 400 body and node_errors', async t => {
  const stack = await startStack(t)
  const graph = defaultGraph()
  ;(graph['4'] as { inputs: Record<string, unknown> }).inputs.ckpt_name = 'missing.safetensors'
  const { status, body } = await postJson(`${stack.url}/prompt`, { prompt: graph })
  t.equal(status, 400)
  t.equal(body.error.type, 'prompt_outputs_failed_validation')
  t.same(Object.keys(body.error), ['type', 'message', 'details', 'extra_info'])
  t.ok(body.node_errors['4'], 'node_errors names the node')
  const unknown = await postJson(`${stack.url}/prompt`, { prompt: { 1: { class_type: 'NoSuchNode', inputs: {} } } })
  t.equal(unknown.status, 400)
  t.same(unknown.body.node_errors, {})
  t.type(unknown.body.error.message, 'string')
})

t.test('every cloud error status maps to the local envelope with a fitting status', async t => {
  const stack = await startStack(t)
  const sim = stack.simulator.app.simulator
  const cases: Array<[number, number]> = [[402, 402], [403, 403], [413, 413], [429, 429], [500, 502], [502, 502], [503, 503]]
  for (const [cloudStatus, localStatus] of cases) {
    sim.faults.set('POST /api/prompt', { status: cloudStatus, retryAfter: cloudStatus === 429 ? 7 : undefined, times: 1 })
    const { status, body, headers } = await postJson(`${stack.url}/prompt`, { prompt: defaultGraph() })
    t.equal(status, localStatus, `cloud ${cloudStatus}`)
    t.same(Object.keys(body), ['error', 'node_errors'], `cloud ${cloudStatus}`)
    t.same(Object.keys(body.error), ['type', 'message', 'details', 'extra_info'])
    if (cloudStatus === 429) t.equal(headers.get('retry-after'), '7')
  }
  t.equal(sim.requests.filter(r => r.method === 'POST' && r.url === '/api/prompt').length, cases.length, 'a submit is never retried')
})

t.test('a cloud 401 says the proxy key is wrong', async t => {
  const stack = await startStack(t)
  const wrong = await startProxy(t, { cloudUrl: stack.simulator.url, apiKey: testKey() })
  const { status, body } = await postJson(`${wrong.url}/prompt`, { prompt: defaultGraph() })
  t.equal(status, 502)
  t.equal(body.error.type, 'proxy_auth_failed')
  t.match(body.error.message, /API key/)
  t.match(body.error.message, /COMFY_CLOUD_API_KEY/)
  const history = await getJson(`${wrong.url}/history`)
  t.equal(history.status, 502)
  t.equal(history.body.error.type, 'cloud_auth_failed')
})

t.test('a submitted job runs to completion on the cloud', async t => {
  const stack = await startStack(t)
  const { body } = await postJson(`${stack.url}/prompt`, { prompt: defaultGraph() })
  const job = await waitFor(async () => stack.simulator.app.simulator.jobs(stack.key).find(j => j.id === body.prompt_id && j.status === 'completed'))
  t.equal(job.outputs_count, 1)
})
