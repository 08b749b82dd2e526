/**
 * Issue 14 rule 5: the cloud work one GET /history can cause is bounded. At 10,000 finished jobs and a
 * cache smaller than the account, a request used to fetch every job's detail, every time.
 */
import t from 'tap'
import { getJson, startStack } from '../helpers.js'

const JOBS = 10_000
const CACHE = 300

t.test(`GET /history at ${JOBS} finished jobs: at most the list pages and CACHE_MAX_ENTRIES details, then the list pages only`, async t => {
  const stack = await startStack(t, { cacheMaxEntries: CACHE, listTtlMs: 0 })
  const sim = stack.simulator.app.simulator
  const base = 1_763_900_000_000
  for (let i = 0; i < JOBS; i++) {
    sim.seedJob(stack.key, { status: 'completed', create_time: base + i, update_time: base + i, outputs: { 9: { images: [{ filename: `${i}.png`, subfolder: '', type: 'output' }] } } })
  }
  const cost = async (path: string): Promise<{ entries: string[], lists: number, details: number }> => {
    const before = sim.requests.length
    const { status, body } = await getJson(`${stack.url}${path}`)
    t.equal(status, 200, path)
    const calls = sim.requests.slice(before)
    return { entries: Object.keys(body), lists: calls.filter(call => call.url.startsWith('/api/jobs?')).length, details: calls.filter(call => call.url.startsWith('/api/jobs/')).length }
  }

  const first = await cost('/history')
  t.equal(first.entries.length, CACHE, 'the newest CACHE_MAX_ENTRIES entries')
  t.equal(first.entries.at(-1), sim.jobs(stack.key).at(-1)!.id, 'newest last, as local orders them')
  t.equal(first.lists, 1)
  t.equal(first.details, CACHE, 'one detail per entry shown, no more')

  for (const path of ['/history', '/history?max_items=10000', '/history?offset=0', '/history?max_items=50&offset=100']) {
    const again = await cost(path)
    t.equal(again.details, 0, `${path}: every entry from the cache`)
    t.ok(again.lists <= 2, `${path}: ${again.lists} list calls`)
    t.ok(again.entries.length <= CACHE, `${path}: ${again.entries.length} entries`)
  }
  t.same((await cost('/history?max_items=10000')).entries, first.entries, 'max_items beyond the window: the same window')
})
