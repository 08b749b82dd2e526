/** comfy-compat-proxy doctor against the simulator: both profiles pass; a drifting or refusing cloud fails with the problem named. */
import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { formatReport, runDoctor, type DoctorOptions } from '../src/doctor.js'
import { startSimulator, type SimulatorProfile } from '../src/simulator/app.js'
import { defaultGraph, testKey, waitFor } from './helpers.js'

const root = fileURLToPath(new URL('..', import.meta.url))

async function simulator (t: Test, profile: SimulatorProfile = 'spec'): Promise<{ url: string, key: string, app: Awaited<ReturnType<typeof startSimulator>>['app'] }> {
  const key = testKey()
  const sim = await startSimulator({ apiKeys: [key], stepMs: 1, profile })
  t.teardown(sim.close)
  return { url: sim.url, key, app: sim.app }
}

const options = (url: string, key: string, extra: Partial<DoctorOptions> = {}): DoctorOptions =>
  ({ cloudUrl: url, apiKey: key, timeoutMs: 5_000, userModels: true, historyV2: false, submit: false, ...extra })

/** Two finished jobs, so that the detail, /view and the offset check have something to read. */
async function finishTwoJobs (url: string, key: string): Promise<void> {
  for (const seed of [1, 2]) {
    const response = await fetch(`${url}/api/prompt`, { method: 'POST', headers: { 'x-api-key': key, 'content-type': 'application/json' }, body: JSON.stringify({ prompt: defaultGraph(seed) }) })
    const { prompt_id: id } = await response.json() as { prompt_id: string }
    await waitFor(async () => {
      const job = await (await fetch(`${url}/api/jobs/${id}`, { headers: { 'x-api-key': key } })).json() as { status: string }
      return job.status === 'completed' ? true : undefined
    }, 15_000, `job ${id}`)
  }
}

for (const profile of ['spec', 'current'] as const) {
  t.test(`${profile} profile: every route the proxy uses passes, and --submit runs one tiny job`, async t => {
    const sim = await simulator(t, profile)
    const fresh = await runDoctor(options(sim.url, sim.key, { submit: true, jobTimeoutMs: 15_000 }))
    t.ok(fresh.ok, formatReport(fresh))
    const submitted = fresh.rows.find(row => row.route === 'job until finished')
    t.equal(submitted?.status, 'completed', 'the tiny job ran')
    t.equal(sim.app.simulator.jobs(sim.key).length, 1, 'one job, nothing else touched')

    await finishTwoJobs(sim.url, sim.key)
    sim.app.simulator.requests.length = 0
    const report = await runDoctor(options(sim.url, sim.key))
    t.ok(report.ok, formatReport(report))
    const routes = report.rows.map(row => row.route)
    for (const route of ['GET /api/prompt', 'GET /api/jobs', 'GET /api/jobs/{id}', 'GET /api/view', 'GET /api/queue', 'WS /ws']) t.ok(routes.includes(route), route)
    t.ok(routes.some(route => route.startsWith('GET /api/object_info?include_user_models=true')), 'object_info as the proxy asks for it')
    t.equal(report.rows.find(row => row.route === 'GET /api/view')?.status, '302', '/view read without following the signed URL')
    t.equal(report.rows.find(row => row.route === 'WS /ws')?.schema, 'ok')
    t.match(report.pagination, /offset|cursor/)
    t.match(report.account, /^ok/)
    t.equal(sim.app.simulator.jobs(sim.key).length, 3, 'a read-only run submits nothing')
    const methods = new Set(sim.app.simulator.requests.map(request => request.method))
    t.same([...methods], ['GET'], 'and only reads')
    const text = formatReport(report)
    t.match(text, /Route +Status +ms +Schema/)
    t.match(text, /Verdict: OK/)
    t.notMatch(text, sim.key, 'the key is never printed')
  })
}

t.test('a renamed field fails the check and names both names', async t => {
  const sim = await simulator(t)
  sim.app.simulator.faults.set('GET /api/jobs', { drift: { rename: { jobs: 'items' } } })
  const report = await runDoctor(options(sim.url, sim.key))
  t.notOk(report.ok)
  const row = report.rows.find(row => row.route === 'GET /api/jobs')!
  t.equal(row.schema, 'fails')
  t.same(row.missing, ['jobs'])
  t.same(row.unknown, ['items'])
  t.match(formatReport(report), /PROBLEM: GET \/api\/jobs: answers a JobsListResponse the proxy cannot read \(field jobs/)
  t.match(formatReport(report), /-jobs \+items/)
  t.match(formatReport(report), /Verdict: NOT OK/)
})

t.test('a missing field fails the check and names it', async t => {
  const sim = await simulator(t, 'current')
  sim.app.simulator.faults.set('GET /api/prompt', { drift: { remove: ['exec_info'] } })
  const report = await runDoctor(options(sim.url, sim.key))
  t.notOk(report.ok)
  const row = report.rows.find(row => row.route === 'GET /api/prompt')!
  t.same(row.missing, ['exec_info'])
  t.match(row.problem, /PromptInfo .*field exec_info/)
})

t.test('an account refused with sso_required fails the check and says what to do', async t => {
  const sim = await simulator(t, 'current')
  sim.app.simulator.refuseAccount(sim.key, 'sso_required')
  const report = await runDoctor(options(sim.url, sim.key))
  t.notOk(report.ok)
  t.match(report.account, /refused with sso_required: .*single sign-on/)
  t.equal(report.rows.find(row => row.route === 'GET /api/prompt')?.status, '403')
  t.equal(report.rows.find(row => row.route === 'WS /ws')?.status, '403', 'the WebSocket is refused too')
})

t.test('a wrong key is named as the problem', async t => {
  const sim = await simulator(t)
  const report = await runDoctor(options(sim.url, testKey()))
  t.notOk(report.ok)
  t.match(report.rows[0].problem, /refuses the key \(401\).*COMFY_CLOUD_API_KEY/)
})

function cli (env: Record<string, string>): Promise<{ code: number | null, output: string }> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('COMFY_')))
  const child = spawn(process.execPath, [...process.execArgv, 'src/cli.ts', 'doctor'], { cwd: root, env: { ...clean, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
  return new Promise(resolve => child.once('exit', code => { resolve({ code, output }) }))
}

t.test('the CLI: no key explains how to set one; a drifting cloud exits 1 naming the field', async t => {
  // (a healthy cloud's exit 0 is the in-process runs' report.ok above: the CLI answers report.ok ? 0 : 1)
  const none = await cli({})
  t.equal(none.code, 1)
  t.match(none.output, /No Comfy Cloud API key is set/)
  t.match(none.output, /COMFY_CLOUD_API_KEY=comfyui-\.\.\. comfy-compat-proxy doctor/)

  const sim = await simulator(t)
  sim.app.simulator.faults.set('GET /api/queue', { drift: { rename: { queue_running: 'running' } } })
  const drifting = await cli({ COMFY_CLOUD_URL: sim.url, COMFY_CLOUD_API_KEY: sim.key })
  t.equal(drifting.code, 1, drifting.output)
  t.match(drifting.output, /PROBLEM: GET \/api\/queue: answers a QueueInfo the proxy cannot read \(field queue_running/)
  t.notMatch(drifting.output, sim.key)
})
