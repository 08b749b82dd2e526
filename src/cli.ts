#!/usr/bin/env node
/** comfy-compat-proxy [serve|simulate|doctor] [--port N] [--host H] [--submit] [--json] */
import { parseArgs } from 'node:util'
import { serve } from './server.js'
import { DEFAULT_MAX_JOBS, parseModelList, startSimulator } from './simulator/app.js'
import { doctorCommand } from './doctor.js'

const usage = `Usage: comfy-compat-proxy [serve|simulate|doctor] [--port N] [--host H] [--submit] [--json]
  serve      run the proxy (default). Configuration comes from the environment: see README.
  simulate   run only the Comfy Cloud simulator, as a stand-in for other projects' tests.
             Its API key is SIMULATOR_API_KEY (default comfyui-simulator-key).
  doctor     check, with the configured key, that Comfy Cloud and the account still answer as the
             proxy expects: read-only; --submit also runs one tiny job; --json prints the report as JSON.
             Exits 0 when everything the proxy needs works, 1 otherwise.`

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    port: { type: 'string' },
    host: { type: 'string' },
    submit: { type: 'boolean' },
    json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' }
  }
})
const command = positionals[0] ?? 'serve'

if (values.help === true || !['serve', 'simulate', 'doctor'].includes(command)) {
  process.stdout.write(`${usage}\n`)
  process.exit(values.help === true ? 0 : 2)
}

if (command === 'doctor') {
  process.exitCode = await doctorCommand(process.env, { submit: values.submit === true, json: values.json === true }, text => { process.stdout.write(text) })
} else if (command === 'serve') {
  const env = { ...process.env }
  if (values.port !== undefined) env.PORT = values.port
  if (values.host !== undefined) env.HOST = values.host
  await serve(env)
} else {
  const port = Number(values.port ?? process.env.PORT ?? 8189)
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    process.stderr.write(`Invalid --port: ${values.port ?? process.env.PORT}\n`)
    process.exit(2)
  }
  /** A whole number from the environment; a bad one stops here (Number('abc') would silently be NaN: unbounded). */
  const integer = (name: string, fallback: number, min: number): number => {
    const raw = process.env[name]
    const value = raw === undefined || raw === '' ? fallback : Number(raw)
    if (!Number.isInteger(value) || value < min) {
      process.stderr.write(`Invalid ${name}: ${raw ?? ''} (a whole number, at least ${min})\n`)
      process.exit(2)
    }
    return value
  }
  const apiKey = process.env.SIMULATOR_API_KEY ?? 'comfyui-simulator-key'
  const simulator = await startSimulator({
    apiKeys: [apiKey],
    host: values.host ?? process.env.HOST ?? '127.0.0.1',
    port,
    concurrency: integer('SIMULATOR_CONCURRENCY', 1, 1),
    stepMs: integer('SIMULATOR_STEP_MS', 50, 0),
    profile: process.env.SIMULATOR_PROFILE === 'current' ? 'current' : 'spec',
    models: parseModelList(process.env.SIMULATOR_MODELS ?? ''),
    maxJobs: integer('SIMULATOR_MAX_JOBS', DEFAULT_MAX_JOBS, 1),
    logger: { level: process.env.LOG_LEVEL ?? 'info' }
  })
  process.stdout.write(`Comfy Cloud simulator listening on ${simulator.url} (API key: ${apiKey})\n`)
  const stop = async (): Promise<void> => { await simulator.close(); process.exit(0) }
  process.once('SIGINT', () => { void stop() })
  process.once('SIGTERM', () => { void stop() })
}
