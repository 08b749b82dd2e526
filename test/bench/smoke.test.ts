/**
 * A rehearsal of `npm run bench` at tiny durations: every case runs and yields numbers, the targets
 * are evaluated and the Markdown page is written, into a temporary folder only (never bench/results
 * or docs/). The benchmark figures themselves are not checked here.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { runBenchmarks } from '../../bench/harness.js'
import { QUICK_OPTIONS } from '../../bench/run.js'

const CASES = [
  'history-id-cached', 'history-id-uncached', 'history-id-hop', 'history-id-direct',
  'history-list-cached', 'history-list-direct-v2', 'history-list-direct-jobs',
  'prompt', 'prompt-direct', 'passthrough', 'passthrough-hop', 'passthrough-direct',
  'view', 'view-direct', 'view-range', 'view-preview-webp', 'view-preview-jpeg', 'history-id-uncached-1conn', 'history-id-hop-1conn',
  'prompt-submit-memory', 'prompt-submit-file', 'prompt-submit-redis',
  'prompt-submit-memory-1conn', 'prompt-submit-file-1conn', 'prompt-submit-redis-1conn'
]

const committed = [new URL('../../bench/results/latest.json', import.meta.url), new URL('../../docs/benchmarks.md', import.meta.url)]
const stamp = (url: URL): number | undefined => existsSync(url) ? statSync(url).mtimeMs : undefined

t.test('the benchmark harness runs every case and writes its report where it is told', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'bench-smoke-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const before = committed.map(stamp)
  const started = Date.now()

  const results = await runBenchmarks({
    ...QUICK_OPTIONS,
    durationS: 0.3,
    warmupS: 0,
    unloadedDurationS: 0.3,
    connections: 4,
    seedJobs: 20,
    fillJobs: 30,
    pollDurationS: 0.6,
    workloadDurationS: 0.5,
    // A guard against a hang, not a speed target: the shared machine may be loaded many times over.
    budgetS: 150,
    resultsPath: join(dir, 'latest.json'),
    docsPath: join(dir, 'benchmarks.md')
  })
  t.comment(`smoke run: ${((Date.now() - started) / 1000).toFixed(1)} s`)

  t.same(results.cases.map(row => row.id), CASES, 'every case, in order')
  for (const row of results.cases) {
    t.ok(row.requests > 0 && Number.isFinite(row.rps) && row.rps > 0, `${row.id}: requests completed`)
    t.ok([row.latencyMs.p50, row.latencyMs.p99, row.latencyMs.mean].every(v => Number.isFinite(v) && v > 0), `${row.id}: latencies`)
    t.ok(Number.isFinite(row.cloudCallsPerRequest), `${row.id}: cloud calls per request`)
    t.equal(row.non2xx + row.errors, 0, `${row.id}: no failed requests`)
  }
  const byId = Object.fromEntries(results.cases.map(row => [row.id, row]))
  t.equal(byId['history-id-cached'].cloudCalls, 0, 'the warm cache answers without the cloud')
  t.ok(byId['history-id-direct'].cloudCallsPerRequest >= 0.99 && byId['history-id-direct'].cloudCallsPerRequest <= 1.1, 'one simulator request per direct request')
  t.ok(byId['view-direct'].cloudCallsPerRequest >= 1.98, 'a direct /view is the redirect and the storage fetch')
  t.ok(byId['view'].bytesPerRequest > 1000, '/view answers the PNG bytes')
  for (const id of CASES.filter(id => id.startsWith('prompt-submit-'))) {
    t.same(Object.keys(byId[id].cloudCallsByRoute), ['POST /api/prompt'], `${id}: each submit is one cloud POST /api/prompt, on the state-store simulator`)
  }

  t.ok(results.polling.requests > 0 && Number.isFinite(results.polling.cloudCallsPerSecond), 'polling measured')
  t.equal(results.polling.errors, 0, 'no failed polls')
  t.same(Object.keys(results.storeWrites), ['memory', 'file', 'redis'], 'the write alone, on each store')
  t.ok(Object.values(results.storeWrites).every(l => Number.isFinite(l.p99) && l.p99 > 0), 'store write latencies')
  t.ok(results.workload.length > 0 && results.workload.every(run => run.localRequests > 0 && Number.isFinite(run.cloudCallsPerSecond)), 'the issue-9 workload measured')
  const { fresh, main } = results.memory
  t.ok(fresh.cacheFull.rss > 0 && fresh.cache.entries > 0 && fresh.cache.found === fresh.cache.jobsRequested, 'fresh proxy RSS with a filled cache')
  t.ok(fresh.cacheFullSettled.rss > 0, 'fresh proxy RSS once settled')
  t.ok(main.endOfRun.rss > 0 && main.endOfRunSettled.rss > 0 && main.cache.entries > 0, 'default proxy RSS at the end of the run')
  t.ok(fresh.cacheFull.gcExposed === 1 && main.endOfRun.gcExposed === 1, 'RSS is read after a GC')
  t.same(results.targets.map(target => target.id), ['a', 'b', 'b′', 'c', 'd', 'd′', 'f', 'e4'])
  for (const target of results.targets) t.type(target.pass, 'boolean')

  const json = JSON.parse(readFileSync(join(dir, 'latest.json'), 'utf8')) as typeof results
  t.equal(json.cases.length, CASES.length, 'JSON results written to the given path')
  const page = readFileSync(join(dir, 'benchmarks.md'), 'utf8')
  t.match(page, /## Targets\n\n\| \| Target \| Measured \| Result \|/)
  t.match(page, /## Routes side by side/)
  t.match(page, /## State stores: `POST \/prompt`[^]*\n\| 1 \| [0-9.]+ \/ [0-9.]+ \| [0-9.]+ \/ [0-9.]+ \| [+−][0-9.]+ ms \/ [+−][0-9.]+ ms \| [0-9.]+ \/ [0-9.]+ \| [+−]/, 'the state stores side by side, one connection')
  for (const row of results.cases) t.ok(page.includes(`| ${row.server} | ${row.request.replace(/\|/g, '\\|')} |`), `docs row for ${row.id}`)
  t.match(page, /\| (\*\*pass\*\*|\*\*FAIL\*\*) \|/)
  t.match(page, new RegExp(`\\| ${results.machine.cores} \\| ${results.machine.node.replace(/\./g, '\\.')} \\|`), 'machine details')

  t.same(committed.map(stamp), before, 'bench/results and docs untouched')
})
