/** With a key, the proxy checks the cloud once at startup, logs one line with the verdict, and /readyz reports it; a failure never stops it. */
import t, { type Test } from 'tap'
import { startSimulator } from '../../src/simulator/app.js'
import { getJson, startProxy, testKey, waitFor } from '../helpers.js'

async function setUp (t: Test, prepare: (sim: Awaited<ReturnType<typeof startSimulator>>, key: string) => void = () => {}) {
  const key = testKey()
  const sim = await startSimulator({ apiKeys: [key], stepMs: 1 })
  t.teardown(sim.close)
  prepare(sim, key)
  const proxy = await startProxy(t, { cloudUrl: sim.url, apiKey: key, logLevel: 'info', cloudRetries: 0 }, { startupCheck: true })
  const lines = async (): Promise<string[]> => await waitFor(async () => {
    const found = proxy.logs.filter(line => line.includes('Comfy Cloud check'))
    return found.length > 0 ? found : undefined
  }, 10_000, 'the startup check line')
  return { proxy, sim, key, lines }
}

t.test('a healthy cloud: one info line, /readyz ready with the startup verdict', async t => {
  const { proxy, key, lines } = await setUp(t)
  const [line, ...more] = await lines()
  t.same(more, [], 'one line')
  t.match(JSON.parse(line), { level: 30, msg: /^Comfy Cloud check passed/ })
  const ready = await getJson(`${proxy.url}/readyz`)
  t.equal(ready.status, 200)
  t.match(ready.body.startup_check, { ok: true, verdict: /accepts the key/ })
  for (const text of proxy.logs) t.notMatch(text, key)
})

t.test('an account refused with sso_required: the server still serves; the line and /readyz say what is wrong', async t => {
  const { proxy, lines } = await setUp(t, (sim, key) => { sim.app.simulator.refuseAccount(key, 'sso_required') })
  const [line] = await lines()
  t.match(JSON.parse(line), { level: 40, msg: /^Comfy Cloud check failed: .*sso_required.*single sign-on/ })
  t.equal((await getJson(`${proxy.url}/healthz`)).status, 200, 'the server runs')
  const ready = await getJson(`${proxy.url}/readyz`)
  t.equal(ready.status, 503)
  t.equal(ready.body.error.type, 'cloud_account_refused')
  t.match(ready.body.startup_check, { ok: false, error: { type: 'cloud_account_refused' } })
})

t.test('a drifted list: the line names the field', async t => {
  const { proxy, sim, lines } = await setUp(t, sim => { sim.app.simulator.faults.set('GET /api/jobs', { drift: { remove: ['pagination'] }, times: 1 }) })
  const [line] = await lines()
  t.match(JSON.parse(line).msg, /Comfy Cloud check failed: .*JobsListResponse: field pagination/)
  t.equal(sim.app.simulator.requests.length, 2, 'the quick check is two cheap calls')
  const ready = await getJson(`${proxy.url}/readyz`)
  t.equal(ready.status, 200, 'once the cloud answers well again, the proxy is ready')
  t.match(ready.body.startup_check, { ok: false }, 'and /readyz still reports what startup found')
})
