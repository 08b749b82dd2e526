/**
 * The built-in Comfy Cloud simulator: a Fastify app that answers like `https://cloud.comfy.org` for the routes
 * the proxy uses, with per-account jobs that really run (timers, WebSocket events, PNG outputs), signed storage
 * redirects, and fault injection for tests and benchmarks.
 */
import { randomBytes } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import Fastify, { type FastifyError, type FastifyInstance, type FastifyRequest } from 'fastify'
import multipart from '@fastify/multipart'
import websocket from '@fastify/websocket'
import { Catalog } from './catalog.js'
import { codeFor, HttpError } from './errors.js'
import { Executor } from './executor.js'
import { FaultRegistry, installFaultHooks, parseFault, type Fault } from './faults.js'
import { resolveModels, type ModelFolder, type ModelFolders } from './models.js'
import { isPlainObject } from './nodes.js'
import { RateLimiter } from './rate-limit.js'
import { QUEUE_LIMIT, registerRoutes } from './routes.js'
import { MODEL_LISTING_ROUTES, registerModelListing } from './model-listing.js'
import { FileStore, MAX_UPLOAD_SIZE, registerStorageRoutes, Signer } from './storage.js'
import { Store, type Account, type JobDetail, type JobStatus } from './store.js'
import { registerWs, SocketHub } from './ws.js'
import { ACCOUNT_REFUSALS, refusalBody, type AccountRefusal, type SimulatorProfile } from './profile.js'
import { registerUserdataRoutes, UserData } from './userdata.js'

export type { Fault } from './faults.js'
export type { JobDetail, JobStatus } from './store.js'
export { ACCOUNT_REFUSALS, PROFILES, type AccountRefusal, type SimulatorProfile } from './profile.js'
export { QUEUE_LIMIT } from './routes.js'
export { DEFAULT_MODELS, MODEL_FOLDERS, parseModelList, resolveModels, type ModelFolder, type ModelFolders } from './models.js'

/** Finished jobs an account keeps by default before the oldest are forgotten. */
export const DEFAULT_MAX_JOBS = 5000

export const DEFAULT_API_KEY = 'comfyui-simulator-key'

export interface SimulatorOptions {
  /** accepted keys; each key is its own account (jobs, sockets, history). default ['comfyui-simulator-key'] */
  apiKeys?: string[]
  /** jobs running at once per account; the rest stay pending. default 1 */
  concurrency?: number
  /** ms per KSampler step (a job takes roughly steps*stepMs plus a few ms). default 50 */
  stepMs?: number
  /** HMAC secret for signed storage URLs; default random */
  signingSecret?: string
  /** signed URL lifetime, default 300000 */
  viewUrlTtlMs?: number
  /** fastify logger option, default false */
  logger?: boolean | object
  /** `spec`: the published v1 spec (default); `current`: the deployed cloud as drift §2 describes it */
  profile?: SimulatorProfile
  /** model file names by folder; folders not named keep DEFAULT_MODELS */
  models?: Partial<Record<ModelFolder, string[]>>
  /** finished jobs kept per account (with their output files); older ones are forgotten. default 5000 */
  maxJobs?: number
  /** requests per minute each key may make (sliding window); beyond it 429 with Retry-After, like Comfy Cloud. default off */
  rateLimit?: number
  /** pending jobs an account may hold before POST /api/prompt answers 429 QUEUE_LIMIT (the cloud's cap is 100). default: 100 with the current profile, else off */
  queueLimit?: number
}

export interface SimulatorControl {
  faults: { set: (route: string, fault: Fault) => void, clear: (route?: string) => void }
  /** insert a job in any state with any fields (id/create_time/update_time minted when absent); the executor never runs it */
  seedJob: (apiKey: string, job: Partial<JobDetail> & { status: JobStatus }) => JobDetail
  /** the account's jobs, oldest first, as stored (extra_data is not redacted, so tests can see what a client sent) */
  jobs: (apiKey: string) => JobDetail[]
  /** every request received, newest last, at most the last 1000 */
  requests: Array<{ method: string, url: string, headers: Record<string, string | string[] | undefined> }>
  /** make every request of the account answer 403 with this code (drift §1.3), or stop (undefined) */
  refuseAccount: (apiKey: string, code: AccountRefusal | undefined) => void
  /** drop all jobs, faults, files, user data, refusals and recorded requests */
  reset: () => void
}

export type SimulatorInstance = FastifyInstance & { simulator: SimulatorControl }

const MAX_RECORDED = 1000
/** Public routes per the spec (`security: []` or optional auth). */
const PUBLIC = new Set(['/api/system_stats', '/api/features', '/api/global_subgraphs', '/api/global_subgraphs/:id', ...MODEL_LISTING_ROUTES])

/** The key a request carries: `X-API-Key: <key>` or `Authorization: Bearer <key>` (cloud-api-notes §1.2). */
function presentedKey (request: FastifyRequest): string | undefined {
  const header = request.headers['x-api-key']
  if (typeof header === 'string' && header !== '') return header
  const match = /^Bearer\s+(\S+)$/i.exec(request.headers.authorization ?? '')
  return match?.[1]
}

export function buildSimulator (opts: SimulatorOptions = {}): SimulatorInstance {
  const keys = opts.apiKeys ?? [DEFAULT_API_KEY]
  const profile = opts.profile ?? 'spec'
  const store = new Store(keys)
  const files = new FileStore()
  const userData = new UserData()
  const hub = new SocketHub()
  const faults = new FaultRegistry()
  const signer = new Signer(opts.signingSecret ?? randomBytes(32).toString('hex'), opts.viewUrlTtlMs ?? 300_000)
  const models: ModelFolders = resolveModels(opts.models)
  const catalog = new Catalog(models)
  const executor = new Executor(store, files, hub, { concurrency: opts.concurrency ?? 1, stepMs: opts.stepMs ?? 50, catalog, maxJobs: opts.maxJobs ?? DEFAULT_MAX_JOBS, profile })
  const refusals = new Map<string, AccountRefusal>()
  const accounts = new WeakMap<FastifyRequest, Account>()
  const limiter = opts.rateLimit !== undefined && opts.rateLimit > 0 ? new RateLimiter(opts.rateLimit, 60_000) : undefined
  const accountOf = (request: FastifyRequest): Account => {
    const account = accounts.get(request)
    if (account === undefined) throw new HttpError(401, 'UNAUTHORIZED', 'Missing or invalid API key')
    return account
  }

  const app = Fastify({ logger: opts.logger ?? false, bodyLimit: 16 * 1024 * 1024 })

  const requests: SimulatorControl['requests'] = []
  const control: SimulatorControl = {
    faults: { set: (route, fault) => faults.set(route, fault), clear: route => faults.clear(route) },
    seedJob: (apiKey, job) => structuredClone(store.seed(store.account(apiKey), job).detail),
    jobs: apiKey => store.account(apiKey).list().map(job => structuredClone(job.detail)),
    requests,
    refuseAccount: (apiKey, code) => { if (code === undefined) refusals.delete(apiKey); else refusals.set(apiKey, code) },
    reset: () => {
      executor.stopAll()
      store.reset()
      refusals.clear()
      faults.clear()
      files.clear()
      userData.clear()
      limiter?.clear()
      requests.length = 0
    }
  }
  app.decorate('simulator', control)

  // Like local ComfyUI, bodies are read as JSON whatever their Content-Type (multipart uploads excepted).
  app.removeContentTypeParser(['application/json', 'text/plain'])
  app.addContentTypeParser('*', { parseAs: 'string' }, (_request, body, done) => {
    if (body === '') return done(null, undefined)
    try {
      done(null, JSON.parse(body as string))
    } catch {
      done(new HttpError(400, 'BAD_REQUEST', 'The request body is not valid JSON'), undefined)
    }
  })

  app.addHook('onRequest', async request => {
    requests.push({ method: request.method, url: request.url, headers: { ...request.headers } })
    if (requests.length > MAX_RECORDED) requests.splice(0, requests.length - MAX_RECORDED)
  })

  app.addHook('onRequest', async (request, reply) => {
    const url = request.routeOptions.url
    if (url?.startsWith('/storage/') === true) return // pre-signed, see storage.ts
    // The WebSocket takes its key from `?token=` (cloud-api-notes §1.3); refusing here refuses the upgrade.
    const key = url === '/ws' ? (request.query as { token?: string }).token : presentedKey(request)
    const account = key === undefined ? undefined : store.accounts.get(key)
    if (account !== undefined) {
      const refusal = url?.startsWith('/__simulator') === true ? undefined : refusals.get(account.key)
      if (refusal !== undefined) return reply.code(403).send(refusalBody(refusal))
      accounts.set(request, account)
      const retryAfter = url?.startsWith('/__simulator/') === true ? undefined : limiter?.take(account.key)
      if (retryAfter !== undefined) {
        return reply.code(429).header('retry-after', String(retryAfter)).send({ code: 'RATE_LIMITED', message: 'Too many requests for this account; retry later' })
      }
      return
    }
    if (url !== undefined && PUBLIC.has(url)) return
    return reply.code(401).send({ code: 'UNAUTHORIZED', message: 'Missing or invalid API key' })
  })

  installFaultHooks(app, faults)

  // A refused WebSocket upgrade is answered on a raw socket that no HTTP server manages: close it once the
  // answer is out, or it lingers and holds up app.close(). Accepted upgrades are hijacked and never get here.
  app.addHook('onResponse', async request => {
    if (request.headers.upgrade?.toLowerCase() === 'websocket') request.raw.socket.end()
  })

  app.setNotFoundHandler(async (request, reply) => {
    return reply.code(404).send({ code: 'NOT_FOUND', message: `Route ${request.method} ${request.url.split('?')[0]} not found` })
  })

  app.setErrorHandler(async (error: FastifyError | HttpError, request, reply) => {
    const status = error.statusCode !== undefined && error.statusCode >= 400 ? error.statusCode : 500
    if (status >= 500) request.log.error(error)
    const message = status >= 500 ? 'Internal server error' : error.message
    // POST /api/prompt answers errors in the prompt envelope (cloud-api-notes §1.4).
    if (request.method === 'POST' && request.routeOptions.url === '/api/prompt' && status !== 401) {
      return reply.code(status).send({ error: { type: status === 413 ? 'prompt_too_large' : 'invalid_prompt', message, details: '', extra_info: {} }, node_errors: {} })
    }
    if (error instanceof HttpError) return reply.code(error.statusCode).headers(error.headers).send(error.body)
    return reply.code(status).send({ code: codeFor(status), message })
  })

  app.addHook('onClose', async () => {
    executor.stopAll()
  })

  app.register(websocket)
  app.register(multipart, { limits: { fileSize: MAX_UPLOAD_SIZE, files: 1, fields: 16 } })
  app.register(async instance => {
    // The deployed cloud caps queued jobs (drift §1.4); the spec profile plays it only when asked.
    registerRoutes(instance, { store, executor, accountOf, profile, catalog, files, queueLimit: opts.queueLimit ?? (profile === 'current' ? QUEUE_LIMIT : 0) })
    registerModelListing(instance, models)
    registerStorageRoutes(instance, { files, signer, accountOf: request => accountOf(request).key })
    registerUserdataRoutes(instance, { userData, accountOf: request => accountOf(request).key })
    registerWs(instance, { hub, accountOf: request => accountOf(request).key, remaining: key => store.account(key).remaining() })

    // Out-of-process fault control (benchmarks); needs the API key like every other route.
    instance.put('/__simulator/faults', async request => {
      const body = request.body
      if (!isPlainObject(body) || typeof body.route !== 'string' || body.route === '') {
        throw new HttpError(400, 'BAD_REQUEST', 'expected {route, fault}')
      }
      const fault = parseFault(body.fault)
      faults.set(body.route, fault)
      return { route: body.route, fault }
    })
    // Out-of-process account refusal: {refusal: 'sso_required' | … | null} for the calling key's account.
    instance.put('/__simulator/account', async request => {
      const body = request.body
      const refusal = isPlainObject(body) ? body.refusal : undefined
      if (refusal !== null && !ACCOUNT_REFUSALS.includes(refusal as AccountRefusal)) {
        throw new HttpError(400, 'BAD_REQUEST', `expected {refusal: ${ACCOUNT_REFUSALS.join(' | ')} | null}`)
      }
      control.refuseAccount(accountOf(request).key, refusal === null ? undefined : refusal as AccountRefusal)
      return { refusal }
    })
    instance.delete('/__simulator/faults', async (request, reply) => {
      const route = (request.query as { route?: string }).route ?? (isPlainObject(request.body) && typeof request.body.route === 'string' ? request.body.route : undefined)
      faults.clear(route)
      return reply.code(204).send()
    })
  })

  return app as unknown as SimulatorInstance
}

export async function startSimulator (opts: SimulatorOptions & { host?: string, port?: number } = {}): Promise<{ app: SimulatorInstance, url: string, close: () => Promise<void> }> {
  const { host = '127.0.0.1', port = 0, ...options } = opts
  const app = buildSimulator(options)
  await app.listen({ host, port })
  const address = app.server.address() as AddressInfo
  const reachable = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host
  return { app, url: `http://${reachable}:${address.port}`, close: async () => { await app.close() } }
}
