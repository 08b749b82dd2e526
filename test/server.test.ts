import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))

/** Runs a TypeScript entry point the way tap runs this file (same loader flags). */
function run (entry: string, args: string[], env: Record<string, string>): { child: ChildProcess, output: () => string, exited: Promise<number | null> } {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('COMFY_') && !['PORT', 'HOST', 'LOG_LEVEL'].includes(name)))
  const child = spawn(process.execPath, [...process.execArgv, entry, ...args], { cwd: root, env: { ...clean, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout!.on('data', (chunk: Buffer) => { output += chunk.toString() })
  child.stderr!.on('data', (chunk: Buffer) => { output += chunk.toString() })
  const exited = new Promise<number | null>(resolve => child.once('exit', code => { resolve(code) }))
  t.teardown(() => { child.kill('SIGKILL') })
  return { child, output: () => output, exited }
}

async function until (read: () => string, pattern: RegExp, timeoutMs = 20_000): Promise<RegExpMatchArray> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const match = read().match(pattern)
    if (match !== null) return match
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${String(pattern)} in:\n${read()}`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

t.test('invalid configuration stops startup with a message naming the variable', async t => {
  const server = run('src/server.ts', [], { PORT: 'eighty' })
  t.equal(await server.exited, 1)
  t.match(server.output(), /Invalid configuration: PORT/)
  t.notMatch(server.output(), /\n\s+at /, 'no stack trace')
})

t.test('with no key and no URL it serves from the built-in simulator, says so once, and exits 0 on SIGTERM', async t => {
  const server = run('src/server.ts', [], { PORT: '0', LOG_LEVEL: 'info' })
  const [, url] = await until(server.output, /Server listening at (http:\/\/127\.0\.0\.1:\d+)/)
  t.equal(server.output().split('\n').filter(line => line.includes('built-in Comfy Cloud simulator')).length, 1, 'one clear line')
  t.match(server.output(), /COMFY_CLOUD_API_KEY/, 'and how to switch to Comfy Cloud')
  const response = await fetch(`${url}/prompt`)
  t.equal(response.status, 200)
  t.same(await response.json(), { exec_info: { queue_remaining: 0 } })
  t.equal((await fetch(`${url}/history`)).status, 200)
  server.child.kill('SIGTERM')
  t.equal(await server.exited, 0)
})

t.test('the CLI runs the simulator alone on a given port', async t => {
  const simulator = run('src/cli.ts', ['simulate', '--port', '0'], { SIMULATOR_API_KEY: 'comfyui-cli-key', LOG_LEVEL: 'warn' })
  const [, url] = await until(simulator.output, /listening on (http:\/\/127\.0\.0\.1:\d+)/)
  t.equal((await fetch(`${url}/api/prompt`)).status, 401, 'needs the key')
  const ok = await fetch(`${url}/api/prompt`, { headers: { 'x-api-key': 'comfyui-cli-key' } })
  t.same(await ok.json(), { exec_info: { queue_remaining: 0 } })
  simulator.child.kill('SIGTERM')
  t.equal(await simulator.exited, 0)
})

t.test('the CLI explains its usage', async t => {
  const help = run('src/cli.ts', ['--help'], {})
  t.equal(await help.exited, 0)
  t.match(help.output(), /serve\|simulate/)
  const bad = run('src/cli.ts', ['frobnicate'], {})
  t.equal(await bad.exited, 2)
})

t.test('the CLI simulator refuses a SIMULATOR_MAX_JOBS that is not a whole number instead of keeping every job', async t => {
  const simulator = run('src/cli.ts', ['simulate', '--port', '0'], { SIMULATOR_MAX_JOBS: 'lots' })
  t.equal(await simulator.exited, 2)
  t.match(simulator.output(), /Invalid SIMULATOR_MAX_JOBS: lots/)
})
