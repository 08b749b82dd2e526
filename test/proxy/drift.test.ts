/** The deployed cloud's differences from the spec that hurt users (issue 10 rules 1, 2, 6), against the simulator. */
import t, { type Test } from 'tap'
import WebSocket from 'ws'
import { ACCOUNT_REFUSALS } from '../../src/simulator/app.js'
import { defaultGraph, getJson, postJson, runJob, startStack } from '../helpers.js'

const FIXES: Record<string, RegExp> = {
  sso_required: /single sign-on/,
  FORBIDDEN: /verify the e-mail address/,
  workspace_access_denied: /workspace owner/,
  auth_type_not_allowed: /allow API-key access/
}

function expectRefused (t: Test, answer: { status: number, body: any }, code: string, what: string): void {
  t.equal(answer.status, 502, `${what}: 502`)
  t.equal(answer.body?.error?.type, 'cloud_account_refused', `${what}: the type says the account is refused`)
  t.equal(answer.body?.error?.extra_info?.cloud_code, code, `${what}: names the cloud's code`)
  t.match(answer.body?.error?.message, FIXES[code], `${what}: says what the account must fix`)
}

t.test('an account-wide 403 is a 502 saying what to fix on every route, never "not in history" or a silent no-op', async t => {
  const stack = await startStack(t)
  const sim = stack.simulator.app.simulator
  const { promptId } = await runJob(stack.url)
  const pending = sim.seedJob(stack.key, { status: 'pending' })
  const running = sim.seedJob(stack.key, { status: 'in_progress' })
  for (const code of ACCOUNT_REFUSALS) {
    sim.refuseAccount(stack.key, code)
    stack.app.cache.clearEntries()
    expectRefused(t, await getJson(`${stack.url}/history/${pending.id}`), code, `${code} GET /history/{id}`)
    expectRefused(t, await postJson(`${stack.url}/queue`, { delete: [pending.id] }), code, `${code} POST /queue delete`)
    expectRefused(t, await postJson(`${stack.url}/interrupt`, { prompt_id: running.id }), code, `${code} POST /interrupt {prompt_id}`)
    expectRefused(t, await postJson(`${stack.url}/interrupt`, {}), code, `${code} POST /interrupt`)
    expectRefused(t, await getJson(`${stack.url}/history`), code, `${code} GET /history`)
    expectRefused(t, await getJson(`${stack.url}/queue`), code, `${code} GET /queue`)
    expectRefused(t, await getJson(`${stack.url}/view?filename=x.png&type=output`), code, `${code} GET /view`)
    const submit = await postJson(`${stack.url}/prompt`, { prompt: defaultGraph() })
    expectRefused(t, submit, code, `${code} POST /prompt`)
    t.same(submit.body.node_errors, {}, 'POST /prompt keeps its envelope')
    if (code !== 'FORBIDDEN') expectRefused(t, await getJson(`${stack.url}/history_v2?max_items=1`), code, `${code} passed-through /history_v2`)
  }
  sim.refuseAccount(stack.key, undefined)
  t.ok((await getJson(`${stack.url}/history/${promptId}`)).body[promptId], 'the job shows again once the account is fixed')
  const statuses = sim.jobs(stack.key).map(job => job.status)
  t.same(statuses.filter(status => status === 'cancelled'), [], 'nothing was cancelled while refused')
})

t.test('the WebSocket closes with the refusal code in its reason', async t => {
  const stack = await startStack(t)
  stack.simulator.app.simulator.refuseAccount(stack.key, 'sso_required')
  const socket = new WebSocket(`${stack.url.replace('http', 'ws')}/ws?clientId=c1`)
  const [code, reason] = await new Promise<[number, string]>(resolve => socket.once('close', (code, reason) => { resolve([code, reason.toString()]) }))
  t.equal(code, 1008)
  t.match(reason, /refused the account: sso_required/)
})

t.test('current cloud: a plain 403 for another account\'s job still reads as absent; FORBIDDEN on the account does not', async t => {
  // LIST_TTL_MS 0: an id the cloud answered "not there" for is not remembered, so the second read asks the cloud again.
  const stack = await startStack(t, { listTtlMs: 0 }, { profile: 'current' })
  const sim = stack.simulator.app.simulator
  const foreign = sim.seedJob(stack.otherKey, { status: 'pending' })
  const direct = await getJson(`${stack.simulator.url}/api/jobs/${foreign.id}`, { headers: { 'x-api-key': stack.key } })
  t.equal(direct.status, 403, 'the simulator answers another account\'s job with 403')
  t.equal(direct.body.code, 'FORBIDDEN', '… whose code is the same as an unverified e-mail\'s')
  const history = await getJson(`${stack.url}/history/${foreign.id}`)
  t.equal(history.status, 200)
  t.same(history.body, {}, 'another account\'s job is not in history, as local answers an unknown id')
  t.equal((await postJson(`${stack.url}/queue`, { delete: [foreign.id] })).status, 200, 'deleting it is a no-op')
  t.equal(sim.jobs(stack.otherKey)[0].status, 'pending', 'and cancels nothing')

  sim.refuseAccount(stack.key, 'FORBIDDEN')
  expectRefused(t, await getJson(`${stack.url}/history/${foreign.id}`), 'FORBIDDEN', 'unverified account, GET /history/{id}')
  expectRefused(t, await postJson(`${stack.url}/queue`, { delete: [foreign.id] }), 'FORBIDDEN', 'unverified account, POST /queue delete')
})

t.test('current cloud: /object_info lists the account\'s own imported models (include_user_models)', async t => {
  const stack = await startStack(t, {}, { profile: 'current' })
  const all = await getJson(`${stack.url}/object_info`)
  t.equal(all.status, 200)
  t.ok(all.body.CheckpointLoaderSimple.input.required.ckpt_name[0].includes('my-imported-checkpoint.safetensors'), '/object_info')
  const one = await getJson(`${stack.url}/api/object_info/CheckpointLoaderSimple`)
  t.ok(one.body.CheckpointLoaderSimple.input.required.ckpt_name[0].includes('my-imported-checkpoint.safetensors'), '/object_info/{class}')
  const asked = stack.simulator.app.simulator.requests.filter(request => request.url.startsWith('/api/object_info'))
  t.equal(asked.length, 1, 'both answers came from one shared cloud call')
  t.match(asked[0].url, /include_user_models=true/)

  const off = await startStack(t, { objectInfoUserModels: false }, { profile: 'current' })
  const without = await getJson(`${off.url}/object_info/CheckpointLoaderSimple`)
  t.notOk(without.body.CheckpointLoaderSimple.input.required.ckpt_name[0].includes('my-imported-checkpoint.safetensors'), 'OBJECT_INFO_USER_MODELS=false')
  t.notMatch(off.simulator.app.simulator.requests.find(request => request.url.startsWith('/api/object_info'))?.url, /include_user_models/)
})

t.test('POST /prompt: a full cloud queue is a 429 with Retry-After and a message a person understands', async t => {
  // The 100-job cap is the deployed cloud's (drift §1.4).
  const stack = await startStack(t, {}, { profile: 'current' })
  const sim = stack.simulator.app.simulator
  for (let i = 0; i < 100; i++) sim.seedJob(stack.key, { status: 'pending' })
  const refused = await postJson(`${stack.url}/prompt`, { prompt: defaultGraph() })
  t.equal(refused.status, 429)
  t.equal(refused.headers.get('retry-after'), '5')
  t.equal(refused.body.error.type, 'QUEUE_LIMIT')
  t.match(refused.body.error.message, /queued nothing: the account's queue is full .*at most 100 waiting jobs.*wait 5 s/)
  t.type(refused.body.error.extra_info.cloud_message, 'string', 'the cloud\'s own words are kept')
  t.same(refused.body.node_errors, {})
})

t.test('POST /prompt: plan refusals (402) and other back-pressure (429) arrive in the local envelope', async t => {
  const stack = await startStack(t)
  const faults = stack.simulator.app.simulator.faults
  faults.set('POST /api/prompt', { status: 402, body: { error: { type: 'FREE_TIER_EXHAUSTED', message: 'free tier exhausted' } }, times: 1 })
  const plan = await postJson(`${stack.url}/prompt`, { prompt: defaultGraph() })
  t.equal(plan.status, 402)
  t.equal(plan.body.error.type, 'FREE_TIER_EXHAUSTED')
  t.match(plan.body.error.message, /free allowance is used up/)
  t.equal(plan.body.error.extra_info.cloud_message, 'free tier exhausted')
  t.equal(plan.headers.get('retry-after'), null, 'a plan refusal has no retry time')

  faults.set('POST /api/prompt', { status: 429, retryAfter: 30, body: { error: { type: 'BILLING_UNAVAILABLE', message: 'x', reason: 'funds_unavailable' } }, times: 1 })
  const billing = await postJson(`${stack.url}/prompt`, { prompt: defaultGraph() })
  t.equal(billing.status, 429)
  t.equal(billing.headers.get('retry-after'), '30')
  t.match(billing.body.error.message, /could not check the account's funds.*wait 30 s/)
  t.equal(billing.body.error.extra_info.reason, 'funds_unavailable')
})
