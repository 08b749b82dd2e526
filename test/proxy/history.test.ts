/**
 * /history, /history/{id} and POST /history. Every test about local behaviour runs against both history
 * sources (HISTORY_SOURCE=jobs and history_v2, issue 16); those that page or read the cloud's job fields also
 * run against both simulator profiles (spec: offset paging; current: cursor paging and nulls, drift §1.6, §2.1).
 */
import { randomUUID } from 'node:crypto'
import t from 'tap'
import { defaultGraph, getJson, getRawPath, postJson, runJob, startStack, waitFor, type Stack } from '../helpers.js'
import type { Config } from '../../src/config.js'
import type { JobDetail } from '../../src/cloud/types.js'
import type { SimulatorProfile } from '../../src/simulator/app.js'

const BASE_TIME = 1763900000000
const SOURCES: ReadonlyArray<Config['historySource']> = ['jobs', 'history_v2']
const PROFILES: readonly SimulatorProfile[] = ['spec', 'current']
const MODES = SOURCES.flatMap(historySource => PROFILES.map(profile => ({ historySource, profile, name: `${historySource}, ${profile} cloud` })))

/** Finished jobs as the cloud keeps them once they ran: started, with ComfyUI's status dict unless withStatus is false. */
function seedFinished (stack: Stack, count: number, { account = stack.key, withStatus = true, from = 0 } = {}): JobDetail[] {
  const jobs: JobDetail[] = []
  for (let i = from; i < from + count; i++) {
    const id = randomUUID()
    const created = BASE_TIME + i * 1000
    jobs.push(stack.simulator.app.simulator.seedJob(account, {
      id,
      status: 'completed',
      create_time: created,
      update_time: created + 900,
      execution_start_time: created + 100,
      execution_end_time: created + 800,
      outputs: { 9: { images: [{ filename: `f${i}.png`, subfolder: '', type: 'output' }] } },
      ...(withStatus
        ? { execution_status: { status_str: 'success', completed: true, messages: [['execution_start', { prompt_id: id, timestamp: created + 100 }], ['execution_success', { prompt_id: id, timestamp: created + 800 }]] } }
        : {}),
      workflow: { prompt: defaultGraph(i), extra_data: { client_id: 'seed' } }
    }))
  }
  return jobs
}

async function historyIds (url: string, query = ''): Promise<string[]> {
  const { status, body } = await getJson(`${url}/history${query === '' ? '' : `?${query}`}`)
  if (status !== 200) throw new Error(`/history?${query} answered ${status}: ${JSON.stringify(body)}`)
  return Object.keys(body)
}

const cloudCalls = (stack: Stack, prefix: string): number => stack.simulator.app.simulator.requests.filter(r => r.url.startsWith(prefix)).length

/** Local ComfyUI's windows over five finished entries (contract §1.3): [query, indexes oldest first]. */
const WINDOWS: Array<[string, number[]]> = [
  ['', [0, 1, 2, 3, 4]],
  ['max_items=2', [3, 4]],
  ['offset=1', [1, 2, 3, 4]],
  ['max_items=2&offset=1', [1, 2]],
  ['max_items=0', []],
  ['max_items=10', [0, 1, 2, 3, 4]],
  ['max_items=-1', []],
  ['max_items=-1&offset=0', [0]],
  ['max_items=-3&offset=2', [2]],
  ['offset=-2', [0, 1, 2, 3, 4]],
  ['offset=-2&max_items=1', [4]],
  ['offset=5', []],
  ['offset=100', []],
  ['max_items=%203', [2, 3, 4]],
  ['max_items=%2B3', [2, 3, 4]],
  ['max_items=1_0', [0, 1, 2, 3, 4]],
  ['max_items=2&max_items=3', [3, 4]],
  ['max_items=2&offset=0', [0, 1]],
  ['max_items=2&offset=2', [2, 3]],
  ['clientId=abc&max_items=1', [4]]
]

for (const historySource of SOURCES) {
  t.test(`/history holds only finished jobs, keyed by prompt id, oldest first (${historySource})`, async t => {
    const stack = await startStack(t, { historySource })
    const sim = stack.simulator.app.simulator
    const finished = seedFinished(stack, 2)
    const failed = sim.seedJob(stack.key, { status: 'failed', create_time: BASE_TIME + 5000, execution_start_time: BASE_TIME + 5001 })
    const cancelled = sim.seedJob(stack.key, { status: 'cancelled', create_time: BASE_TIME + 6000, execution_start_time: BASE_TIME + 6001 })
    sim.seedJob(stack.key, { status: 'pending', create_time: BASE_TIME + 7000 })
    sim.seedJob(stack.key, { status: 'in_progress', create_time: BASE_TIME + 8000, execution_start_time: BASE_TIME + 8001 })
    for (const prefix of ['', '/api']) {
      const { status, body, headers } = await getJson(`${stack.url}${prefix}/history`)
      t.equal(status, 200)
      t.match(headers.get('content-type'), /^application\/json/)
      t.same(Object.keys(body), [finished[0].id, finished[1].id, failed.id, cancelled.id], `${prefix}/history`)
    }
  })
}

for (const { historySource, profile, name } of MODES) {
  t.test(`max_items and offset behave as in local ComfyUI for integer values (${name})`, async t => {
    const stack = await startStack(t, { historySource }, { profile })
    const ids = seedFinished(stack, 5).map(job => job.id)
    for (const [query, expected] of WINDOWS) t.same(await historyIds(stack.url, query), expected.map(i => ids[i]), query)
  })
}

for (const historySource of SOURCES) {
  t.test(`a non-integer max_items or offset is a 400 JSON error naming the parameter (${historySource})`, async t => {
    const stack = await startStack(t, { historySource })
    for (const [query, parameter] of [['max_items=abc', 'max_items'], ['max_items=1.5', 'max_items'], ['max_items=', 'max_items'], ['max_items=3abc', 'max_items'], ['offset=abc', 'offset'], ['offset=1e2', 'offset']]) {
      const { status, body, headers } = await getJson(`${stack.url}/api/history?${query}`)
      t.equal(status, 400, query)
      t.match(headers.get('content-type'), /^application\/json/)
      t.equal(body.error.type, 'invalid_query')
      t.match(body.error.message, parameter)
      t.equal(body.error.extra_info.parameter, parameter)
    }
  })
}

t.test('an entry is {prompt, outputs, status, meta} with a stable number and no auth keys in extra_data', async t => {
  const stack = await startStack(t)
  const { promptId } = await runJob(stack.url, {
    prompt: defaultGraph(7),
    client_id: 'client-a',
    extra_data: { api_key_comfy_org: 'partner-key', auth_token_comfy_org: 'partner-token', extra_pnginfo: { workflow: { id: 'wf' } } }
  })
  const first = await getJson(`${stack.url}/history/${promptId}`)
  const entry = first.body[promptId]
  t.same(Object.keys(entry), ['prompt', 'outputs', 'status', 'meta'])
  t.equal(entry.prompt.length, 5)
  t.equal(entry.prompt[1], promptId)
  t.same(entry.prompt[2], defaultGraph(7), 'the API graph')
  t.notOk('api_key_comfy_org' in entry.prompt[3])
  t.notOk('auth_token_comfy_org' in entry.prompt[3])
  t.equal(entry.prompt[3].client_id, 'client-a')
  t.same(entry.prompt[3].extra_pnginfo, { workflow: { id: 'wf' } })
  t.same(entry.prompt[4], ['9'])
  t.equal(entry.status.status_str, 'success')
  t.equal(entry.status.completed, true)
  t.same(entry.status.messages.map((m: [string]) => m[0]), ['execution_start', 'execution_cached', 'execution_success'])
  t.ok(entry.status.messages.every((m: [string, { timestamp: number }]) => m[1].timestamp > 1e12), 'ms timestamps')
  t.match(entry.outputs['9'].images[0], { subfolder: '', type: 'output' })
  t.same(Object.keys(entry.meta), ['9'])
  const job = stack.simulator.app.simulator.jobs(stack.key).find(j => j.id === promptId)!
  t.ok(Math.abs(entry.prompt[0] - job.create_time) < 60_000, 'number is on the scale of the submission time in ms')
  const list = await getJson(`${stack.url}/history`)
  t.same(list.body[promptId], entry, 'the same entry, number included, in the list')

  const { promptId: second } = await runJob(stack.url)
  const both = await getJson(`${stack.url}/history`)
  t.ok(both.body[second].prompt[0] > both.body[promptId].prompt[0], 'number grows with submission time')
})

for (const { historySource, profile, name } of MODES) {
  t.test(`status is synthesized from the cloud job when execution_status is absent (${name})`, async t => {
    const stack = await startStack(t, { historySource }, { profile })
    const sim = stack.simulator.app.simulator
    const failed = sim.seedJob(stack.key, {
      status: 'failed',
      create_time: 1763900100,
      update_time: 1763900105,
      execution_start_time: 1763900101,
      execution_end_time: 1763900104,
      execution_error: { node_id: '3', node_type: 'KSampler', exception_message: 'out of memory', exception_type: 'OOMError', traceback: [], current_inputs: {}, current_outputs: {} }
    })
    const cancelled = sim.seedJob(stack.key, { status: 'cancelled', create_time: BASE_TIME, update_time: BASE_TIME + 10, execution_start_time: BASE_TIME + 1, execution_end_time: BASE_TIME + 5 })
    const completed = sim.seedJob(stack.key, { status: 'completed', create_time: BASE_TIME + 20, update_time: BASE_TIME + 30, execution_start_time: BASE_TIME + 21, execution_end_time: BASE_TIME + 29 })
    const interrupted = sim.seedJob(stack.key, {
      status: 'failed',
      create_time: BASE_TIME + 40,
      update_time: BASE_TIME + 50,
      execution_start_time: BASE_TIME + 41,
      execution_end_time: BASE_TIME + 49,
      execution_error: { node_id: '3', node_type: 'KSampler', exception_message: 'Processing interrupted', exception_type: 'InterruptProcessingException', traceback: [], current_inputs: {}, current_outputs: {} }
    })

    const failedEntry = (await getJson(`${stack.url}/history/${failed.id}`)).body[failed.id]
    t.equal(failedEntry.prompt[0], 1763900100000, 'seconds normalised to ms')
    t.same(failedEntry.status.messages[0], ['execution_start', { prompt_id: failed.id, timestamp: 1763900101000 }])
    t.equal(failedEntry.status.status_str, 'error')
    t.same(failedEntry.status.messages[1][0], 'execution_error')
    t.match(failedEntry.status.messages[1][1], { prompt_id: failed.id, node_id: '3', node_type: 'KSampler', exception_message: 'out of memory', exception_type: 'OOMError', timestamp: 1763900104000 })

    const cancelledEntry = (await getJson(`${stack.url}/history/${cancelled.id}`)).body[cancelled.id]
    t.equal(cancelledEntry.status.status_str, 'error')
    t.equal(cancelledEntry.status.messages.at(-1)[0], 'execution_interrupted')

    const completedEntry = (await getJson(`${stack.url}/history/${completed.id}`)).body[completed.id]
    t.same(completedEntry.status, {
      status_str: 'success',
      completed: true,
      messages: [['execution_start', { prompt_id: completed.id, timestamp: BASE_TIME + 21 }], ['execution_success', { prompt_id: completed.id, timestamp: BASE_TIME + 29 }]]
    })

    // drift §2.2: the deployed cloud reports an interrupt as a failure with ComfyUI's interrupt exception
    const interruptedEntry = (await getJson(`${stack.url}/history/${interrupted.id}`)).body[interrupted.id]
    t.equal(interruptedEntry.status.status_str, 'error')
    t.same(interruptedEntry.status.messages.at(-1), ['execution_interrupted', { prompt_id: interrupted.id, node_id: '3', node_type: 'KSampler', executed: [], timestamp: BASE_TIME + 49 }])

    const list = await getJson(`${stack.url}/history`)
    t.same(Object.keys(list.body), [failed.id, cancelled.id, completed.id, interrupted.id], 'all four in /history too')
    t.same(list.body[interrupted.id].status, interruptedEntry.status)
  })
}

for (const historySource of SOURCES) {
  t.test(`a failed run keeps the cloud execution_status verbatim (${historySource})`, async t => {
    const stack = await startStack(t, { historySource })
    const { promptId, entry } = await runJob(stack.url, { prompt: defaultGraph(), extra_data: { simulator: { outcome: 'fail', node: '3' } } })
    const job = stack.simulator.app.simulator.jobs(stack.key).find(j => j.id === promptId)!
    t.equal(job.status, 'failed')
    t.same(entry.status, job.execution_status)
    t.equal(entry.status.messages.at(-1)[0], 'execution_error')
  })

  t.test(`/history/{id} answers 200 {} for pending, running, unknown, deleted and foreign ids (${historySource})`, async t => {
    const stack = await startStack(t, { historySource })
    const sim = stack.simulator.app.simulator
    const pending = sim.seedJob(stack.key, { status: 'pending' })
    const running = sim.seedJob(stack.key, { status: 'in_progress', execution_start_time: Date.now() })
    const foreign = seedFinished(stack, 1, { account: stack.otherKey })[0]
    const [deleted] = seedFinished(stack, 1)
    t.equal(Object.keys((await getJson(`${stack.url}/history/${deleted.id}`)).body).length, 1, 'visible before the delete')
    t.equal((await postJson(`${stack.url}/history`, { delete: [deleted.id] })).status, 200)
    for (const id of [pending.id, running.id, foreign.id, deleted.id, '00000000-0000-4000-8000-000000000000', 'not-a-uuid', 'a b', '%25', '..']) {
      for (const prefix of ['', '/api']) {
        const { status, text } = await getRawPath(stack.url, `${prefix}/history/${encodeURIComponent(id)}`)
        t.equal(status, 200, id)
        t.equal(text, '{}', `${prefix}/history/${id}`)
      }
    }
  })

  t.test(`a job appears in /history/{id} only once it is finished (${historySource})`, async t => {
    // LIST_TTL_MS 0: every poll asks for the unfinished list, so {} can only mean "not finished when asked".
    const stack = await startStack(t, { historySource, listTtlMs: 0 }, { stepMs: 20 })
    const submitted = await postJson(`${stack.url}/prompt`, { prompt: defaultGraph(1, 64, 64, 10) })
    const promptId = submitted.body.prompt_id
    const seen: string[] = []
    const statusOf = (): string => stack.simulator.app.simulator.jobs(stack.key).find(j => j.id === promptId)!.status
    await waitFor(async () => {
      const before = statusOf()
      const { body } = await getJson(`${stack.url}/history/${promptId}`)
      seen.push(body[promptId] === undefined ? 'empty' : 'entry')
      if (body[promptId] !== undefined) {
        t.equal(statusOf(), 'completed', 'an entry only for a finished job')
        return true
      }
      // Read before the request: the job may finish while the answer travels.
      t.not(before, 'completed', 'no entry could only mean not finished yet')
      return undefined
    }, 15_000)
    t.equal(seen[0], 'empty', 'polled while it ran')
  })

  t.test(`POST /history forwards only clear/delete, answers 200 with an empty body, and no later answer shows a deleted entry (${historySource})`, async t => {
    const stack = await startStack(t, { historySource, listTtlMs: 60_000 })
    const jobs = seedFinished(stack, 3)
    // Warm every cache: the list, and each entry.
    t.equal(Object.keys((await getJson(`${stack.url}/history`)).body).length, 3)
    for (const job of jobs) t.ok((await getJson(`${stack.url}/history/${job.id}`)).body[job.id])

    const response = await fetch(`${stack.url}/history`, { method: 'POST', body: JSON.stringify({ delete: [jobs[0].id], foo: 'dropped' }), headers: { 'content-type': 'text/plain' } })
    t.equal(response.status, 200)
    t.equal(await response.text(), '')
    t.equal(response.headers.get('content-length'), '0')
    t.same((await getJson(`${stack.url}/history/${jobs[0].id}`)).body, {}, 'deleted entry gone from /history/{id}')
    t.same(Object.keys((await getJson(`${stack.url}/history`)).body), [jobs[1].id, jobs[2].id], 'and from /history')

    t.equal((await postJson(`${stack.url}/api/history`, { clear: true })).status, 200)
    t.same((await getJson(`${stack.url}/history`)).body, {})
    t.same((await getJson(`${stack.url}/history/${jobs[2].id}`)).body, {})
  })

  t.test(`POST /history with bad bodies gets a JSON 400, never a crash; no-op bodies a 200 (${historySource})`, async t => {
    const stack = await startStack(t, { historySource })
    for (const body of ['{"delete": null}', '{"delete": 5}', 'not json', '"text"']) {
      const { status, body: answer } = await postJson(`${stack.url}/history`, body)
      t.equal(status, 400, body)
      t.type(answer.error.message, 'string')
    }
    for (const body of ['', '[]', '{}', '{"clear": false}', '{"delete": []}', '{"delete": "abc"}']) {
      const response = await fetch(`${stack.url}/history`, { method: 'POST', body })
      t.equal(response.status, 200, JSON.stringify(body))
      t.equal(await response.text(), '')
    }
  })
}

t.test('HISTORY_SOURCE=history_v2 serves the same routes from /api/history_v2', async t => {
  const stack = await startStack(t, { historySource: 'history_v2' })
  const a = await runJob(stack.url)
  const b = await runJob(stack.url, { prompt: defaultGraph(9), client_id: 'c' })
  const list = await getJson(`${stack.url}/history`)
  t.same(Object.keys(list.body), [a.promptId, b.promptId])
  const fromList = list.body[b.promptId]
  t.same(Object.keys(fromList), ['prompt', 'outputs', 'status', 'meta'])
  t.same(fromList.prompt[2], {}, 'the list has no API graph')
  t.equal(fromList.prompt[3].client_id, 'c')
  t.same(Object.keys((await getJson(`${stack.url}/history?max_items=1`)).body), [b.promptId])
  t.same(Object.keys((await getJson(`${stack.url}/history?offset=1`)).body), [b.promptId])
  t.same(Object.keys((await getJson(`${stack.url}/history?max_items=1&offset=0`)).body), [a.promptId])
  const detail = (await getJson(`${stack.url}/history/${b.promptId}`)).body[b.promptId]
  t.same(detail.prompt[2], defaultGraph(9), 'the detail has the graph')
  t.same(detail.outputs, fromList.outputs)
  const pending = stack.simulator.app.simulator.seedJob(stack.key, { status: 'pending' })
  t.same((await getJson(`${stack.url}/history/${pending.id}`)).body, {})
  const requests = stack.simulator.app.simulator.requests
  t.ok(requests.some(r => r.url.startsWith('/api/history_v2')), 'asked history_v2')
  t.notOk(requests.some(r => r.url.startsWith('/api/jobs?') || r.url === '/api/jobs'), 'never asked the /api/jobs list')
  // while they ran, the records had no status yet: only then was the job asked (issue 16)
  t.ok(requests.filter(r => r.url.startsWith('/api/jobs/')).every(r => [a.promptId, b.promptId].some(id => r.url === `/api/jobs/${id}`)))
})

for (const { historySource, profile, name } of MODES) {
  // Issue 16: seven jobs, five finished, two of them without an execution_status (one completed, one
  // interrupted after it started), one running and one pending. Both sources must show all five.
  t.test(`every finished job is shown, with or without an execution_status (${name})`, async t => {
    const stack = await startStack(t, { historySource }, { profile, stepMs: 2 })
    const absent = { simulator: { execution_status: 'absent' } }
    const first = await runJob(stack.url)
    const completedWithout = await runJob(stack.url, { prompt: defaultGraph(2), extra_data: absent })
    const failed = await runJob(stack.url, { prompt: defaultGraph(3), extra_data: { simulator: { outcome: 'fail', node: '8' } } })
    const interrupted = (await postJson(`${stack.url}/prompt`, { prompt: defaultGraph(4, 64, 64, 10_000), extra_data: absent })).body.prompt_id as string
    const simJob = (id: string): JobDetail | undefined => stack.simulator.app.simulator.jobs(stack.key).find(job => job.id === id)
    await waitFor(async () => simJob(interrupted)?.status === 'in_progress' ? true : undefined, 10_000, 'the run to start')
    t.equal((await postJson(`${stack.url}/interrupt`, {})).status, 200)
    await waitFor(async () => (await getJson(`${stack.url}/history/${interrupted}`)).body[interrupted], 10_000, 'the interrupted entry')
    const last = await runJob(stack.url, { prompt: defaultGraph(5) })
    const running = (await postJson(`${stack.url}/prompt`, { prompt: defaultGraph(6, 64, 64, 10_000) })).body.prompt_id as string
    await waitFor(async () => simJob(running)?.status === 'in_progress' ? true : undefined, 10_000, 'the last run to start')
    const pending = (await postJson(`${stack.url}/prompt`, { prompt: defaultGraph(7) })).body.prompt_id as string
    t.notOk(simJob(completedWithout.promptId)!.execution_status, 'the cloud kept no status')
    t.notOk(simJob(interrupted)!.execution_status, 'the cloud kept no status')
    t.equal(simJob(interrupted)!.status, profile === 'current' ? 'failed' : 'cancelled')

    const ids = [first.promptId, completedWithout.promptId, failed.promptId, interrupted, last.promptId]
    t.same(await historyIds(stack.url), ids, '/history lists all five, oldest first')
    for (const [query, expected] of [['max_items=3', [2, 3, 4]], ['max_items=2', [3, 4]], ['max_items=2&offset=1', [1, 2]], ['offset=3', [3, 4]], ['max_items=1&offset=0', [0]]] as const) {
      t.same(await historyIds(stack.url, query), expected.map(i => ids[i]), `windows are exact: ${query}`)
    }
    const entries = (await getJson(`${stack.url}/history`)).body
    t.same(entries[completedWithout.promptId].status.messages.map((m: [string]) => m[0]), ['execution_start', 'execution_success'])
    t.equal(entries[completedWithout.promptId].status.status_str, 'success')
    t.equal(entries[interrupted].status.status_str, 'error')
    t.equal(entries[interrupted].status.messages.at(-1)[0], 'execution_interrupted', 'shown as an interrupt, as local ComfyUI shows one')
    for (const id of ids) t.same((await getJson(`${stack.url}/history/${id}`)).body[id].status, entries[id].status, `/history/${id} agrees with the list`)
    for (const id of [running, pending]) t.same((await getJson(`${stack.url}/history/${id}`)).body, {}, 'unfinished: {}')
  })
}

t.test('history_v2: a finished job without a status costs one GET /api/jobs/{id} ever, and a steady /history poll one call', async t => {
  const stack = await startStack(t, { historySource: 'history_v2', listTtlMs: 0 })
  const [withStatus] = seedFinished(stack, 1)
  const [without] = seedFinished(stack, 1, { withStatus: false, from: 1 })
  const detailCalls = (): number => cloudCalls(stack, `/api/jobs/${without.id}`)
  t.same(await historyIds(stack.url), [withStatus.id, without.id])
  t.equal(detailCalls(), 1, 'confirmed once')
  const before = cloudCalls(stack, '/api/')
  for (let i = 0; i < 3; i++) t.same(await historyIds(stack.url), [withStatus.id, without.id])
  t.equal(cloudCalls(stack, '/api/') - before, 3, 'then one history_v2 call per poll')
  for (let i = 0; i < 3; i++) t.ok((await getJson(`${stack.url}/history/${without.id}`)).body[without.id])
  t.equal(detailCalls(), 1, '/history/{id} reuses the confirmed entry')
  const beforeDetail = cloudCalls(stack, '/api/')
  for (let i = 0; i < 3; i++) t.ok((await getJson(`${stack.url}/history/${withStatus.id}`)).body[withStatus.id])
  t.equal(cloudCalls(stack, '/api/') - beforeDetail, 1, 'a finished history_v2 record is fetched once, then cached')
})

for (const historySource of SOURCES) {
  t.test(`one bad job in a cloud list is dropped, logged and counted; the page still answers (${historySource})`, async t => {
    const stack = await startStack(t, { historySource }, { profile: 'current' })
    const sim = stack.simulator.app.simulator
    const jobs = seedFinished(stack, 3)
    // A workflow_id that is not a string: both lists carry it, and no schema allows it.
    const bad = sim.seedJob(stack.key, { status: 'completed', create_time: BASE_TIME + 1500, execution_start_time: BASE_TIME + 1501, workflow_id: 5 as unknown as string })
    const { status, body } = await getJson(`${stack.url}/history`)
    t.equal(status, 200, 'not a 502')
    t.same(Object.keys(body), jobs.map(job => job.id), 'the bad job is left out, the others shown')
    t.ok(stack.logs.some(line => line.includes('cloud list item failed its schema; dropped') && line.includes(bad.id)), 'logged with the job id')
    const metrics = (await getJson(`${stack.url}/metrics`)).text
    t.match(metrics, new RegExp(`comfy_proxy_cloud_items_dropped_total\\{schema="${historySource === 'jobs' ? 'JobEntry' : 'HistoryEntry'}"\\} 1`))
  })
}

t.test('one bad job in a cloud list is dropped on every route that lists jobs, not only /history (/api/jobs)', async t => {
  const stack = await startStack(t, {}, { profile: 'current' })
  const sim = stack.simulator.app.simulator
  const jobs = seedFinished(stack, 3)
  const bad = sim.seedJob(stack.key, { status: 'completed', create_time: BASE_TIME + 1500, execution_start_time: BASE_TIME + 1501, workflow_id: 5 as unknown as string })
  const { status, body } = await getJson(`${stack.url}/api/jobs`)
  t.equal(status, 200)
  t.same(body.jobs.map((job: { id: string }) => job.id).sort(), jobs.map(job => job.id).sort(), 'the bad job is left out')
  t.notOk(JSON.stringify(body).includes(bad.id))
})

for (const profile of PROFILES) {
  t.test(`lists longer than one cloud page stay exact (${profile} cloud: ${profile === 'spec' ? 'offset' : 'cursor'} paging)`, async t => {
    const stack = await startStack(t, { historyMaxEntries: 1100 }, { profile })
    const ids = seedFinished(stack, 1205).map(job => job.id)
    const retained = ids.slice(-1100)
    const cases: Array<[string, string[]]> = [
      ['offset=0&max_items=3', retained.slice(0, 3)],
      ['offset=1000&max_items=3', retained.slice(1000, 1003)],
      ['offset=1098', retained.slice(1098)],
      ['max_items=2', ids.slice(-2)]
    ]
    for (const [query, expected] of cases) t.same(await historyIds(stack.url, query), expected, query)
    const newest = await historyIds(stack.url, 'max_items=1002')
    t.same(newest, ids.slice(-1002), 'the newest 1002: more than one page')
    const listCalls = stack.simulator.app.simulator.requests.filter(r => r.url.startsWith('/api/jobs?'))
    if (profile === 'current') t.ok(listCalls.some(r => r.url.includes('after=')), 'paged with the cloud\'s cursor')
    else t.notOk(listCalls.some(r => r.url.includes('after=')), 'no cursor offered, none used')
  })
}

t.test('a cloud payload that fails its schema is a 502 naming the field, never a half-mapped answer', async t => {
  const stack = await startStack(t)
  const [job] = seedFinished(stack, 1)
  stack.simulator.app.simulator.faults.set('GET /api/jobs/:job_id', { drift: { rename: { status: 'state' } } })
  const detail = await getJson(`${stack.url}/history/${job.id}`)
  t.equal(detail.status, 502)
  t.equal(detail.body.error.type, 'cloud_schema_mismatch')
  t.match(detail.body.error.message, /status/)
  t.equal(detail.body.error.extra_info.field, 'status')

  stack.simulator.app.simulator.faults.clear()
  stack.simulator.app.simulator.faults.set('GET /api/jobs', { drift: { remove: ['pagination'] } })
  const list = await getJson(`${stack.url}/history?max_items=5`)
  t.equal(list.status, 502)
  t.match(list.body.error.message, /pagination/)
  t.equal(stack.logs.filter(line => line.includes('cloud payload failed its schema')).length >= 1, true, 'logged with the path')
})
