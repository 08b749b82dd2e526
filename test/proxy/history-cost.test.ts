/**
 * What one poll costs in cloud calls in each history mode: the figures the README's "/history sources"
 * section states. An account with five finished jobs (one of them without an execution_status), one running
 * and one pending; nothing shared between polls (LIST_TTL_MS=0), so every figure is the cost of one poll.
 */
import t, { type Test } from 'tap'
import { defaultGraph, getJson, postJson, runJob, startStack, waitFor, type Stack } from '../helpers.js'
import type { Config } from '../../src/config.js'
import type { SimulatorProfile } from '../../src/simulator/app.js'

interface Costs {
  /** GET /history with nothing cached, then again */
  listCold: number
  list: number
  /** GET /history?offset=1&max_items=2 */
  offsetWindow: number
  /** GET /history/{id} of a finished job, nothing cached: with an execution_status, without one; then again */
  detailCold: number
  detailColdWithoutStatus: number
  detail: number
  /** GET /history/{id} of the running and the pending job */
  running: number
  pending: number
}

async function callsFor (stack: Stack, path: string): Promise<number> {
  const before = stack.simulator.app.simulator.requests.length
  const { status } = await getJson(`${stack.url}${path}`)
  if (status !== 200) throw new Error(`${path}: ${status}`)
  return stack.simulator.app.simulator.requests.length - before
}

async function measure (t: Test, historySource: Config['historySource'], profile: SimulatorProfile): Promise<Costs> {
  const stack = await startStack(t, { historySource, listTtlMs: 0 }, { profile, stepMs: 2 })
  const ids: string[] = []
  for (let i = 0; i < 4; i++) ids.push((await runJob(stack.url, { prompt: defaultGraph(i) })).promptId)
  const { promptId: withoutStatus } = await runJob(stack.url, { prompt: defaultGraph(9), extra_data: { simulator: { execution_status: 'absent' } } })
  const running = (await postJson(`${stack.url}/prompt`, { prompt: defaultGraph(5, 64, 64, 10_000) })).body.prompt_id as string
  await waitFor(async () => stack.simulator.app.simulator.jobs(stack.key).find(job => job.id === running)?.execution_start_time, 10_000, 'the run to start')
  const pending = (await postJson(`${stack.url}/prompt`, { prompt: defaultGraph(6) })).body.prompt_id as string
  stack.app.cache.clearEntries()
  const detailCold = await callsFor(stack, `/history/${ids[0]}`)
  const detailColdWithoutStatus = await callsFor(stack, `/history/${withoutStatus}`)
  const detail = await callsFor(stack, `/history/${withoutStatus}`)
  stack.app.cache.clearEntries()
  const listCold = await callsFor(stack, '/history')
  return {
    listCold,
    list: await callsFor(stack, '/history'),
    offsetWindow: await callsFor(stack, '/history?offset=1&max_items=2'),
    detailCold,
    detailColdWithoutStatus,
    detail,
    running: await callsFor(stack, `/history/${running}`),
    pending: await callsFor(stack, `/history/${pending}`)
  }
}

t.test('cloud calls per poll, by history source and cloud', async t => {
  const jobs = await measure(t, 'jobs', 'spec')
  t.same(jobs, { listCold: 6, list: 1, offsetWindow: 2, detailCold: 1, detailColdWithoutStatus: 1, detail: 0, running: 1, pending: 1 },
    'jobs: the list, plus one detail per finished job not yet cached; an offset window also asks for the total')
  t.same(await measure(t, 'jobs', 'current'), jobs,
    'jobs on a cursor-paging cloud: the same; for the offset window the list page that gives no total is followed by a cursor walk')
  const historyV2 = await measure(t, 'history_v2', 'spec')
  t.same(historyV2, { listCold: 3, list: 2, offsetWindow: 2, detailCold: 1, detailColdWithoutStatus: 2, detail: 0, running: 1, pending: 1 },
    'history_v2: one list call, plus one job call per record without a finished status (the running one on every list poll, the finished one once)')
  t.same(await measure(t, 'history_v2', 'current'), historyV2, 'history_v2 on the current cloud: the same')
})
