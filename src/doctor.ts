/**
 * `comfy-compat-proxy doctor`: with the user's key, calls every cloud route the proxy uses, read-only
 * (one tiny job only with --submit), validates each answer against the proxy's schemas, opens the
 * WebSocket, and prints what works, what does not and how to fix it. The v1 Cloud API is deprecated
 * and "may change without notice" (drift §1.1): this is how a user learns that it did.
 */
import { randomUUID } from 'node:crypto'
import { pino } from 'pino'
import WebSocket from 'ws'
import type { FastifyBaseLogger } from 'fastify'
import { CloudClient, cloudPathSegment, type CloudResponse } from './cloud/client.js'
import { cloudValidator, describeSchemaError, type CloudSchemaName } from './cloud/schemas.js'
import { fieldDiff } from './cloud/check.js'
import { accountFix, accountRefusal } from './cloud/refusals.js'
import { ConfigError, loadConfig } from './config.js'
import { ProxyError } from './errors.js'

export interface DoctorOptions {
  cloudUrl: string
  apiKey: string
  timeoutMs: number
  /** ask /api/object_info for the account's own models, as the proxy will (OBJECT_INFO_USER_MODELS) */
  userModels: boolean
  /** /api/history_v2 is needed only with HISTORY_SOURCE=history_v2 */
  historyV2: boolean
  /** run one tiny job (the only thing doctor ever submits) */
  submit: boolean
  /** how long --submit waits for the job to finish */
  jobTimeoutMs?: number
}

export interface DoctorRow {
  route: string
  /** HTTP status, or what happened instead */
  status: string
  ms: number | undefined
  /** ok, fails, or - when there was nothing to validate */
  schema: string
  unknown: string[]
  missing: string[]
  /** false for routes only some set-ups need: their failure is reported but does not fail the check */
  required: boolean
  /** what is wrong, and the fix, in words; undefined when the row is fine */
  problem?: string
  note?: string
}

export interface DoctorReport {
  rows: DoctorRow[]
  pagination: string
  account: string
  ok: boolean
}

const ALL_STATUSES = Array.from({ length: 500 }, (_, i) => i + 100).filter(status => status < 200 || status >= 300)
const UPGRADE_FIX = 'Comfy Cloud changed what it answers (the v1 API is deprecated and may change without notice): upgrade comfy-compat-proxy, and if the newest version fails too, report this table'
const FINISHED = 'completed,failed,cancelled'

const silent = pino({ level: 'silent' }) as unknown as FastifyBaseLogger

function isObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

export async function runDoctor (options: DoctorOptions): Promise<DoctorReport> {
  const cloud = new CloudClient({ baseUrl: options.cloudUrl, apiKey: options.apiKey, timeoutMs: options.timeoutMs, connections: 4, retries: 0, logger: silent })
  const rows: DoctorRow[] = []
  let accountCode: string | undefined

  /** One read: its status, time, schema verdict and field differences. Returns the body when it validated. */
  const check = async <T>(route: string, path: string, query: Record<string, string | number | undefined>, schema: CloudSchemaName | undefined,
    { required = true, expect = [200] }: { required?: boolean, expect?: number[] } = {}): Promise<{ row: DoctorRow, response?: CloudResponse<T> }> => {
    const row: DoctorRow = { route, status: '-', ms: undefined, schema: '-', unknown: [], missing: [], required }
    rows.push(row)
    const started = performance.now()
    let response: CloudResponse<T>
    try {
      response = await cloud.call<T>({ method: 'GET', path, query, accept: ALL_STATUSES })
    } catch (err) {
      row.ms = Math.round(performance.now() - started)
      const failure = err instanceof ProxyError ? err : new ProxyError(502, 'error', String(err))
      if (failure.type === 'cloud_account_refused') {
        accountCode = String(failure.extraInfo.cloud_code)
        row.status = '403'
        row.problem = `the account is refused (${accountCode}): see Account`
      } else {
        row.status = failure.type
        row.problem = failure.message
      }
      return { row }
    }
    row.ms = Math.round(performance.now() - started)
    row.status = String(response.status)
    if (!expect.includes(response.status)) {
      row.problem = response.status === 401
        ? 'Comfy Cloud refuses the key (401): check COMFY_CLOUD_API_KEY (or COMFY_CLOUD_API_KEY_FILE); keys start with comfyui-'
        : `Comfy Cloud answered ${response.status} where the proxy expects ${expect.join(' or ')}`
      return { row }
    }
    if (response.status !== 200 || schema === undefined) return { row, response }
    const validate = cloudValidator(schema)
    const diff = fieldDiff(schema, response.body)
    row.unknown = diff.unknown
    row.missing = diff.missing
    if (validate(response.body)) {
      row.schema = 'ok'
      return { row, response }
    }
    const { field, message } = describeSchemaError(validate.errors![0])
    row.schema = 'fails'
    row.problem = `answers a ${schema} the proxy cannot read (field ${field} ${message}). ${UPGRADE_FIX}`
    return { row }
  }

  try {
    await check('GET /api/prompt', '/api/prompt', {}, 'PromptInfo')
    const list = await check<{ jobs: Array<{ id: string, preview_output?: Record<string, unknown> }>, pagination: Record<string, unknown> }>(
      'GET /api/jobs', '/api/jobs', { status: FINISHED, sort_by: 'create_time', sort_order: 'desc', limit: 5 }, 'JobsListResponse')
    const jobs = list.response?.body.jobs ?? []
    let pagination = list.response === undefined ? 'unknown (the list failed)' : paginationOf(list.response.body.pagination, jobs.length)
    if (jobs.length >= 2) {
      const second = await check<{ jobs: Array<{ id: string }> }>('GET /api/jobs?offset=1', '/api/jobs',
        { status: FINISHED, sort_by: 'create_time', sort_order: 'desc', offset: 1, limit: 1 }, 'JobsListResponse', { required: false })
      const honoured = second.response?.body.jobs[0]?.id === jobs[1].id
      second.row.note = honoured ? 'offset honoured' : 'offset ignored'
      if (!honoured) pagination += '; offset is ignored (the proxy pages with the cursor)'
    }
    const newest = jobs[0]
    if (newest === undefined) {
      rows.push({ route: 'GET /api/jobs/{id}', status: '-', ms: undefined, schema: '-', unknown: [], missing: [], required: false, note: 'no finished job yet: run with --submit to check one' })
    } else {
      await check('GET /api/jobs/{id}', `/api/jobs/${cloudPathSegment(newest.id)}`, {}, 'JobDetailResponse')
      const file = newest.preview_output
      if (isObject(file) && typeof file.filename === 'string') {
        await check('GET /api/view', '/api/view', { filename: file.filename, subfolder: typeof file.subfolder === 'string' ? file.subfolder : '', type: typeof file.type === 'string' ? file.type : 'output' },
          undefined, { expect: [200, 301, 302, 303, 307, 308] })
      }
    }
    await check('GET /api/queue', '/api/queue', {}, 'QueueInfo')
    const objectInfo = await check<Record<string, { input?: { required?: Record<string, unknown[]> } }>>(
      `GET /api/object_info${options.userModels ? '?include_user_models=true' : ''}`, '/api/object_info',
      { include_user_models: options.userModels ? 'true' : undefined }, 'ObjectInfoResponse')
    await check('GET /api/history_v2', '/api/history_v2', { max_items: 1 }, 'HistoryResponse', { required: options.historyV2 })
    await check('GET /api/system_stats', '/api/system_stats', {}, 'SystemStatsResponse', { required: false })
    await check('GET /api/features', '/api/features', {}, 'FeaturesResponse', { required: false })
    rows.push(await checkWebSocket(options))
    if (rows.at(-1)?.status === '403' && accountCode === undefined) accountCode = rows.at(-1)?.note
    if (options.submit) rows.push(...await submitTinyJob(cloud, options, objectInfo.response?.body))

    const account = accountCode === undefined
      ? 'ok (no account-wide refusal)'
      : `refused with ${accountCode}: ${accountFix(accountCode) ?? 'see the message above'}`
    const ok = rows.every(row => row.problem === undefined || !row.required)
    return { rows, pagination, account, ok }
  } finally {
    await cloud.close()
  }
}

function paginationOf (pagination: Record<string, unknown>, count: number): string {
  const cursor = typeof pagination.next_cursor === 'string' && pagination.next_cursor !== ''
  const totalZero = pagination.total === 0 && count > 0
  if (cursor && totalZero) return 'cursor (next_cursor; total is 0, offset deprecated)'
  if (cursor) return 'cursor (next_cursor) and offset'
  if ('next_cursor' in pagination) return 'cursor (no further page) and offset'
  return 'offset only (offset, total, has_more)'
}

/** The WebSocket the proxy relays: opened with the key as ?token= (notes §1.3); the first frame must be a status message. */
async function checkWebSocket (options: DoctorOptions): Promise<DoctorRow> {
  const row: DoctorRow = { route: 'WS /ws', status: '-', ms: undefined, schema: '-', unknown: [], missing: [], required: true }
  const url = new URL('/ws', options.cloudUrl)
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:'
  url.searchParams.set('clientId', `doctor-${randomUUID()}`)
  url.searchParams.set('token', options.apiKey)
  const started = performance.now()
  await new Promise<void>(resolve => {
    const socket = new WebSocket(url, { handshakeTimeout: options.timeoutMs, perMessageDeflate: false })
    const timer = setTimeout(() => { row.status = 'timeout'; row.problem = `no message within ${options.timeoutMs} ms of opening the WebSocket`; socket.terminate(); resolve() }, options.timeoutMs)
    const done = (): void => { clearTimeout(timer); socket.terminate(); resolve() }
    socket.once('message', (data: Buffer, isBinary: boolean) => {
      row.ms = Math.round(performance.now() - started)
      row.status = '101'
      let frame: unknown
      try { frame = isBinary ? undefined : JSON.parse(data.toString()) } catch { frame = undefined }
      const validate = cloudValidator('WebSocketMessage')
      if (validate(frame) && (frame as { type: string }).type === 'status') row.schema = 'ok'
      else {
        row.schema = 'fails'
        row.problem = `the first WebSocket frame is not a status message. ${UPGRADE_FIX}`
      }
      done()
    })
    socket.once('unexpected-response', (_request, response) => {
      row.ms = Math.round(performance.now() - started)
      row.status = String(response.statusCode)
      const chunks: Buffer[] = []
      response.on('data', (chunk: Buffer) => chunks.push(chunk))
      response.once('end', () => {
        let body: unknown
        try { body = JSON.parse(Buffer.concat(chunks).toString()) } catch { body = undefined }
        const refusal = accountRefusal(response.statusCode ?? 0, body)
        row.note = refusal?.code
        row.problem = refusal !== undefined
          ? `the account is refused (${refusal.code}): see Account`
          : `Comfy Cloud refused the WebSocket (${response.statusCode ?? 'no status'})`
        done()
      })
    })
    socket.once('error', (err: Error) => {
      if (row.problem !== undefined || row.status !== '-') return
      row.status = 'error'
      row.problem = `the WebSocket failed: ${err.message.replaceAll(options.apiKey, '[REDACTED]')}`
      done()
    })
  })
  return row
}

/** --submit: one 64×64, one-step text-to-image job with the account's first checkpoint, watched until it ends. Nothing else is cancelled or changed. */
async function submitTinyJob (cloud: CloudClient, options: DoctorOptions, nodes: Record<string, { input?: { required?: Record<string, unknown[]> } }> | undefined): Promise<DoctorRow[]> {
  const row: DoctorRow = { route: 'POST /api/prompt (--submit)', status: '-', ms: undefined, schema: '-', unknown: [], missing: [], required: true }
  const checkpoints = nodes?.CheckpointLoaderSimple?.input?.required?.ckpt_name?.[0]
  const checkpoint = Array.isArray(checkpoints) && typeof checkpoints[0] === 'string' ? checkpoints[0] : undefined
  if (checkpoint === undefined) {
    row.problem = 'no checkpoint to run a job with: /api/object_info lists none for CheckpointLoaderSimple'
    return [row]
  }
  const started = performance.now()
  let response: CloudResponse<{ prompt_id?: string, error?: { type?: string, message?: string } }>
  try {
    response = await cloud.call({ method: 'POST', path: '/api/prompt', body: { prompt: tinyGraph(checkpoint), extra_data: {} }, accept: ALL_STATUSES })
  } catch (err) {
    row.status = err instanceof ProxyError ? err.type : 'error'
    row.problem = err instanceof Error ? err.message : String(err)
    return [row]
  }
  row.ms = Math.round(performance.now() - started)
  row.status = String(response.status)
  const validate = cloudValidator('PromptResponse')
  if (response.status !== 200 || !validate(response.body)) {
    const error = response.body?.error
    row.problem = `the job was not accepted: ${error?.type ?? response.status} ${error?.message ?? ''}`.trim()
    return [row]
  }
  row.schema = 'ok'
  const id = response.body.prompt_id as string
  const watched: DoctorRow = { route: 'job until finished', status: '-', ms: undefined, schema: '-', unknown: [], missing: [], required: true }
  const deadline = Date.now() + (options.jobTimeoutMs ?? 300_000)
  let polls = 0
  for (;;) {
    const detail = await cloud.call<{ status: string }>({ method: 'GET', path: `/api/jobs/${cloudPathSegment(id)}`, route: '/api/jobs/:id', schema: 'JobDetailResponse' })
    if (['completed', 'failed', 'cancelled'].includes(detail.body.status)) {
      watched.status = detail.body.status
      watched.ms = Math.round(performance.now() - started)
      watched.schema = 'ok'
      if (detail.body.status !== 'completed') watched.problem = `the test job ${id} ended ${detail.body.status}`
      break
    }
    if (Date.now() > deadline) {
      watched.status = detail.body.status
      watched.problem = `the test job ${id} did not finish within ${Math.round((options.jobTimeoutMs ?? 300_000) / 1000)} s (it is left as it is)`
      break
    }
    await new Promise(resolve => setTimeout(resolve, Math.min(2000, 100 * 2 ** polls++)))
  }
  watched.note = id
  return [row, watched]
}

function tinyGraph (checkpoint: string): Record<string, unknown> {
  return {
    1: { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: checkpoint } },
    2: { class_type: 'CLIPTextEncode', inputs: { text: 'comfy-compat-proxy doctor', clip: ['1', 1] } },
    3: { class_type: 'EmptyLatentImage', inputs: { width: 64, height: 64, batch_size: 1 } },
    4: { class_type: 'KSampler', inputs: { seed: 1, steps: 1, cfg: 1, sampler_name: 'euler', scheduler: 'normal', denoise: 1, model: ['1', 0], positive: ['2', 0], negative: ['2', 0], latent_image: ['3', 0] } },
    5: { class_type: 'VAEDecode', inputs: { samples: ['4', 0], vae: ['1', 2] } },
    6: { class_type: 'SaveImage', inputs: { filename_prefix: 'comfy-compat-proxy-doctor', images: ['5', 0] } }
  }
}

function fieldList (row: DoctorRow): string {
  const parts = [...row.missing.map(field => `-${field}`), ...row.unknown.map(field => `+${field}`)]
  if (parts.length === 0) return row.note ?? ''
  const shown = parts.slice(0, 6).join(' ')
  return parts.length > 6 ? `${shown} (+${parts.length - 6} more)` : shown
}

/** The report as a table and the verdict, with the fixes in words. */
export function formatReport (report: DoctorReport): string {
  const header = ['Route', 'Status', 'ms', 'Schema', 'Fields (-missing +unknown) / note']
  const lines = report.rows.map(row => [`${row.route}${row.required ? '' : ' (optional)'}`, row.status, row.ms === undefined ? '-' : String(row.ms), row.schema, fieldList(row)])
  const widths = header.map((title, i) => Math.max(title.length, ...lines.map(line => line[i].length)))
  const render = (cells: string[]): string => cells.map((cell, i) => cell.padEnd(widths[i])).join('  ').trimEnd()
  const out = [render(header), render(widths.map(width => '-'.repeat(width))), ...lines.map(render), '']
  out.push(`Pagination: ${report.pagination}`)
  out.push(`Account:    ${report.account}`)
  const problems = report.rows.filter(row => row.problem !== undefined)
  for (const row of problems) out.push(`${row.required ? 'PROBLEM' : 'note'}: ${row.route}: ${row.problem}`)
  out.push(report.ok
    ? 'Verdict: OK: everything the proxy needs from Comfy Cloud works.'
    : 'Verdict: NOT OK: the proxy cannot work fully with this account and cloud; fix the problems above.')
  return `${out.join('\n')}\n`
}

const NO_KEY = `No Comfy Cloud API key is set, so there is nothing to check.
Create a key on your Comfy account's API keys page, then run:
  COMFY_CLOUD_API_KEY=comfyui-... comfy-compat-proxy doctor
or keep it in a file:
  COMFY_CLOUD_API_KEY_FILE=/path/to/key comfy-compat-proxy doctor
(COMFY_CLOUD_URL chooses another cloud origin; default https://cloud.comfy.org.)
`

/** The CLI command: prints the report and answers the exit code (0 when everything the proxy needs works). */
export async function doctorCommand (env: NodeJS.ProcessEnv, args: { submit: boolean, json: boolean }, write: (text: string) => void): Promise<number> {
  let config
  try {
    config = loadConfig(env)
  } catch (err) {
    if (err instanceof ConfigError) {
      write(`${err.message}\n`)
      return 1
    }
    throw err
  }
  if (config.apiKey === '') {
    write(NO_KEY)
    return 1
  }
  write(`Checking ${config.cloudUrl} with the configured key (read-only${args.submit ? ', plus one tiny job' : ''})...\n\n`)
  const report = await runDoctor({
    cloudUrl: config.cloudUrl,
    apiKey: config.apiKey,
    timeoutMs: Math.min(config.cloudTimeoutMs, 15_000),
    userModels: config.objectInfoUserModels,
    historyV2: config.historySource === 'history_v2',
    submit: args.submit
  })
  write(args.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report))
  return report.ok ? 0 : 1
}
