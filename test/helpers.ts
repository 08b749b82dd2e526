/** A proxy and a simulator on real loopback ports, torn down with the test. */
import { randomBytes } from 'node:crypto'
import type { Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { Client } from 'undici'
import { buildApp, type BuildOptions } from '../src/app.js'
import { loadConfig, type Config } from '../src/config.js'
import { startSimulator, PROFILES, type SimulatorOptions, type SimulatorProfile } from '../src/simulator/app.js'

export interface Stack {
  url: string
  app: FastifyInstance
  simulator: Awaited<ReturnType<typeof startSimulator>>
  key: string
  otherKey: string
  logs: string[]
}

/**
 * Which cloud the simulator of startStack plays unless a test asks for one: SIMULATOR_PROFILE, else
 * `spec`. The files under test/current/ run the integration suite again with `current`.
 */
export function testProfile (): SimulatorProfile {
  const profile = process.env.SIMULATOR_PROFILE
  return PROFILES.includes(profile as SimulatorProfile) ? profile as SimulatorProfile : 'spec'
}

export function testKey (): string {
  return `comfyui-test-${randomBytes(12).toString('hex')}`
}

/**
 * The proxy, with every log line at trace level kept in `logs`. Its cloud budget is lifted
 * (CLOUD_MAX_RPS 1000) so that tests of other things do not wait for it; the tests that prove the
 * budget set their own.
 */
export async function startProxy (t: Test, config: Partial<Config> & Pick<Config, 'cloudUrl' | 'apiKey'>, options: Omit<BuildOptions, 'logStream'> = {}): Promise<{ url: string, app: FastifyInstance, logs: string[] }> {
  const logs: string[] = []
  const app = buildApp({ ...loadConfig({}), logLevel: 'trace', cloudMaxRps: 1000, ...config }, { ...options, logStream: { write: (line: string) => { logs.push(line) } } })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(async () => { await app.close() })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('no address')
  return { url: `http://127.0.0.1:${address.port}`, app, logs }
}

export async function startStack (t: Test, config: Partial<Config> = {}, simulatorOptions: SimulatorOptions = {}): Promise<Stack> {
  const key = testKey()
  const otherKey = testKey()
  const simulator = await startSimulator({ apiKeys: [key, otherKey], stepMs: 1, host: '127.0.0.1', port: 0, profile: testProfile(), ...simulatorOptions })
  t.teardown(async () => { await simulator.close() })
  const proxy = await startProxy(t, { ...config, cloudUrl: simulator.url, apiKey: key })
  return { ...proxy, simulator, key, otherKey }
}

export async function getJson (url: string, init?: RequestInit): Promise<{ status: number, body: any, text: string, headers: Headers }> {
  const response = await fetch(url, init)
  const text = await response.text()
  let body: unknown
  try { body = JSON.parse(text) } catch { body = undefined }
  return { status: response.status, body, text, headers: response.headers }
}

export async function postJson (url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number, body: any, text: string, headers: Headers }> {
  return await getJson(url, { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } })
}

/** The ComfyUI default text-to-image API graph, small and fast. */
export function defaultGraph (seed = 42, width = 64, height = 64, steps = 3): Record<string, unknown> {
  return {
    3: { class_type: 'KSampler', inputs: { seed, steps, cfg: 8, sampler_name: 'euler', scheduler: 'normal', denoise: 1, model: ['4', 0], positive: ['6', 0], negative: ['7', 0], latent_image: ['5', 0] } },
    4: { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: 'v1-5-pruned-emaonly.safetensors' } },
    5: { class_type: 'EmptyLatentImage', inputs: { width, height, batch_size: 1 } },
    6: { class_type: 'CLIPTextEncode', inputs: { text: 'a lighthouse at dusk', clip: ['4', 1] } },
    7: { class_type: 'CLIPTextEncode', inputs: { text: 'blurry', clip: ['4', 1] } },
    8: { class_type: 'VAEDecode', inputs: { samples: ['3', 0], vae: ['4', 2] } },
    9: { class_type: 'SaveImage', inputs: { filename_prefix: 'ComfyUI', images: ['8', 0] } }
  }
}

/** Polls until check returns a value (not undefined), or fails after timeoutMs. */
export async function waitFor<T> (check: () => Promise<T | undefined>, timeoutMs = 10_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

/** Submits through the proxy and waits until the job is in the proxy's /history/{id}. */
export async function runJob (url: string, body: Record<string, unknown> = { prompt: defaultGraph() }): Promise<{ promptId: string, entry: any }> {
  const submitted = await postJson(`${url}/prompt`, body)
  if (submitted.status !== 200) throw new Error(`submit failed: ${submitted.status} ${submitted.text}`)
  const promptId = submitted.body.prompt_id as string
  const entry = await waitFor(async () => (await getJson(`${url}/history/${promptId}`)).body[promptId], 15_000, `job ${promptId}`)
  return { promptId, entry }
}

/** A GET with the path sent exactly as written (fetch would resolve dot segments such as %2E%2E). */
export async function getRawPath (origin: string, path: string): Promise<{ status: number, text: string }> {
  const client = new Client(origin)
  try {
    const response = await client.request({ method: 'GET', path })
    return { status: response.statusCode, text: await response.body.text() }
  } finally {
    await client.close()
  }
}
