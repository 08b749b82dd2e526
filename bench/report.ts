/** Targets and the Markdown page (docs/benchmarks.md) written from one run's results. */
import type { BenchResults, CacheStats, CaseResult, MemorySample } from './harness.js'

export interface Target {
  id: string
  target: string
  measured: string
  pass: boolean
}

const MIB = 1024 * 1024
/** 150 MB, read strictly as 150 × 10⁶ bytes */
const RSS_LIMIT = 150e6

function byId (results: BenchResults, id: string): CaseResult | undefined {
  return results.cases.find(row => row.id === id)
}

const ms = (value: number): string => Number.isFinite(value) ? value.toFixed(2) : '–'
const ratio = (a: number, b: number): number => b > 0 ? a / b : Number.NaN
const times = (value: number): string => Number.isFinite(value) ? `${value.toFixed(2)}×` : '–'
const cores = (value: number): string => Number.isFinite(value) ? value.toFixed(2) : '–'
const int = (value: number): string => Number.isFinite(value) ? Math.round(value).toLocaleString('en-US') : '–'
const mb = (bytes: number): string => `${(bytes / 1e6).toFixed(1)} MB (${(bytes / MIB).toFixed(1)} MiB)`
const signedMs = (value: number): string => Number.isFinite(value) ? `${value >= 0 ? '+' : '−'}${Math.abs(value).toFixed(2)} ms` : '–'

/** POST /prompt's extra latency with a state store, against the memory store's, at that many connections. */
function storeCost (results: BenchResults, store: 'file' | 'redis', oneConnection: boolean): { memory: CaseResult, other: CaseResult, p50: number, p99: number } | undefined {
  const suffix = oneConnection ? '-1conn' : ''
  const memory = byId(results, `prompt-submit-memory${suffix}`)
  const other = byId(results, `prompt-submit-${store}${suffix}`)
  if (memory === undefined || other === undefined) return undefined
  return { memory, other, p50: other.latencyMs.p50 - memory.latencyMs.p50, p99: other.latencyMs.p99 - memory.latencyMs.p99 }
}

function latencyTarget (id: string, label: string, proxy: CaseResult | undefined, hop: CaseResult | undefined): Target {
  const target = `${label}: uncached \`GET /history/{id}\` latency ≤ 1.5× the plain http-proxy hop's for the same cloud call (p50 and mean)`
  if (proxy === undefined || hop === undefined) return { id, target, measured: 'not measured', pass: false }
  const p50 = ratio(proxy.latencyMs.p50, hop.latencyMs.p50)
  const mean = ratio(proxy.latencyMs.mean, hop.latencyMs.mean)
  return {
    id,
    target,
    measured: `p50 ${ms(proxy.latencyMs.p50)} vs ${ms(hop.latencyMs.p50)} ms (${times(p50)}); mean ${ms(proxy.latencyMs.mean)} vs ${ms(hop.latencyMs.mean)} ms (${times(mean)})`,
    pass: p50 <= 1.5 && mean <= 1.5
  }
}

export function evaluateTargets (results: BenchResults): Target[] {
  const targets: Target[] = []
  const cached = byId(results, 'history-id-cached')
  const direct = byId(results, 'history-id-direct')
  targets.push({
    id: 'a',
    target: 'Cached `GET /history/{id}` req/s ≥ the simulator\'s `GET /api/jobs/{id}` req/s',
    measured: cached === undefined || direct === undefined
      ? 'not measured'
      : `${int(cached.rps)} vs ${int(direct.rps)} req/s (${times(ratio(cached.rps, direct.rps))})`,
    pass: cached !== undefined && direct !== undefined && cached.rps >= direct.rps
  })
  targets.push(latencyTarget('b', `${results.options.connections} connections`, byId(results, 'history-id-uncached'), byId(results, 'history-id-hop')))
  targets.push(latencyTarget('b′', '1 connection (unloaded)', byId(results, 'history-id-uncached-1conn'), byId(results, 'history-id-hop-1conn')))
  const { polling } = results
  targets.push({
    id: 'c',
    target: `${polling.clients} clients polling \`GET /history\` every ${polling.intervalMs} ms ⇒ ≤ 2 cloud calls/s`,
    measured: `${polling.cloudCallsPerSecond.toFixed(2)} calls/s (${polling.cloudCalls} in ${polling.durationS.toFixed(1)} s; ${polling.jobsFinishedDuringRun} jobs finished meanwhile)`,
    pass: polling.cloudCallsPerSecond <= 2
  })
  const limit = `${RSS_LIMIT / 1e6} MB`
  const { fresh, main } = results.memory
  const size = results.proxyConfig.cacheMaxEntries
  const isFull = (entries: number): boolean => entries >= size
  targets.push({
    id: 'd',
    target: `RSS < ${limit} with the history cache full at its default size (${int(size)} entries): a fresh proxy process that only filled its cache, after a GC and ${results.options.settleS} s idle`,
    measured: `${mb(fresh.cacheFullSettled.rss)} with ${int(fresh.cache.entries)} entries (${(fresh.cache.bytes / 1e6).toFixed(1)} MB of JSON); right after the fill ${mb(fresh.cacheFull.rss)}, peak ${mb(fresh.cacheFullSettled.maxRss)}${isFull(fresh.cache.entries) ? '' : ' — cache not full'}`,
    pass: isFull(fresh.cache.entries) && fresh.cacheFullSettled.rss < RSS_LIMIT
  })
  targets.push({
    id: 'd′',
    target: 'Extra check, same limit at the end of the run: the proxy that served every case above, then filled its cache, after a GC and the same idle time',
    measured: `${mb(main.endOfRunSettled.rss)} with ${int(main.cache.entries)} entries; right after the fill ${mb(main.endOfRun.rss)}, peak during the run ${mb(main.endOfRunSettled.maxRss)}${isFull(main.cache.entries) ? '' : ' — cache not full'}`,
    pass: isFull(main.cache.entries) && main.endOfRunSettled.rss < RSS_LIMIT
  })
  const file = storeCost(results, 'file', true)
  targets.push({
    id: 'f',
    target: 'Issue 13, 1 connection: `POST /prompt` with `STATE_FILE` at most 1 ms slower than with the memory store (p50 and p99)',
    measured: file === undefined
      ? 'not measured'
      : `p50 ${ms(file.other.latencyMs.p50)} vs ${ms(file.memory.latencyMs.p50)} ms (${signedMs(file.p50)}); p99 ${ms(file.other.latencyMs.p99)} vs ${ms(file.memory.latencyMs.p99)} ms (${signedMs(file.p99)})`,
    pass: file !== undefined && file.p50 <= 1 && file.p99 <= 1
  })
  for (const run of results.workload ?? []) {
    const bound = 3 * run.durationS + run.jobsFinished
    targets.push({
      id: `e${run.idPollers}`,
      target: `Issue 9 workload, ${run.idPollers} pollers of their own jobs' \`/history/{id}\` + ${run.promptPollers} of \`/prompt\` + ${run.historyPollers} of \`/history\`, every ${run.intervalMs} ms ⇒ ≤ 3 cloud calls/s + 1 per finished job`,
      measured: `${run.cloudCalls} calls in ${run.durationS.toFixed(1)} s (${run.cloudCallsPerSecond.toFixed(2)}/s) for ${run.jobsFinished} finished jobs; bound ${Math.floor(bound)}`,
      pass: run.cloudCalls <= bound
    })
  }
  return targets
}

/**
 * A row whose cloud calls per request are clearly above what the route should cost. Requests still in
 * flight when a run ends reached the cloud but are not counted as completed: up to one per connection
 * and round, which matters only for slow routes, so that much is allowed for.
 */
export function excessCalls (row: CaseResult): boolean {
  if (row.expectedCloudCalls === undefined || row.requests === 0) return false
  const unfinished = row.connections * row.rounds * Math.max(1, row.expectedCloudCalls)
  return (row.cloudCalls - unfinished) / row.requests > row.expectedCloudCalls * 1.05 + 0.02
}

/** Facts worth a reader's attention, computed from the figures (no interpretation). */
export function observations (results: BenchResults): string[] {
  const notes: string[] = []
  for (const row of results.cases.filter(excessCalls)) {
    const peers = results.cases.filter(other => other !== row && other.group === row.group && other.connections === row.connections)
    const compare = peers.map(peer => `${peer.server} ${ms(peer.latencyMs.p50)} ms`).join(', ')
    notes.push(`\`${row.request}\` (${row.server}) cost ${row.cloudCallsPerRequest.toFixed(2)} cloud calls per client request where ${row.expectedCloudCalls ?? 0} ${row.expectedCloudCalls === 1 ? 'is' : 'are'} expected, at p50 ${ms(row.latencyMs.p50)} ms${compare === '' ? '' : ` (${compare})`}; by route: ${Object.entries(row.cloudCallsByRoute).map(([route, n]) => `\`${route}\` ${n}`).join(', ')}.`)
  }
  const noisy = results.cases.filter(row => row.otherCpuCores >= 0.25)
  if (noisy.length > 0) {
    notes.push(`Other processes kept ≥ 0.25 of a core busy during ${noisy.length} of ${results.cases.length} cases (${noisy.map(row => `${row.id} ${cores(row.otherCpuCores)}`).join(', ')}): those figures are noisier.`)
  }
  const failing = results.cases.filter(row => row.non2xx + row.errors > 0)
  for (const row of failing) notes.push(`\`${row.request}\` (${row.server}): ${row.non2xx} answers other than 2xx and ${row.errors} socket errors or timeouts.`)
  if (results.polling.errors > 0) notes.push(`Polling: ${results.polling.errors} failed polls.`)
  for (const [proxy, logs] of Object.entries(results.logs)) {
    if (logs.problems === 0) continue
    const kinds = Object.entries(logs.kinds).map(([kind, n]) => `${n} × “${kind}”`).join(', ')
    notes.push(`The ${proxy} proxy logged ${logs.problems} warnings or errors: ${kinds}.`)
  }
  return notes
}

/** Which cases raised the default proxy's peak RSS, and by how much. */
function peakGrowth (results: BenchResults): string {
  let previous = results.memory.main.afterStart.maxRss
  const steps: string[] = []
  for (const row of results.cases) {
    if (row.server !== 'proxy' || row.note === 'unloaded latency') continue
    if (row.proxyPeakRss - previous >= 5e6) steps.push(`${row.group} ${(previous / 1e6).toFixed(0)} → ${(row.proxyPeakRss / 1e6).toFixed(0)} MB`)
    previous = Math.max(previous, row.proxyPeakRss)
  }
  return steps.length === 0
    ? 'The default proxy\'s peak RSS grew by less than 5 MB in every route case.'
    : `The default proxy's peak RSS grew during the scenarios of: ${steps.join('; ')}.`
}

/** The issue-9 workload: what a poll costs when clients wait for their own jobs. */
function workloadSection (results: BenchResults): string[] {
  const runs = results.workload ?? []
  if (runs.length === 0) return []
  const { options } = results
  const first = runs[0]
  const byRoute = (counts: Record<string, number>): string => Object.entries(counts).map(([route, n]) => `\`${route}\` ${n}`).join(', ') || '–'
  return [
    '### Clients waiting for their own jobs (issue 9)',
    '',
    `Pollers of \`GET /history/{id}\` each waiting for one of ${options.workloadJobs} jobs submitted through the proxy (${options.workloadJobSteps} steps × ${options.stepMs} ms, one`,
    `at a time, so they finish during the run), ${first.promptPollers} clients polling \`GET /prompt\` and ${first.historyPollers} polling \`GET /history\`, all every ${first.intervalMs} ms`,
    `for ${options.workloadDurationS} s, against a proxy with the default configuration (\`LIST_TTL_MS\` ${first.listTtlMs}, \`CLOUD_MAX_RPS\` ${first.cloudMaxRps}), without a WebSocket.`,
    'Freshness lag: from a job\'s end in the cloud to the sending of the first poll that got its entry (no client listens on `/ws`, so',
    'the bound is `LIST_TTL_MS` plus one cloud call).',
    '',
    '| `/history/{id}` pollers | Local req/s | p50 ms | p99 ms | Errors | Cloud calls | Cloud calls/s | By route | Local requests per cloud call | Jobs finished | Freshness lag p50 / p99 ms | Other CPU |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|',
    ...runs.map(run => `| ${run.idPollers} | ${int(run.localRequests / run.durationS)} | ${ms(run.latencyMs.p50)} | ${ms(run.latencyMs.p99)} | ${run.errors} | ${run.cloudCalls} | ${run.cloudCallsPerSecond.toFixed(2)} | ${byRoute(run.cloudCallsByRoute)} | ${int(run.localRequestsPerCloudCall)} | ${run.jobsFinished} | ${ms(run.freshnessLagMs.p50)} / ${ms(run.freshnessLagMs.p99)} | ${cores(run.otherCpuCores)} |`),
    '',
    'Before the job tracker, 20 such pollers, 10 of `/prompt` and 5 of `/history` made about 227 cloud calls per second (one',
    '`GET /api/jobs/{id}` per poll of an unfinished job and one `GET /api/prompt` per `GET /prompt`).',
    ''
  ]
}

const STORE_LABELS: Record<string, string> = { memory: 'memory', file: '`STATE_FILE`', redis: '`REDIS_URL`' }

/** POST /prompt with each state store, as differences from the memory store's latency. */
function storeSection (results: BenchResults): string[] {
  const rows = [false, true].flatMap(oneConnection => {
    const memory = byId(results, `prompt-submit-memory${oneConnection ? '-1conn' : ''}`)
    if (memory === undefined) return []
    const cell = (store: 'file' | 'redis'): string => {
      const cost = storeCost(results, store, oneConnection)
      return cost === undefined ? 'not measured | –' : `${ms(cost.other.latencyMs.p50)} / ${ms(cost.other.latencyMs.p99)} | ${signedMs(cost.p50)} / ${signedMs(cost.p99)}`
    }
    return [`| ${memory.connections} | ${ms(memory.latencyMs.p50)} / ${ms(memory.latencyMs.p99)} | ${cell('file')} | ${cell('redis')} |`]
  })
  if (rows.length === 0) return []
  return [
    '## State stores: `POST /prompt` (issue 13)',
    '',
    'Three proxies with the default configuration (`CLOUD_MAX_RPS` lifted) that differ only in their state store: memory, `STATE_FILE`',
    '(SQLite in a temporary folder) and `REDIS_URL` (a `redis-server` of their own on loopback). Each `POST /prompt` is one cloud',
    '`POST /api/prompt` to a simulator of their own that runs none of the jobs and forgets them after every run, so its queue does not',
    'grow from case to case. The rows are the `POST /prompt, state store` scenarios of the table above; their cases ran in turn.',
    '',
    '| Conns | Memory p50 / p99 ms | `STATE_FILE` p50 / p99 ms | Δ p50 / p99 | `REDIS_URL` p50 / p99 ms | Δ p50 / p99 |',
    '|---|---|---|---|---|---|',
    ...rows,
    '',
    `The write alone: ${int(results.options.storeWrites)} \`set\` calls in a row on each proxy's store, after those cases, with no other load from the bench`,
    '(a record the size of a submission\'s; the file store writes SQLite synchronously on the event loop, Redis is one round trip).',
    '',
    '| Store | p50 ms | p90 ms | p99 ms | mean ms | max ms |',
    '|---|---|---|---|---|---|',
    ...Object.entries(results.storeWrites ?? {}).map(([store, l]) => `| ${STORE_LABELS[store] ?? store} | ${l.p50.toFixed(3)} | ${l.p90.toFixed(3)} | ${l.p99.toFixed(3)} | ${l.mean.toFixed(3)} | ${l.max.toFixed(1)} |`),
    ''
  ]
}

function memoryRow (process: string, when: string, cache: string, sample: MemorySample): string {
  return `| ${process} | ${when} | ${cache} | ${mb(sample.rss)} | ${(sample.heapUsed / 1e6).toFixed(1)} / ${(sample.heapTotal / 1e6).toFixed(1)} MB | ${(sample.external / 1e6).toFixed(1)} MB | ${mb(sample.maxRss)} |`
}

function cacheText (cache: CacheStats): string {
  return `${int(cache.entries)} entries, ${(cache.bytes / 1e6).toFixed(1)} MB of JSON`
}

function escape (text: string): string {
  return text.replace(/\|/g, '\\|')
}

export function renderMarkdown (results: BenchResults): string {
  const { machine, options, polling, memory } = results
  const lines: string[] = []
  const push = (...more: string[]): void => { lines.push(...more) }
  push(
    '# Benchmarks',
    '',
    `Written by \`npm run bench\` (\`bench/\`) from \`bench/results/latest.json\`; do not edit by hand. Run ${results.date.slice(0, 16).replace('T', ' ')} UTC${results.commit === undefined ? '' : ` on commit ${results.commit}`}, ${results.totalSeconds} s in all.`,
    '',
    '`npm run bench` compiles `bench/` and `src/` with `tsconfig.bench.json` into `dist-bench/` and runs the whole set (about 4 minutes);',
    '`node dist-bench/bench/run.js --quick` is a few-second rehearsal that writes to a temporary folder (`--out DIR` to choose).',
    '`test/bench/smoke.test.ts` runs the same harness at tiny durations under `npm test`.',
    '',
    '## Machine',
    '',
    '| CPU | Cores | Node.js | OS | Memory | Load average at start / end (1, 5, 15 min) |',
    '|---|---|---|---|---|---|',
    `| ${escape(machine.cpu)} | ${machine.cores} | ${machine.node} | ${machine.os} | ${(machine.memoryBytes / 1024 ** 3).toFixed(1)} GiB | ${machine.loadAverageAtStart.join(', ')} / ${machine.loadAverageAtEnd.join(', ')} |`,
    '',
    '## Targets',
    '',
    '| | Target | Measured | Result |',
    '|---|---|---|---|',
    ...results.targets.map(t => `| ${t.id} | ${escape(t.target)} | ${escape(t.measured)} | ${t.pass ? '**pass**' : '**FAIL**'} |`),
    '',
    '## Routes side by side',
    '',
    `Each case: ${options.warmupS} s of warm-up, then ${options.durationS} s measured with autocannon, ${options.connections} connections, closed loop`,
    `(the one-connection cases: ${options.unloadedDurationS} s). The cases of a scenario run in turn, in ${options.rounds} rounds (one-connection: ${options.unloadedRounds}),`,
    'so that a change in background load hits every row of a comparison alike. Latencies are per client request, from each response\'s own timer.',
    '"Cloud calls / request" counts every HTTP request the simulator received during the measured seconds, divided by the client requests completed.',
    '',
    '⚠: more cloud calls per request than the route should cost (see Observations).',
    '',
    '"Other CPU": cores that other processes of the machine kept busy meanwhile (0.00 on a quiet machine; more means noisier figures).',
    '',
    '| Scenario | Served by | Request | Conns | req/s | p50 ms | p99 ms | mean ms | Cloud calls / request | Bytes / response | Other CPU | Note |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|'
  )
  let group = ''
  for (const row of results.cases) {
    const scenario = row.group === group ? '' : escape(row.group)
    group = row.group
    const failures = row.non2xx + row.errors > 0 ? ` (${row.non2xx} non-2xx, ${row.errors} errors)` : ''
    const calls = Number.isFinite(row.cloudCallsPerRequest) ? `${row.cloudCallsPerRequest.toFixed(3)}${excessCalls(row) ? ' ⚠' : ''}` : '–'
    push(`| ${scenario} | ${row.server} | ${escape(row.request)} | ${row.connections} | ${int(row.rps)} | ${ms(row.latencyMs.p50)} | ${ms(row.latencyMs.p99)} | ${ms(row.latencyMs.mean)} | ${calls} | ${int(row.bytesPerRequest)} | ${cores(row.otherCpuCores)} | ${escape(row.note)}${failures} |`)
  }
  const routes = Object.entries(polling.cloudCallsByRoute).map(([route, n]) => `\`${route}\` ${n}`).join(', ')
  push(
    '',
    '## Polling',
    '',
    `${polling.clients} clients, each \`GET /history\` every ${polling.intervalMs} ms (undici, plain timers, 5 s timeout) for ${polling.durationS.toFixed(1)} s, against a proxy with the default`,
    `configuration on an account holding ${options.pollSeedJobs} finished jobs; ${options.pollJobs} jobs (${options.pollJobSteps} steps × ${options.stepMs} ms) were submitted to the cloud when polling began and ran one at a time.`,
    '',
    '| Client req/s | p50 ms | p99 ms | Errors | Bytes / response | Cloud calls | Cloud calls/s | By route | Jobs finished during the run | Other CPU |',
    '|---|---|---|---|---|---|---|---|---|---|',
    `| ${int(polling.rps)} | ${ms(polling.latencyMs.p50)} | ${ms(polling.latencyMs.p99)} | ${polling.errors} | ${int(polling.bytesPerRequest)} | ${polling.cloudCalls} | ${polling.cloudCallsPerSecond.toFixed(2)} | ${routes || '–'} | ${polling.jobsFinishedDuringRun} | ${cores(polling.otherCpuCores)} |`,
    '',
    `The floor is one list call per \`LIST_TTL_MS\` (${polling.listTtlMs} ms) plus one \`GET /api/jobs/{id}\` per job that finishes.`,
    '',
    ...workloadSection(results),
    ...storeSection(results),
    '## Memory of the proxy process',
    '',
    'Each proxy runs alone in its process; figures are after a full GC (`--expose-gc`). The cache is filled by requesting',
    `\`GET /history/{id}\` once for each of ${int(memory.fresh.cache.jobsRequested)} more seeded jobs (about ${int(memory.entryBytes)} bytes of local JSON per entry:`,
    'API graph, UI workflow in `extra_pnginfo`, outputs, status messages).',
    '',
    '| Process | When | History cache | RSS | Heap used / total | External | Peak RSS so far |',
    '|---|---|---|---|---|---|---|',
    memoryRow('fresh proxy', 'after start', '–', memory.fresh.afterStart),
    memoryRow('fresh proxy', 'right after filling the cache', cacheText(memory.fresh.cache), memory.fresh.cacheFull),
    memoryRow('fresh proxy', `cache full, after ${options.settleS} s idle`, cacheText(memory.fresh.cache), memory.fresh.cacheFullSettled),
    memoryRow('default proxy', 'after start', '–', memory.main.afterStart),
    memoryRow('default proxy', 'after the route cases', `${int(options.seedJobs + 1)} entries`, memory.main.afterCases),
    memoryRow('default proxy', 'end of the run: right after filling the cache', cacheText(memory.main.cache), memory.main.endOfRun),
    memoryRow('default proxy', `end of the run, after ${options.settleS} s idle`, cacheText(memory.main.cache), memory.main.endOfRunSettled),
    '',
    peakGrowth(results),
    '',
    `V8 keeps the heap it grew while filling the cache (parsing, validating and mapping ${int(memory.fresh.cache.jobsRequested)} cloud answers) until the process has`,
    `been idle for a few seconds; the readings after ${options.settleS} s idle are what a proxy at rest with a full cache holds.`,
    '',
    '## Set-up',
    '',
    '- Servers run in child processes on loopback, so the load generator (autocannon, in the parent) never shares their event loop:',
    '  the Comfy Cloud simulator; the proxy with its default configuration (`loadConfig({})`) but `CLOUD_MAX_RPS` lifted (these',
    '  cases measure the proxy, not the cloud budget), alone so its RSS is its own;',
    '  and a process with the proxy at `CACHE_MAX_ENTRIES=0`, a plain Fastify + `@fastify/http-proxy` hop that only injects',
    '  the key, and a default proxy on a second account for the polling run. A fourth process, a fresh default proxy, is started',
    '  at the end only to fill its history cache for target d. The state-store cases have a simulator and a process of their own',
    '  (its three proxies and their `redis-server`).',
    `- The proxies log at their default level (\`${results.proxyConfig.logLevel}\`): every line is serialised as in production and then dropped in-process.`,
    '  autocannon ends each run by closing its sockets, so requests still streaming then are logged by the proxy as aborted.',
    `- ${options.seedJobs} finished jobs are seeded, modelled on a real simulator job (outputs, status messages, meta) with an`,
    `  SDXL-style API graph plus its LiteGraph UI workflow, about ${int(options.workflowBytes)} bytes each. \`/view\` serves the real`,
    `  ${options.imageSize}×${options.imageSize} PNG that job rendered.`,
    '- `GET /history/{id}` cases cycle through every seeded id, so concurrent requests rarely ask for the same job',
    '  (the proxy coalesces identical in-flight cloud reads).',
    '- The warm cases are served from the proxy\'s cache after it was filled once; the simulator answers its routes from memory,',
    '  so "simulator" rows are the cost of an ideal, zero-latency cloud. Against the real cloud every cloud call adds a network round trip.',
    '- autocannon decodes every response body to a string in the parent process, so for multi-megabyte answers',
    '  (`/history?max_items=200`, about 2 MB) the load generator is part of what is measured; it is the same for both rows.',
    '- On a 2-core machine the load generator, the proxy and the simulator compete for the cores; compare rows of one run, not across machines.',
    ''
  )
  const notes = observations(results)
  push('## Observations', '')
  if (notes.length === 0) push('Nothing unusual: every route cost the cloud calls it should, and nothing failed.', '')
  else push(...notes.map(note => `- ${escape(note)}`), '')
  return lines.join('\n')
}
