/**
 * The proxy as a Fastify plugin tree: translated routes (history, prompt, …) with local
 * ComfyUI's lenient JSON bodies, each under both `/route` and `/api/route` (contract §7), and
 * one error handler that turns every failure into a JSON answer without a stack trace.
 */
import { randomUUID } from 'node:crypto'
import type { Socket } from 'node:net'
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyPluginAsync, type FastifyReply, type FastifyRequest } from 'fastify'
import cors from '@fastify/cors'
import websocket from '@fastify/websocket'
import { pino, type DestinationStream } from 'pino'
import type { Config } from './config.js'
import { CloudClient } from './cloud/client.js'
import { CircuitBreaker } from './cloud/breaker.js'
import { CloudBudget } from './cloud/budget.js'
import { Jobs } from './jobs/jobs.js'
import { ProxyCache } from './cache.js'
import { Submissions } from './jobs/submissions.js'
import { MemorySettingsStore, StoredSettings, type SettingsStore } from './store/settings.js'
import { createStore, type StateStore } from './store/index.js'
import { PromptIds, type PromptIdMap } from './jobs/prompt-ids.js'
import { Metrics } from './metrics.js'
import { errorBody, ProxyError, sendLocalNotFound } from './errors.js'
import { loggerOptions } from './logger.js'
import { requireToken } from './auth.js'
import { corsOriginAllows, guard } from './guard.js'
import { SecretScrubber } from './secrets.js'
import { scrubAnswers } from './scrub.js'
import { bodyProgressTimeout, serverTimeouts } from './timeouts.js'
import { lenientJsonBodies } from './body.js'
import { CloudCheck, quickCheck } from './cloud/check.js'
import healthRoutes from './routes/health.js'
import historyRoutes from './routes/history.js'
import promptRoutes from './routes/prompt.js'
import queueRoutes from './routes/queue.js'
import viewRoutes from './routes/view.js'
import objectInfoRoutes from './routes/object-info.js'
import modelRoutes from './routes/models.js'
import systemRoutes from './routes/system.js'
import logRoutes from './routes/logs.js'
import { LogRing } from './log-ring.js'
import wsRoutes from './routes/ws.js'
import jobsRoutes from './routes/jobs.js'
import passthroughRoutes from './routes/passthrough.js'
import settingsRoutes from './routes/settings.js'
import { frontendApiRoutes, frontendFiles } from './routes/frontend.js'
import { answerWrongMethods } from './routes/methods.js'
import statusRoutes from './routes/status.js'

/** Requests Node's HTTP parser refuses (garbage request lines, bad framing, huge headers), answered in the local envelope too. */
function answerMalformedHttp (error: NodeJS.ErrnoException, socket: Socket): void {
  if (error.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy()
    return
  }
  const [status, reason] = error.code === 'HPE_HEADER_OVERFLOW' ? [431, 'Request Header Fields Too Large'] : [400, 'Bad Request']
  const body = JSON.stringify(errorBody('bad_request', 'Malformed HTTP request'))
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`)
}

/** Error types for Fastify's own 4xx errors (body too large, bad content, …). */
const CLIENT_ERROR_TYPES: Record<number, string> = { 404: 'not_found', 405: 'method_not_allowed', 413: 'body_too_large', 415: 'unsupported_media_type' }

declare module 'fastify' {
  interface FastifyInstance {
    config: Config
    cloud: CloudClient
    cache: ProxyCache
    jobs: Jobs
    store: StateStore
    submissions: Submissions
    settings: SettingsStore
    promptIds: PromptIdMap
    metrics: Metrics
    /** finds the server key and PROXY_AUTH_TOKEN in anything relayed to a client */
    secrets: SecretScrubber
    /** the quick cloud check run once at startup (with a key), for /readyz and the status page */
    cloudCheck: CloudCheck
  }
  interface FastifyContextConfig {
    /** answer errors as POST /prompt does: {error, node_errors} */
    promptEnvelope?: boolean
  }
}

const translatedRoutes: FastifyPluginAsync = async (fastify) => {
  lenientJsonBodies(fastify)
  const sealRoutes = answerWrongMethods(fastify)
  await fastify.register(viewRoutes)
  await fastify.register(wsRoutes)
  for (const prefix of ['', '/api']) {
    await fastify.register(historyRoutes, { prefix })
    await fastify.register(promptRoutes, { prefix })
    await fastify.register(queueRoutes, { prefix })
    await fastify.register(objectInfoRoutes, { prefix })
    await fastify.register(modelRoutes, { prefix })
    await fastify.register(systemRoutes, { prefix })
    await fastify.register(settingsRoutes, { prefix })
    await fastify.register(frontendApiRoutes, { prefix })
    await fastify.register(jobsRoutes, { prefix })
  }
  sealRoutes()
}

export interface BuildOptions {
  /** where log lines go (default stdout) */
  logStream?: DestinationStream
  /** once listening, run the quick cloud check and log its verdict in one line (the server starts whatever it finds) */
  startupCheck?: boolean
}

export function buildApp (config: Config, options: BuildOptions = {}): FastifyInstance {
  const timeouts = serverTimeouts(config.headersTimeoutMs)
  // The written (scrubbed) lines are also kept for /internal/logs.
  const logRing = new LogRing()
  const logger = pino(loggerOptions(config.logLevel, [config.apiKey, config.proxyAuthToken]), logRing.tee(options.logStream ?? process.stdout))
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    requestIdHeader: 'x-request-id',
    genReqId: () => randomUUID(),
    bodyLimit: config.bodyLimit,
    return503OnClosing: true,
    // Ids longer than the router's default 100 characters must still reach /history/:id (local answers {}).
    routerOptions: { maxParamLength: 16_384 },
    requestTimeout: timeouts.requestTimeout,
    // Local ComfyUI (aiohttp) accepts HTTP/1.1 without Host; Node would answer a bare 400.
    http: { requireHostHeader: false, ...timeouts.http },
    // A path that cannot be decoded: the local envelope rather than Fastify's own body.
    frameworkErrors: (error: FastifyError, _request: FastifyRequest, reply: FastifyReply) => {
      void reply.code(400).send(errorBody('bad_request', error.message))
    },
    clientErrorHandler: answerMalformedHttp
  })
  guard(app, config)
  bodyProgressTimeout(app, config.bodyTimeoutMs)
  app.addHook('onRequest', async (request, reply) => {
    // Node hands any Upgrade request to the WebSocket server, which would refuse a non-WebSocket one in text/html.
    const upgrade = request.headers.upgrade
    if (upgrade === undefined || upgrade.toLowerCase() === 'websocket') return
    reply.header('connection', 'close')
    reply.raw.once('finish', () => { request.raw.socket?.destroy() })
    return await reply.code(400).send(errorBody('bad_request', `Unsupported Upgrade: ${upgrade.slice(0, 40)}`))
  })
  const metrics = new Metrics()
  app.decorate('metrics', metrics)
  app.decorate('secrets', new SecretScrubber([config.apiKey, config.proxyAuthToken]))
  scrubAnswers(app, app.secrets)
  app.decorate('config', config)
  const store = createStore({
    ...config,
    onHealthChange: (healthy, first) => {
      if (!healthy) app.log.warn({ store: 'redis' }, 'state store unreachable: serving from memory until it returns')
      else app.log.info({ store: 'redis' }, first ? 'state store connected' : 'state store reachable again: caught up')
    }
  })
  app.decorate('store', store)
  app.decorate('cloud', new CloudClient({
    baseUrl: config.cloudUrl,
    apiKey: config.apiKey,
    timeoutMs: config.cloudTimeoutMs,
    connections: config.cloudConnections,
    streamingConnections: config.cloudStreamConnections,
    maxJsonBytes: config.cloudMaxJsonBytes,
    retries: config.cloudRetries,
    logger: app.log,
    breaker: new CircuitBreaker(config.breakerThreshold, config.breakerCooldownMs),
    budget: new CloudBudget(config.cloudMaxRps, metrics.budgetObserver(), store.shared
      ? {
          reserve: async (rate, burst, maxWaitMs) => await store.reserve('cloud', rate, burst, maxWaitMs),
          announcePause: ms => { store.publish('budget-pause', String(ms)).catch(() => {}) }
        }
      : undefined),
    observer: metrics.observer()
  }))
  app.decorate('cache', new ProxyCache({
    maxEntries: config.cacheMaxEntries,
    maxBytes: config.cacheMaxBytes,
    ttlMs: config.cacheTtlMs,
    listTtlMs: config.listTtlMs
  }))
  app.decorate('promptIds', new PromptIds({ store }))
  // A 429 seen by any replica pauses the reads of every replica (issue 13; issue 9 rule 4).
  store.subscribe('budget-pause', message => { app.cloud.budget.pauseFromFleet(Number(message)) })
  app.decorate('jobs', new Jobs(app.cloud, app.cache, config, app.promptIds, store))
  app.decorate('submissions', new Submissions(store, config.cloudTimeoutMs))
  app.decorate<SettingsStore>('settings', !store.durable ? new MemorySettingsStore() : new StoredSettings(store))
  metrics.watchStore(store)
  app.decorate('cloudCheck', new CloudCheck(app.cloud))
  if (options.startupCheck === true) {
    app.addHook('onListen', async () => {
      // Not awaited: a slow or failing cloud never holds up or stops the server; /readyz reports the verdict.
      void quickCheck(app.cloud).then(check => {
        app.cloudCheck.startup = check
        if (check.ok) app.log.info({ cloudCheck: { ok: true, latencyMs: check.latencyMs } }, `Comfy Cloud check passed: ${check.verdict}`)
        else app.log.warn({ cloudCheck: { ok: false, error: check.error?.type } }, `Comfy Cloud check failed: ${check.verdict}`)
      })
    })
  }
  metrics.watchCache(app.cache)
  metrics.watchJobs(app.jobs)
  app.addHook('onRequest', (request, _reply, done) => { metrics.track(request, done) })
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched'
    metrics.requests.observe({ method: request.method, route, status: String(reply.statusCode) }, reply.elapsedTime / 1000)
    metrics.answered(request, route)
  })
  if (config.proxyAuthToken !== '') requireToken(app, config.proxyAuthToken)
  if (config.corsOrigin !== '') {
    const allows = corsOriginAllows(config.corsOrigin)
    void app.register(cors, { origin: (origin, callback) => { callback(null, origin !== undefined && allows(origin)) }, credentials: false })
  }
  app.addHook('onClose', async () => {
    await app.cloud.close()
    await store.close()
  })
  // close() waits for open connections: once closing, every answer ends its keep-alive connection, or an
  // idle one would hold shutdown up for the keep-alive timeout, longer than SHUTDOWN_TIMEOUT_MS.
  let closing = false
  app.addHook('preClose', async () => {
    closing = true
    app.server.closeIdleConnections()
  })
  app.addHook('onSend', async (_request, reply) => {
    if (closing) reply.header('connection', 'close')
  })

  app.setErrorHandler((error: FastifyError | ProxyError, request, reply) => {
    let failure: ProxyError
    if (error instanceof ProxyError) {
      failure = error
    } else if (typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500) {
      failure = new ProxyError(error.statusCode, CLIENT_ERROR_TYPES[error.statusCode] ?? 'bad_request', error.message)
    } else {
      request.log.error({ err: error }, 'unexpected error')
      failure = new ProxyError(500, 'internal_error', 'The proxy failed to handle this request')
    }
    if (failure.statusCode >= 500) request.log.warn({ error: failure.type, details: failure.details }, failure.message)
    const body = request.routeOptions.config?.promptEnvelope === true
      ? { error: failure.toLocal(), node_errors: {} }
      : { error: failure.toLocal() }
    void reply.code(failure.statusCode).headers(failure.headers).send(body)
  })

  // Unknown routes answer exactly like local (issue 15 rule 3): clients that parse a JSON 404 misread it.
  app.setNotFoundHandler(async (_request, reply) => await sendLocalNotFound(reply))

  // Local ComfyUI (aiohttp) accepts client frames up to 4 MiB (its max_msg_size); a larger one is a 1009 close.
  void app.register(websocket, { options: { maxPayload: 4 * 1024 * 1024 } })
  // Open WebSockets would keep close() waiting: tell them the server is going away (1001).
  app.addHook('preClose', async () => {
    for (const client of app.websocketServer?.clients ?? []) {
      // A socket paused for backpressure must read again to see the client's answer to the close.
      client.resume()
      client.close(1001, 'Server shutting down')
    }
  })
  void app.register(healthRoutes)
  void app.register(translatedRoutes)
  void app.register(logRoutes, { ring: logRing })
  void app.register(frontendFiles)
  void app.register(statusRoutes)
  void app.register(passthroughRoutes)
  return app
}
