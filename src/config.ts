import { accessSync, constants, mkdirSync, readFileSync, statSync, type Stats } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { Ajv } from 'ajv'
import { parseModelList } from './simulator/models.js'

const schema = JSON.parse(readFileSync(new URL('../config/schema.json', import.meta.url), 'utf8')) as {
  properties: Record<string, { 'x-env': string, type: string, default: unknown }>
}

export interface Config {
  port: number
  host: string
  cloudUrl: string
  apiKey: string
  apiKeyFile: string
  logLevel: string
  historySource: 'jobs' | 'history_v2'
  historyMaxEntries: number
  cloudTimeoutMs: number
  cloudConnections: number
  cloudStreamConnections: number
  cloudMaxJsonBytes: number
  cloudRetries: number
  cloudMaxRps: number
  cacheMaxEntries: number
  cacheMaxBytes: number
  cacheTtlMs: number
  listTtlMs: number
  viewMode: 'stream' | 'redirect'
  breakerThreshold: number
  breakerCooldownMs: number
  proxyAuthToken: string
  corsOrigin: string
  frontendDir: string
  templatesDir: string
  allowedHosts: string
  wsMaxConnections: number
  wsMaxConnectionsPerAddress: number
  healthMaxEventLoopDelayMs: number
  bodyLimit: number
  headersTimeoutMs: number
  bodyTimeoutMs: number
  shutdownTimeoutMs: number
  stateFile: string
  redisUrl: string
  simulatorConcurrency: number
  simulatorStepMs: number
  objectInfoUserModels: boolean
  simulatorProfile: 'spec' | 'current'
  simulatorModels: string
  simulatorMaxJobs: number
  simulatorRateLimit: number
  simulatorQueueLimit: number
}

export interface LoadedConfig extends Config {
  /** true when neither COMFY_CLOUD_API_KEY(_FILE) nor COMFY_CLOUD_URL was set: run the built-in simulator */
  useSimulator: boolean
}

export class ConfigError extends Error {
  constructor (readonly variable: string, message: string) {
    super(`Invalid configuration: ${variable} ${message}`)
    this.name = 'ConfigError'
  }
}

const ajv = new Ajv({ coerceTypes: true, useDefaults: true, allErrors: false, strict: false })
const validate = ajv.compile<Config>({ ...schema, $comment: undefined })

export const options = schema.properties

/** Builds the proxy's configuration from environment variables; throws a ConfigError naming the variable on bad input. */
export function loadConfig (env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  const raw: Record<string, unknown> = {}
  for (const [key, option] of Object.entries(options)) {
    const value = env[option['x-env']]
    if (value !== undefined && value !== '') raw[key] = value.trim()
  }
  if (!validate(raw)) {
    const error = validate.errors![0]
    const key = error.instancePath.slice(1)
    const variable = options[key]?.['x-env'] ?? key
    throw new ConfigError(variable, `${error.message ?? 'is invalid'} (got ${JSON.stringify(env[variable] ?? '')})`)
  }
  const config = raw as unknown as Config

  if (config.apiKey === '' && config.apiKeyFile !== '') {
    try {
      config.apiKey = readFileSync(config.apiKeyFile, 'utf8').trim()
    } catch (err) {
      throw new ConfigError('COMFY_CLOUD_API_KEY_FILE', `cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`)
    }
    if (config.apiKey === '') throw new ConfigError('COMFY_CLOUD_API_KEY_FILE', 'names an empty file')
  }
  if (/[\r\n]/.test(config.apiKey)) throw new ConfigError('COMFY_CLOUD_API_KEY', 'must be a single line')

  const urlSet = env.COMFY_CLOUD_URL !== undefined && env.COMFY_CLOUD_URL !== ''
  const useSimulator = config.apiKey === '' && !urlSet
  if (!useSimulator && config.apiKey === '') {
    throw new ConfigError('COMFY_CLOUD_API_KEY', 'is required when COMFY_CLOUD_URL is set (or set COMFY_CLOUD_API_KEY_FILE)')
  }
  let url: URL
  try {
    url = new URL(config.cloudUrl)
  } catch {
    throw new ConfigError('COMFY_CLOUD_URL', `is not a URL (got ${JSON.stringify(config.cloudUrl)})`)
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new ConfigError('COMFY_CLOUD_URL', 'must be an http(s) URL')
  }
  if (url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '' || url.pathname !== '/') {
    throw new ConfigError('COMFY_CLOUD_URL', 'must be a bare origin such as https://cloud.comfy.org')
  }
  config.cloudUrl = url.origin
  try {
    parseModelList(config.simulatorModels)
  } catch (err) {
    throw new ConfigError('SIMULATOR_MODELS', (err as Error).message)
  }
  if (config.frontendDir !== '') {
    config.frontendDir = resolve(config.frontendDir)
    if (!isFile(join(config.frontendDir, 'index.html'))) throw new ConfigError('FRONTEND_DIR', `must be a folder holding a built frontend's index.html (got ${JSON.stringify(env.FRONTEND_DIR)})`)
  }
  if (config.templatesDir !== '') {
    config.templatesDir = resolve(config.templatesDir)
    if (!isDirectory(config.templatesDir)) throw new ConfigError('TEMPLATES_DIR', `must be a folder (got ${JSON.stringify(env.TEMPLATES_DIR)})`)
  }
  if (config.redisUrl !== '') {
    let redis: URL
    try {
      redis = new URL(config.redisUrl)
    } catch {
      throw new ConfigError('REDIS_URL', 'is not a URL')
    }
    if (redis.protocol !== 'redis:' && redis.protocol !== 'rediss:') throw new ConfigError('REDIS_URL', 'must be a redis:// or rediss:// URL')
  } else if (config.stateFile !== '') {
    config.stateFile = writableStateFile(config.stateFile)
  }
  return { ...config, useSimulator }
}

/**
 * STATE_FILE as an absolute path, its folder created when missing (a fresh volume, `./state/…`), so
 * that a path the proxy cannot write stops startup with one line rather than a SQLite stack trace.
 * SQLite writes its -wal and -shm files beside the database, hence the folder must be writable too.
 */
function writableStateFile (path: string): string {
  const file = resolve(path)
  let existing: Stats | undefined
  try {
    mkdirSync(dirname(file), { recursive: true })
    accessSync(dirname(file), constants.W_OK | constants.X_OK)
    existing = statSync(file, { throwIfNoEntry: false })
    if (existing?.isFile() === true) accessSync(file, constants.R_OK | constants.W_OK)
  } catch (err) {
    throw new ConfigError('STATE_FILE', `cannot be written (${(err as NodeJS.ErrnoException).code ?? 'error'} for ${JSON.stringify(path)}): mount a writable volume there, or leave STATE_FILE empty to keep state in memory`)
  }
  if (existing !== undefined && !existing.isFile()) throw new ConfigError('STATE_FILE', `must name a file, not a folder (got ${JSON.stringify(path)})`)
  return file
}

function isFile (path: string): boolean {
  return statSync(path, { throwIfNoEntry: false })?.isFile() === true
}

function isDirectory (path: string): boolean {
  return statSync(path, { throwIfNoEntry: false })?.isDirectory() === true
}
