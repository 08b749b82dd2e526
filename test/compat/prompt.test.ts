import t from 'tap'
import { localPromptError, localSubmit } from '../../src/compat/prompt.js'
import { ProxyError } from '../../src/errors.js'

const cloudPromptRequest = (body: unknown): Record<string, unknown> => localSubmit(body).cloudRequest

t.test('a top-level client_id is also copied into extra_data; unknown fields, number, front and prompt_id stay with the proxy', async t => {
  const request = cloudPromptRequest({ prompt: { 1: {} }, client_id: 'abc', extra_data: { extra_pnginfo: { workflow: {} } }, foo: 1, front: true, number: 3, prompt_id: 'x' })
  t.same(request, { prompt: { 1: {} }, client_id: 'abc', extra_data: { extra_pnginfo: { workflow: {} }, client_id: 'abc' } })
  t.same(cloudPromptRequest({ prompt: {}, client_id: '' }).extra_data, { client_id: '' }, 'even an empty client_id, like local')
  t.same(cloudPromptRequest({ prompt: {} }).extra_data, {})
})

t.test('prompt_id is taken as Python str() takes it; number as float(); front as Python truthiness (observed findings 3, 4)', async t => {
  t.equal(localSubmit({ prompt: {}, prompt_id: 12345 }).promptId, '12345')
  t.equal(localSubmit({ prompt: {}, prompt_id: 'any string at all' }).promptId, 'any string at all')
  t.equal(localSubmit({ prompt: {}, prompt_id: true }).promptId, 'True')
  t.equal(localSubmit({ prompt: {}, prompt_id: null }).promptId, undefined, 'null: the server picks one')
  t.equal(localSubmit({ prompt: {} }).promptId, undefined)
  t.equal((t.throws(() => localSubmit({ prompt: {}, prompt_id: { a: 1 } })) as ProxyError).type, 'invalid_prompt_id')
  t.equal((t.throws(() => localSubmit({ prompt: {}, prompt_id: 'x'.repeat(1025) })) as ProxyError).type, 'invalid_prompt_id')
  t.equal(localSubmit({ prompt: {}, number: '7' }).number, 7)
  t.equal(localSubmit({ prompt: {}, number: 2.5 }).number, 2.5)
  t.equal(localSubmit({ prompt: {}, number: ' -1_0 ' }).number, -10)
  t.equal(localSubmit({ prompt: {} }).number, undefined)
  t.equal(localSubmit({ prompt: {}, front: true }).front, true)
  t.equal(localSubmit({ prompt: {}, front: 0 }).front, false)
  for (const number of ['abc', '', null, [], 'inf', '1e999']) {
    t.equal((t.throws(() => localSubmit({ prompt: {}, number })) as ProxyError).type, 'invalid_prompt', JSON.stringify(number))
  }
})

t.test('requests local ComfyUI rejects or crashes on are 400s with the local envelope type', async t => {
  const cases: Array<[unknown, string]> = [
    [{}, 'no_prompt'],
    [[], 'no_prompt'],
    ['text', 'invalid_request'],
    [{ prompt: 'x' }, 'invalid_prompt'],
    [{ prompt: {}, extra_data: null }, 'invalid_prompt'],
    [{ prompt: {}, number: 'abc' }, 'invalid_prompt']
  ]
  for (const [body, type] of cases) {
    const error = t.throws(() => cloudPromptRequest(body)) as ProxyError
    t.equal(error.statusCode, 400, JSON.stringify(body))
    t.equal(error.type, type, JSON.stringify(body))
  }
  const noPrompt = t.throws(() => cloudPromptRequest({})) as ProxyError
  t.same(noPrompt.toLocal(), { type: 'no_prompt', message: 'No prompt provided', details: 'No prompt provided', extra_info: {} })
})

t.test('a cloud validation 400 keeps its body and node_errors', async t => {
  const body = {
    error: { type: 'prompt_outputs_failed_validation', message: 'Prompt outputs failed validation', details: 'x', extra_info: {} },
    node_errors: { 4: { errors: [], dependent_outputs: ['9'], class_type: 'CheckpointLoaderSimple' } }
  }
  t.same(localPromptError(400, body), { statusCode: 400, body })
  t.same(localPromptError(400, { error: { type: 'no_prompt', message: 'm' } }).body,
    { error: { type: 'no_prompt', message: 'm', details: '', extra_info: {} }, node_errors: {} }, 'missing fields filled')
})

t.test('a cloud 401 blames the proxy key, not the client', async t => {
  const { statusCode, body } = localPromptError(401, { code: 'UNAUTHORIZED', message: 'Unauthorized' })
  t.equal(statusCode, 502)
  t.equal(body.error.type, 'proxy_auth_failed')
  t.match(body.error.message, /COMFY_CLOUD_API_KEY/)
  t.same(body.node_errors, {})
})

t.test('billing, governance, size and rate errors keep a fitting status and the envelope', async t => {
  const payment = localPromptError(402, { error: { type: 'PAYMENT_REQUIRED', message: 'Insufficient credits' } })
  t.equal(payment.statusCode, 402)
  t.equal(payment.body.error.type, 'PAYMENT_REQUIRED')
  t.match(payment.body.error.message, /no credits left .*Add credits/, 'a refusal says what to do')
  t.same(payment.body.error.extra_info, { cloud_message: 'Insufficient credits' }, 'and keeps the cloud\'s words')
  const disabled = localPromptError(403, { error: { type: 'PARTNER_NODE_DISABLED', message: 'off', class_types: ['X'], providers: ['p'] } })
  t.equal(disabled.statusCode, 403)
  t.same(disabled.body.error.extra_info, { class_types: ['X'], providers: ['p'] })
  const session = localPromptError(403, { code: 'FORBIDDEN', message: 'no' })
  t.same(session.body.error, { type: 'FORBIDDEN', message: 'no', details: '', extra_info: {} })
  t.equal(localPromptError(413, 'too large').statusCode, 413)
  t.equal(localPromptError(413, 'too large').body.error.type, 'cloud_413')
  const limited = localPromptError(429, { error: { type: 'QUEUE_LIMIT', message: 'full', reason: 'r' } })
  t.equal(limited.statusCode, 429)
  t.same(limited.body.error.extra_info, { reason: 'r', cloud_message: 'full' })
  t.match(localPromptError(429, { error: { type: 'QUEUE_LIMIT', message: 'full' } }, '7').body.error.message, /queue is full.*wait 7 s/)
  t.match(localPromptError(429, { code: 'TOO_MANY_REQUESTS', message: 'slow down' }).body.error.message, /refusing new jobs for the moment/,
    'a 429 of an unknown type is still back-pressure')
  t.equal(localPromptError(409, { error: 'prompt_id already exists' }).body.error.message, 'prompt_id already exists')
})

t.test('cloud 5xx become 502/503/504', async t => {
  t.equal(localPromptError(500, { error: { type: 'x', message: 'y' } }).statusCode, 502)
  t.equal(localPromptError(503, {}).statusCode, 503)
  t.equal(localPromptError(504, '').statusCode, 504)
  t.equal(localPromptError(599, '').statusCode, 502)
})
