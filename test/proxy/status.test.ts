/** The status page's data and where the page lives (the browser test shows it working). */
import t from 'tap'
import { fileURLToPath } from 'node:url'
import { defaultGraph, getJson, postJson, startStack, waitFor } from '../helpers.js'

const FRONTEND_DIR = fileURLToPath(new URL('../fixtures/frontend', import.meta.url))

t.test('/proxy/status.json: in flight are only the jobs submitted through this proxy', async t => {
  const stack = await startStack(t, {}, { stepMs: 20 })
  const sim = stack.simulator.app.simulator
  const elsewhere = sim.seedJob(stack.key, { status: 'pending' })
  const ours = await postJson(`${stack.url}/prompt`, { prompt: defaultGraph(1, 64, 64, 200), client_id: 'mine' })
  const status = await waitFor(async () => {
    const { body } = await getJson(`${stack.url}/proxy/status.json`)
    return Array.isArray(body.in_flight) && body.in_flight.length > 0 ? body : undefined
  }, 10_000, 'a job in flight')
  t.same(status.in_flight.map((job: { prompt_id: string }) => job.prompt_id), [ours.body.prompt_id], `not ${elsewhere.id}, submitted elsewhere`)
  t.equal(status.in_flight[0].client_id, 'mine')
  t.match(status.check, { ok: true })
  t.equal(status.cloud, stack.simulator.url)
  t.match(status.budget, { maxRps: 1000, waiting: 0, pausedForMs: 0 }, 'the cloud budget (the tests lift it to 1000 calls per second)')
  t.type(status.budget.inUse, 'number')
})

t.test('/readyz and the status page share one quick check: probing both costs its two calls once', async t => {
  const stack = await startStack(t)
  const sim = stack.simulator.app.simulator
  sim.requests.length = 0
  t.equal((await getJson(`${stack.url}/readyz`)).status, 200)
  t.match((await getJson(`${stack.url}/proxy/status.json`)).body.check, { ok: true })
  t.equal((await getJson(`${stack.url}/readyz`)).status, 200)
  t.equal(sim.requests.filter(r => r.url === '/api/prompt').length, 1, 'GET /api/prompt once')
})

t.test('a failing part of the status says why; the rest still shows', async t => {
  const stack = await startStack(t, { cloudRetries: 0 })
  stack.simulator.app.simulator.faults.set('GET /api/queue', { status: 500 })
  const { status, body } = await getJson(`${stack.url}/proxy/status.json`)
  t.equal(status, 200)
  t.type(body.in_flight.error, 'string')
  t.ok(Array.isArray(body.latest))
})

t.test('with FRONTEND_DIR, / is the web UI and the status page stays at /proxy/status', async t => {
  const stack = await startStack(t, { frontendDir: FRONTEND_DIR })
  const root = await fetch(`${stack.url}/`)
  t.notMatch(await root.text(), /Jobs in flight through this proxy/)
  const page = await fetch(`${stack.url}/proxy/status`)
  t.equal(page.headers.get('content-type'), 'text/html; charset=utf-8')
  t.match(await page.text(), /Jobs in flight through this proxy/)
  const plain = await startStack(t)
  t.match(await (await fetch(`${plain.url}/`)).text(), /Jobs in flight through this proxy.*FRONTEND_DIR/s, 'without it, / is the status page and says how to add the UI')
})
