/**
 * `npm run bench`: the full benchmark run. Writes bench/results/latest.json and docs/benchmarks.md.
 *   --quick      a few seconds in all (a rehearsal; the figures mean little); writes to a temporary folder unless --out is given
 *   --out DIR    write latest.json and benchmarks.md into DIR instead
 *   --render     run nothing: rewrite the Markdown page (and the targets in the JSON) from the JSON results
 */
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { runBenchmarks, type BenchOptions, type BenchResults } from './harness.js'
import { evaluateTargets, renderMarkdown } from './report.js'

/** Options of a short rehearsal run (the smoke test uses these too). */
export const QUICK_OPTIONS: Partial<BenchOptions> = {
  durationS: 0.5,
  warmupS: 0.2,
  rounds: 1,
  unloadedDurationS: 0.5,
  unloadedRounds: 1,
  seedJobs: 40,
  historyItems: 20,
  imageSize: 256,
  fillJobs: 60,
  pollClients: 10,
  pollDurationS: 1,
  pollSeedJobs: 3,
  pollJobs: 2,
  pollJobSteps: 4,
  workloadIdPollers: [4],
  workloadJobs: 3,
  workloadJobSteps: 4,
  workloadDurationS: 1,
  storeWrites: 500,
  settleS: 0.2,
  stepMs: 20,
  budgetS: 60
}

function repoRoot (): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir)
    if (parent === dir) throw new Error('package.json not found above bench/')
    dir = parent
  }
  return dir
}

async function main (argv: string[]): Promise<void> {
  const root = repoRoot()
  const outIndex = argv.indexOf('--out')
  const quick = argv.includes('--quick')
  // A rehearsal never overwrites the committed results.
  const outDir = outIndex !== -1 ? resolve(argv[outIndex + 1] ?? '.') : quick ? mkdtempSync(join(tmpdir(), 'comfy-bench-quick-')) : undefined
  const resultsPath = outDir === undefined ? join(root, 'bench', 'results', 'latest.json') : join(outDir, 'latest.json')
  const docsPath = outDir === undefined ? join(root, 'docs', 'benchmarks.md') : join(outDir, 'benchmarks.md')
  if (argv.includes('--render')) {
    const saved = JSON.parse(readFileSync(resultsPath, 'utf8')) as BenchResults
    saved.targets = evaluateTargets(saved)
    writeFileSync(resultsPath, `${JSON.stringify(saved, null, 2)}\n`)
    writeFileSync(docsPath, renderMarkdown(saved))
    console.log(`rewrote ${docsPath} from ${resultsPath}`)
    return
  }
  const started = Date.now()
  const results = await runBenchmarks({
    ...(quick ? QUICK_OPTIONS : {}),
    resultsPath,
    docsPath,
    log: line => { console.log(line) }
  })
  console.log('')
  for (const target of results.targets) console.log(`${target.pass ? 'pass' : 'FAIL'}  (${target.id}) ${target.target}: ${target.measured}`)
  console.log(`done in ${Math.round((Date.now() - started) / 1000)} s; wrote ${outDir ?? 'bench/results/latest.json and docs/benchmarks.md'}`)
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).then(
    () => { process.exit(0) },
    (error: unknown) => {
      console.error(error)
      process.exit(1)
    }
  )
}
