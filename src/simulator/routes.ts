/**
 * The Comfy Cloud job routes: prompt submission, jobs, history_v2, queue, interrupt, cancel, node info,
 * features and system stats. Shapes follow the published spec as corrected by cloud-api-notes §1–§3.
 */
import { randomUUID } from 'node:crypto'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { badRequest, HttpError, isCanonicalUuid, jobIdParam, notFound } from './errors.js'
import type { Executor } from './executor.js'
import type { Catalog } from './catalog.js'
import { isPlainObject, validatePrompt, type ApiPrompt, type PromptErrorDetail } from './nodes.js'
import type { FileStore } from './storage.js'
import {
  detailView, entryView, hasStarted, historyDetailView, historyEntryView, JOB_STATUSES, queueTuple, TERMINAL,
  type Account, type JobRecord, type JobStatus, type Store
} from './store.js'
import { FEATURE_FLAGS } from './ws.js'
import { cursorStart, detailWithNulls, encodeCursor, entryWithNulls, FOREIGN_JOB_BODY, withUserModels, type SimulatorProfile } from './profile.js'

/** Pending jobs Comfy Cloud lets an account hold before `POST /api/prompt` answers 429 QUEUE_LIMIT (drift §1.4). */
export const QUEUE_LIMIT = 100
/** seconds, sent as Retry-After with QUEUE_LIMIT */
export const QUEUE_RETRY_AFTER = 5

export interface RouteDeps {
  store: Store
  executor: Executor
  accountOf: (request: FastifyRequest) => Account
  profile: SimulatorProfile
  catalog: Catalog
  files: FileStore
  /** pending jobs per account before 429 QUEUE_LIMIT; 0: no cap */
  queueLimit: number
}

type Query = Record<string, string | undefined>

function intParam (query: Query, name: string, fallback: number | undefined, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  const raw = query[name]
  if (raw === undefined) return fallback
  const value = Number(raw)
  if (!/^-?\d+$/.test(raw) || value < min || value > max) {
    throw badRequest(`Invalid ${name} '${raw}': must be an integer${max === Number.MAX_SAFE_INTEGER ? ` >= ${min}` : ` between ${min} and ${max}`}`)
  }
  return value
}

function enumParam<T extends string> (query: Query, name: string, allowed: readonly T[], fallback: T): T {
  const raw = query[name]
  if (raw === undefined) return fallback
  if (!allowed.includes(raw as T)) throw badRequest(`Invalid ${name} '${raw}': must be one of ${allowed.join(', ')}`)
  return raw as T
}

function stringList (value: unknown, name: string): string[] | undefined {
  if (value === undefined) return undefined
  if (!Array.isArray(value) || !value.every(v => typeof v === 'string')) throw badRequest(`${name} must be a list of strings`)
  return value
}

/** Bodies with `additionalProperties: false` in the spec (HistoryManageRequest, QueueManageRequest). */
function manageBody (body: unknown): { clear: boolean, delete: string[] } {
  const value = body ?? {}
  if (!isPlainObject(value)) throw badRequest('The body must be a JSON object')
  const extra = Object.keys(value).filter(key => key !== 'clear' && key !== 'delete')
  if (extra.length > 0) throw badRequest(`Unknown properties: ${extra.join(', ')}`)
  if (value.clear !== undefined && typeof value.clear !== 'boolean') throw badRequest('clear must be a boolean')
  return { clear: value.clear === true, delete: stringList(value.delete, 'delete') ?? [] }
}

/** The local/cloud prompt error envelope (cloud-api-notes §1.4). */
function promptError (reply: FastifyReply, status: number, error: PromptErrorDetail | { type: string, message: string }, nodeErrors?: Record<string, unknown>): FastifyReply {
  return reply.code(status).send(nodeErrors === undefined ? { error } : { error, node_errors: nodeErrors })
}

const invalidPrompt = (message: string): PromptErrorDetail => ({ type: 'invalid_prompt', message, details: '', extra_info: {} })

function findJob (account: Account, rawId: string): JobRecord {
  // Another account's job answers 404 like an unknown one (the spec allows 403); this leaks nothing about
  // which ids exist, and the cancel routes document 404 for "missing or cross-user" (cloud-api-notes §2.7).
  const job = account.jobs.get(jobIdParam(rawId))
  if (job === undefined) throw notFound(`Job ${rawId} not found`)
  return job
}

function durationOf (job: JobRecord): number | undefined {
  const { execution_start_time: start, execution_end_time: end } = job.detail
  return start !== undefined && end !== undefined ? end - start : undefined
}

const VIDEO_KEYS = ['video', 'videos', 'gifs']
const VIDEO_FILE = /\.(mp4|webm|mov|mkv)$/i

/** What an output item is: local's video savers list their file under `images`, so the file name decides there. */
function mediaOf (key: string, item: unknown): string | undefined {
  if (key === 'audio') return 'audio'
  if (VIDEO_KEYS.includes(key)) return 'video'
  if (key !== 'images') return undefined
  const name = (item as { filename?: unknown } | null)?.filename
  return typeof name === 'string' && VIDEO_FILE.test(name) ? 'video' : 'image'
}

function hasOutputType (job: JobRecord, type: string): boolean {
  return Object.values(job.detail.outputs ?? {}).some(output =>
    Object.entries(output).some(([key, items]) => Array.isArray(items) && items.some(item => mediaOf(key, item) === type)))
}

export function registerRoutes (app: FastifyInstance, { store, executor, accountOf, profile, catalog, files, queueLimit }: RouteDeps): void {
  const current = profile === 'current'
  const allIds = (id: string): boolean => [...store.accounts.values()].some(account => account.jobs.has(id))
  /** The current cloud answers another account's job with a plain 403; the spec profile answers 404 like an unknown id. */
  const jobOf = (account: Account, rawId: string): JobRecord => {
    if (current && !account.jobs.has(rawId.toLowerCase()) && allIds(rawId.toLowerCase())) {
      throw new HttpError(403, FOREIGN_JOB_BODY.code, FOREIGN_JOB_BODY.message)
    }
    return findJob(account, rawId)
  }

  // Legacy routes the cloud keeps only as 404 stubs naming their replacement (cloud-api-notes §1.1).
  const stubs: Array<[string, string]> = [
    ['/api/history', 'use /api/history_v2 instead'],
    ['/api/history/:prompt_id', 'use /api/jobs/{prompt_id} instead'],
    ['/api/job/:job_id', 'use /api/jobs/{job_id} instead'],
    ['/api/job/:job_id/outputs', 'use /api/jobs/{job_id} instead'],
    ['/api/prompt/:prompt_id', 'use /api/jobs/{prompt_id} instead'],
    ['/api/object_info/:node_class', 'per-class node info is not available; use /api/object_info']
  ]
  for (const [url, hint] of stubs) {
    app.get(url, async () => { throw notFound(`Not found: ${hint}`) })
  }

  // LoadImage lists the account's uploads, as local lists its input folder. include_user_models adds the
  // caller's own imported models (drift §2.11); the published spec has no such parameter.
  app.get('/api/object_info', async request => {
    const nodes = catalog.objectInfo(files.uploads(accountOf(request).key))
    return current && (request.query as Query).include_user_models === 'true' ? withUserModels(nodes) : nodes
  })

  app.get('/api/features', async () => FEATURE_FLAGS)

  app.get('/api/system_stats', async () => ({
    system: {
      os: 'posix',
      ram_total: 270_000_000_000,
      ram_free: 251_000_000_000,
      comfyui_version: '0.3.75',
      required_frontend_version: '1.30.6',
      python_version: '3.12.11 (main, Jun 10 2025, 09:42:01) [GCC 12.2.0]',
      pytorch_version: '2.8.0+cu128',
      embedded_python: false,
      argv: ['main.py', '--listen', '0.0.0.0', '--port', '8188'],
      comfyui_frontend_version: '1.30.6',
      workflow_templates_version: '0.2.11',
      cloud_version: 'simulator'
    },
    devices: [{
      name: 'cuda:0 NVIDIA L40S : cudaMallocAsync',
      type: 'cuda',
      index: 0,
      vram_total: 47_697_362_944,
      vram_free: 46_984_134_656,
      torch_vram_total: 0,
      torch_vram_free: 0
    }]
  }))

  app.get('/api/prompt', async request => ({ exec_info: { queue_remaining: accountOf(request).remaining() } }))

  app.post('/api/prompt', async (request, reply) => {
    const account = accountOf(request)
    const body = request.body
    if (!isPlainObject(body) || !('prompt' in body)) {
      return promptError(reply, 400, { type: 'no_prompt', message: 'No prompt provided', details: 'No prompt provided', extra_info: {} }, {})
    }
    if (!isPlainObject(body.prompt)) return promptError(reply, 400, invalidPrompt('prompt must be an object of API-format nodes'), {})
    if (body.extra_data !== undefined && !isPlainObject(body.extra_data)) return promptError(reply, 400, invalidPrompt('extra_data must be an object'), {})
    const targets = body.partial_execution_targets
    if (targets !== undefined && targets !== null && (!Array.isArray(targets) || !targets.every(t => typeof t === 'string'))) {
      return promptError(reply, 400, invalidPrompt('partial_execution_targets must be a list of node ids'), {})
    }
    const prompt = structuredClone(body.prompt) as ApiPrompt
    const result = validatePrompt(prompt, { catalog, fileExists: name => files.upload(account.key, name) !== undefined }, Array.isArray(targets) ? targets as string[] : undefined)
    if (!result.ok) return promptError(reply, 400, result.error, result.nodeErrors)
    if (queueLimit > 0 && account.byStatus('pending').length >= queueLimit) {
      reply.header('retry-after', String(QUEUE_RETRY_AFTER))
      return promptError(reply, 429, { type: 'QUEUE_LIMIT', message: `The job queue is full (${queueLimit} pending jobs); retry later` })
    }
    // A client-chosen id is kept when it is a canonical UUID nobody used yet (newer local ComfyUI accepts one,
    // contract §5.2); whether the cloud honours it is unknown (cloud-api-notes §5 question 5), so anything else gets a fresh id.
    const id = isCanonicalUuid(body.prompt_id) && !allIds(body.prompt_id) ? body.prompt_id : randomUUID()
    const extraData = structuredClone(isPlainObject(body.extra_data) ? body.extra_data : {})
    if ('client_id' in body) extraData.client_id = body.client_id
    const pngWorkflow = isPlainObject(extraData.extra_pnginfo) && isPlainObject(extraData.extra_pnginfo.workflow) ? extraData.extra_pnginfo.workflow : {}
    const workflowId = typeof body.workflow_id === 'string' ? body.workflow_id : typeof pngWorkflow.id === 'string' ? pngWorkflow.id : undefined
    const now = Date.now()
    const job = store.add(account, {
      id,
      status: 'pending',
      create_time: now,
      update_time: now,
      workflow: { prompt, extra_data: extraData },
      ...(workflowId === undefined ? {} : { workflow_id: workflowId })
    }, result.outputs, false)
    executor.submitted(account)
    return { prompt_id: id, number: job.number, node_errors: result.nodeErrors }
  })

  app.get('/api/jobs', async request => {
    const query = request.query as Query
    let statuses: JobStatus[] | undefined
    if (query.status !== undefined) {
      statuses = query.status.split(',').map(s => s.trim()).filter(s => s !== '') as JobStatus[]
      const bad = statuses.filter(s => !JOB_STATUSES.includes(s))
      if (bad.length > 0 || statuses.length === 0) throw badRequest(`Invalid status '${query.status}': use a comma list of ${JOB_STATUSES.join(', ')}`)
    }
    const sortBy = enumParam(query, 'sort_by', ['create_time', 'execution_time'] as const, 'create_time')
    const sortOrder = enumParam(query, 'sort_order', ['asc', 'desc'] as const, 'desc')
    const outputType = query.output_type === undefined ? undefined : enumParam(query, 'output_type', ['image', 'video', 'audio'] as const, 'image')
    const offset = intParam(query, 'offset', 0, 0)!
    const limit = intParam(query, 'limit', 100, 1, 1000)!
    const sign = sortOrder === 'asc' ? 1 : -1
    const byCreate = (a: JobRecord, b: JobRecord): number => sign * (a.detail.create_time - b.detail.create_time || a.seq - b.seq)
    const jobs = [...accountOf(request).jobs.values()]
      .filter(job => statuses === undefined || statuses.includes(job.detail.status))
      .filter(job => query.workflow_id === undefined || job.detail.workflow_id === query.workflow_id)
      .filter(job => outputType === undefined || (job.detail.status === 'completed' && hasOutputType(job, outputType)))
      .sort((a, b) => {
        if (sortBy === 'create_time') return byCreate(a, b)
        // execution_time is the run's duration; jobs that never ran sort last either way.
        const da = durationOf(a)
        const db = durationOf(b)
        if (da === undefined || db === undefined) return (da === undefined ? 1 : 0) - (db === undefined ? 1 : 0) || byCreate(a, b)
        return sign * (da - db) || byCreate(a, b)
      })
    if (current && sortBy === 'create_time') {
      // Keyset paging: `offset` is ignored and `total` is 0; `next_cursor` is absent on the last page (drift §2.1).
      const start = query.after === undefined ? 0 : cursorStart(jobs, query.after, sortOrder)
      const page = jobs.slice(start, start + limit)
      const hasMore = start + page.length < jobs.length
      const pagination = { offset: 0, limit, total: 0, has_more: hasMore, ...(hasMore ? { next_cursor: encodeCursor(page[page.length - 1], sortOrder) } : {}) }
      return { jobs: page.map(job => entryWithNulls(entryView(job))), pagination }
    }
    const page = jobs.slice(offset, offset + limit)
    const entries = page.map(entryView)
    return { jobs: current ? entries.map(entryWithNulls) : entries, pagination: { offset, limit, total: jobs.length, has_more: offset + page.length < jobs.length } }
  })

  app.get('/api/jobs/:job_id', async request => {
    const account = accountOf(request)
    const detail = detailView(account, jobOf(account, (request.params as { job_id: string }).job_id))
    return current ? detailWithNulls(detail) : detail
  })

  app.post('/api/jobs/:job_id/cancel', async request => {
    const account = accountOf(request)
    const job = jobOf(account, (request.params as { job_id: string }).job_id)
    return { cancelled: executor.cancel(account, job) }
  })

  // Batch cancel from the newer cloud spec: all-or-nothing, one unknown id is a 404 (cloud-api-notes §2.7).
  app.post('/api/jobs/cancel', async request => {
    const account = accountOf(request)
    const body = request.body
    const ids = isPlainObject(body) ? stringList(body.job_ids, 'job_ids') : undefined
    if (ids === undefined || ids.length < 1 || ids.length > 100) throw badRequest('job_ids must list 1 to 100 job ids')
    const jobs = ids.map(id => findJob(account, id))
    return { cancelled: jobs.filter(job => executor.cancel(account, job)).map(job => job.detail.id) }
  })

  app.get('/api/history_v2', async request => {
    const query = request.query as Query
    const maxItems = intParam(query, 'max_items', undefined, 0)
    const offset = intParam(query, 'offset', 0, 0)!
    const started = accountOf(request).list().filter(hasStarted).reverse()
    const page = started.slice(offset, maxItems === undefined ? undefined : offset + maxItems)
    return { history: page.map(historyEntryView) }
  })

  app.get('/api/history_v2/:prompt_id', async request => {
    const id = (request.params as { prompt_id: string }).prompt_id.toLowerCase()
    const job = accountOf(request).jobs.get(id)
    // The history record is created when execution starts (cloud-api-notes §2.4).
    if (job === undefined || !hasStarted(job)) throw notFound('Prompt not found')
    return historyDetailView(job)
  })

  /**
   * Deletes finished jobs from history; they then 404 everywhere. Running and pending jobs are left alone.
   * Whether the legacy delete removes the cloud's assets is unknown (cloud-api-notes §2.5); the simulator
   * releases the files only deleted jobs named, so that its memory stays bounded.
   */
  app.post('/api/history', async (request, reply) => {
    const account = accountOf(request)
    const body = manageBody(request.body)
    const doomed = body.clear ? [...account.jobs.keys()] : body.delete.map(id => id.toLowerCase())
    for (const id of doomed) {
      const job = account.jobs.get(id)
      if (job !== undefined && TERMINAL.has(job.detail.status)) executor.forget(account, id)
    }
    return reply.code(200).send()
  })

  app.get('/api/queue', async request => {
    const account = accountOf(request)
    const running = account.byStatus('in_progress')
    const pending = account.byStatus('pending')
    return {
      queue_running: running.map((job, i) => queueTuple(i + 1, job)),
      queue_pending: pending.map((job, i) => queueTuple(running.length + i + 1, job))
    }
  })

  /**
   * `delete` cancels the listed jobs whether pending or running and `clear` cancels every pending job. This
   * follows the newer cloud-inclusive spec (UNI manageQueue), which the notes rank above the published spec's
   * "pending only" wording (cloud-api-notes §0 precedence, §2.9).
   */
  app.post('/api/queue', async request => {
    const account = accountOf(request)
    const body = manageBody(request.body)
    const deleted: string[] = []
    for (const raw of body.delete) {
      const job = account.jobs.get(raw.toLowerCase())
      if (job !== undefined && executor.cancel(account, job)) deleted.push(job.detail.id)
    }
    if (body.clear) for (const job of account.byStatus('pending')) executor.cancel(account, job)
    return { deleted, cleared: body.clear }
  })

  /**
   * With `{prompt_id}` cancels that job (404 when unknown); without, cancels the oldest running job, else the
   * oldest pending one. This is the newer cloud behaviour (cloud-api-notes §2.10), not the published
   * "all running jobs". Answers 200 with an empty body.
   */
  app.post('/api/interrupt', async (request, reply) => {
    const account = accountOf(request)
    const body = request.body ?? {}
    if (!isPlainObject(body)) throw badRequest('The body must be a JSON object')
    if (body.prompt_id !== undefined && body.prompt_id !== null) {
      if (typeof body.prompt_id !== 'string') throw badRequest('prompt_id must be a string')
      const job = account.jobs.get(body.prompt_id.toLowerCase())
      if (job === undefined) throw notFound(`Job ${body.prompt_id} not found`)
      executor.cancel(account, job)
    } else {
      const target = account.byStatus('in_progress')[0] ?? account.byStatus('pending')[0]
      if (target !== undefined) executor.cancel(account, target)
    }
    return reply.code(200).send()
  })
}
