import t from 'tap'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ConfigError, loadConfig } from '../src/config.js'
import { parseModelList } from '../src/simulator/models.js'

t.test('defaults: port 8188 on loopback, Comfy Cloud, and the simulator when nothing is set', async t => {
  const config = loadConfig({})
  t.equal(config.port, 8188)
  t.equal(config.host, '127.0.0.1')
  t.equal(config.cloudUrl, 'https://cloud.comfy.org')
  t.equal(config.logLevel, 'info')
  t.equal(config.historySource, 'jobs')
  t.equal(config.useSimulator, true)
})

t.test('a key selects Comfy Cloud', async t => {
  const config = loadConfig({ COMFY_CLOUD_API_KEY: 'comfyui-abc', PORT: '9000', LOG_LEVEL: 'debug' })
  t.equal(config.useSimulator, false)
  t.equal(config.apiKey, 'comfyui-abc')
  t.equal(config.port, 9000)
  t.equal(config.cloudUrl, 'https://cloud.comfy.org')
})

t.test('the key can come from a file (a Docker or Kubernetes secret)', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'ccp-config-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'key'), 'comfyui-from-file\n')
  t.equal(loadConfig({ COMFY_CLOUD_API_KEY_FILE: join(dir, 'key') }).apiKey, 'comfyui-from-file')
  t.equal(loadConfig({ COMFY_CLOUD_API_KEY_FILE: join(dir, 'key'), COMFY_CLOUD_API_KEY: 'comfyui-env' }).apiKey, 'comfyui-env', 'the variable wins')
  writeFileSync(join(dir, 'empty'), '\n')
  for (const file of ['empty', 'missing']) {
    const error = t.throws(() => loadConfig({ COMFY_CLOUD_API_KEY_FILE: join(dir, file) })) as ConfigError
    t.equal(error.variable, 'COMFY_CLOUD_API_KEY_FILE', file)
  }
})

t.test('FRONTEND_DIR and TEMPLATES_DIR are resolved to absolute folders', async t => {
  const frontend = fileURLToPath(new URL('fixtures/frontend', import.meta.url))
  const templates = fileURLToPath(new URL('fixtures/templates', import.meta.url))
  const config = loadConfig({ FRONTEND_DIR: relative(process.cwd(), frontend), TEMPLATES_DIR: relative(process.cwd(), templates) })
  t.equal(config.frontendDir, frontend)
  t.equal(config.templatesDir, templates)
  t.equal(loadConfig({}).frontendDir, '')
})

t.test('invalid configuration stops startup with a message naming the variable', async t => {
  const cases: Array<[Record<string, string>, string]> = [
    [{ PORT: 'eighty' }, 'PORT'],
    [{ PORT: '70000' }, 'PORT'],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL'],
    [{ HISTORY_SOURCE: 'v3' }, 'HISTORY_SOURCE'],
    [{ CLOUD_TIMEOUT_MS: '0' }, 'CLOUD_TIMEOUT_MS'],
    [{ COMFY_CLOUD_URL: 'http://127.0.0.1:9' }, 'COMFY_CLOUD_API_KEY'],
    [{ COMFY_CLOUD_URL: 'not a url', COMFY_CLOUD_API_KEY: 'k' }, 'COMFY_CLOUD_URL'],
    [{ COMFY_CLOUD_URL: 'ftp://example.com', COMFY_CLOUD_API_KEY: 'k' }, 'COMFY_CLOUD_URL'],
    [{ COMFY_CLOUD_URL: 'https://example.com/api', COMFY_CLOUD_API_KEY: 'k' }, 'COMFY_CLOUD_URL'],
    [{ SIMULATOR_MODELS: 'checkpoint=a.safetensors' }, 'SIMULATOR_MODELS'],
    [{ SIMULATOR_MODELS: 'a.safetensors' }, 'SIMULATOR_MODELS'],
    [{ SIMULATOR_MAX_JOBS: '0' }, 'SIMULATOR_MAX_JOBS'],
    [{ FRONTEND_DIR: '/nonexistent/frontend' }, 'FRONTEND_DIR'],
    [{ FRONTEND_DIR: fileURLToPath(new URL('fixtures/templates', import.meta.url)) }, 'FRONTEND_DIR'],
    [{ TEMPLATES_DIR: '/nonexistent/templates' }, 'TEMPLATES_DIR'],
    [{ REDIS_URL: 'not a url' }, 'REDIS_URL'],
    [{ REDIS_URL: 'http://127.0.0.1:6379' }, 'REDIS_URL']
  ]
  for (const [env, variable] of cases) {
    const error = t.throws(() => loadConfig(env), JSON.stringify(env)) as ConfigError
    t.ok(error instanceof ConfigError)
    t.equal(error.variable, variable, JSON.stringify(env))
    t.match(error.message, variable)
  }
})

t.test('SIMULATOR_MODELS names model files per folder', async t => {
  const config = loadConfig({ SIMULATOR_MODELS: ' checkpoints = a.safetensors, b.ckpt ; loras= ;', SIMULATOR_MAX_JOBS: '10' })
  t.same(parseModelList(config.simulatorModels), { checkpoints: ['a.safetensors', 'b.ckpt'], loras: [] })
  t.equal(config.simulatorMaxJobs, 10)
  t.same(parseModelList(''), {}, 'empty keeps every default')
})
