/**
 * Accounts, jobs and the cloud-shaped views of a job (list entry, detail, history_v2, queue tuple).
 * Every API key is its own account. Timestamps are integer milliseconds everywhere: the published spec says
 * seconds for `create_time`/`update_time`, the deployed cloud sends milliseconds (cloud-api-notes §1.7).
 */
import { randomUUID } from 'node:crypto'
import { outputNodes, type ApiPrompt } from './nodes.js'

export type JobStatus = 'pending' | 'in_progress' | 'completed' | 'failed' | 'cancelled'
export const JOB_STATUSES: readonly JobStatus[] = ['pending', 'in_progress', 'completed', 'failed', 'cancelled']
export const TERMINAL: ReadonlySet<JobStatus> = new Set(['completed', 'failed', 'cancelled'])

export interface FileItem { filename: string, subfolder: string, type: string }
export type NodeOutput = Record<string, unknown[]>
/** One output item plus the node it came from (cloud-api-notes §3.4). */
export interface PreviewOutput { filename?: string, subfolder?: string, type?: string, nodeId: string, mediaType: string, [extra: string]: unknown }
export type StatusMessage = [string, Record<string, unknown>]
/** ComfyUI's status dict (status_str is 'success' or 'error' for jobs the simulator runs; seeded jobs may carry anything). */
export interface ExecutionStatus { status_str: string, completed?: boolean, messages: StatusMessage[], [extra: string]: unknown }
export interface ExecutionMeta { node_id: string, display_node: string, parent_node: string | null, real_node_id: string, [extra: string]: unknown }
export interface ExecutionErrorInfo {
  node_id: string | null
  node_type: string | null
  exception_message: string
  exception_type: string
  traceback: string[]
  current_inputs: Record<string, unknown>
  current_outputs: Record<string, unknown> | unknown[]
  [key: string]: unknown
}

/** The full job as `GET /api/jobs/{id}` describes it (JobDetailResponse). */
export interface JobDetail {
  id: string
  status: JobStatus
  create_time: number
  update_time: number
  execution_start_time?: number
  execution_end_time?: number
  outputs_count?: number
  preview_output?: PreviewOutput
  outputs?: Record<string, NodeOutput>
  execution_status?: ExecutionStatus
  execution_meta?: Record<string, ExecutionMeta>
  execution_error?: ExecutionErrorInfo
  queue_reason?: 'concurrency_limit' | 'capacity'
  queue_position?: number
  /** The cloud sends the container {prompt, extra_data}, not a UI workflow (cloud-api-notes §3.5). */
  workflow?: { prompt?: Record<string, unknown>, extra_data?: Record<string, unknown> }
  workflow_id?: string
}

export interface JobRecord {
  detail: JobDetail
  /** insertion order, to break create_time ties */
  seq: number
  /** the per-account submission counter answered as `number` */
  number: number
  outputsToExecute: string[]
  /** seeded jobs are never run by the executor and hold no concurrency slot */
  inert: boolean
}

export class Account {
  readonly jobs = new Map<string, JobRecord>()
  counter = 0
  constructor (readonly key: string) {}

  /** all jobs, oldest first */
  list (): JobRecord[] {
    return [...this.jobs.values()].sort((a, b) => a.detail.create_time - b.detail.create_time || a.seq - b.seq)
  }

  byStatus (status: JobStatus): JobRecord[] {
    return this.list().filter(job => job.detail.status === status)
  }

  /** pending + running: what `queue_remaining` counts */
  remaining (): number {
    let n = 0
    for (const job of this.jobs.values()) if (!TERMINAL.has(job.detail.status)) n++
    return n
  }
}

let seq = 0

export class Store {
  readonly accounts = new Map<string, Account>()

  constructor (keys: string[]) {
    for (const key of keys) this.accounts.set(key, new Account(key))
  }

  account (key: string): Account {
    const account = this.accounts.get(key)
    if (account === undefined) throw new Error(`unknown simulator API key ${key.slice(0, 12)}…`)
    return account
  }

  add (account: Account, detail: JobDetail, outputsToExecute: string[], inert: boolean): JobRecord {
    const record: JobRecord = { detail, seq: ++seq, number: ++account.counter, outputsToExecute, inert }
    account.jobs.set(detail.id, record)
    return record
  }

  /** Inserts a job in any state (SimulatorControl.seedJob). */
  seed (account: Account, job: Partial<JobDetail> & { status: JobStatus }): JobRecord {
    const now = Date.now()
    const detail = structuredClone({ ...job, id: job.id ?? randomUUID(), create_time: job.create_time ?? now, update_time: job.update_time ?? job.create_time ?? now }) as JobDetail
    const outputs = detail.workflow?.prompt !== undefined ? outputNodes(promptOf(detail)) : Object.keys(detail.outputs ?? {})
    return this.add(account, detail, outputs, true)
  }

  reset (): void {
    for (const account of this.accounts.values()) {
      account.jobs.clear()
      account.counter = 0
    }
  }
}

/** The API graph a job runs (an empty graph when it has none). */
export function promptOf (detail: JobDetail): ApiPrompt {
  return (detail.workflow?.prompt ?? {}) as ApiPrompt
}

// ---------------------------------------------------------------------------------------------
// Views

const SENSITIVE = ['api_key_comfy_org', 'auth_token_comfy_org']

/** Job detail returns the partner-node credentials as the literal "[REDACTED]" (cloud-api-notes §1.2, §3.5). */
function redacted (extraData: Record<string, unknown>): Record<string, unknown> {
  const copy = structuredClone(extraData)
  for (const key of SENSITIVE) if (key in copy) copy[key] = '[REDACTED]'
  return copy
}

/** History records drop the credentials entirely, as local history does (contract §2.2). */
function withoutSecrets (extraData: Record<string, unknown>): Record<string, unknown> {
  const copy = structuredClone(extraData)
  for (const key of SENSITIVE) delete copy[key]
  return copy
}

function queuePosition (account: Account, job: JobRecord): number {
  return account.byStatus('pending').findIndex(other => other.detail.id === job.detail.id) + 1
}

/** GET /api/jobs/{id} */
export function detailView (account: Account, job: JobRecord): JobDetail {
  const d = job.detail
  const view: JobDetail = { id: d.id, status: d.status, create_time: d.create_time, update_time: d.update_time }
  if (d.status === 'pending') {
    // Detail-only fields from the newer cloud spec (cloud-api-notes §1.6): why the job waits and where it stands.
    view.queue_reason = d.queue_reason ?? 'concurrency_limit'
    view.queue_position = d.queue_position ?? queuePosition(account, job)
  }
  const { id, status, create_time, update_time, queue_reason, queue_position, workflow, workflow_id, ...rest } = structuredClone(d)
  Object.assign(view, rest)
  if (workflow !== undefined) view.workflow = { prompt: workflow.prompt ?? {}, extra_data: redacted(workflow.extra_data ?? {}) }
  if (workflow_id !== undefined) view.workflow_id = workflow_id
  return view
}

/** A GET /api/jobs entry: the compact JobEntry, without outputs, workflow or execution_status. */
export function entryView (job: JobRecord): Record<string, unknown> {
  const d = job.detail
  const entry: Record<string, unknown> = { id: d.id, status: d.status, create_time: d.create_time }
  for (const key of ['execution_start_time', 'execution_end_time', 'outputs_count', 'preview_output', 'execution_error', 'workflow_id'] as const) {
    if (d[key] !== undefined) entry[key] = structuredClone(d[key])
  }
  return entry
}

/** Cloud history records exist once execution has started (cloud-api-notes §2.4). */
export function hasStarted (job: JobRecord): boolean {
  return job.detail.execution_start_time !== undefined
}

/**
 * `prompt.priority` is documented as an execution priority but the cloud's own frontend fixtures show 0 for
 * every item (cloud-api-notes §4.2), so the simulator sends 0 and nobody can mistake it for an order.
 */
const PRIORITY = 0

/** A GET /api/history_v2 entry: the UI workflow is removed from extra_pnginfo (spec HistoryEntry). */
export function historyEntryView (job: JobRecord): Record<string, unknown> {
  const d = job.detail
  const extraData = withoutSecrets(d.workflow?.extra_data ?? {})
  const pngInfo = extraData.extra_pnginfo
  if (typeof pngInfo === 'object' && pngInfo !== null) delete (pngInfo as Record<string, unknown>).workflow
  const entry: Record<string, unknown> = { prompt_id: d.id, create_time: d.create_time }
  if (d.workflow_id !== undefined) entry.workflow_id = d.workflow_id
  entry.prompt = { priority: PRIORITY, prompt_id: d.id, extra_data: extraData }
  Object.assign(entry, historyBody(job))
  return entry
}

/**
 * GET /api/history_v2/{id}: `{id: {prompt, outputs, status, meta}}`. Newer records no longer persist
 * `extra_pnginfo` at all (cloud-api-notes §2.4), so it is dropped here.
 */
export function historyDetailView (job: JobRecord): Record<string, unknown> {
  const d = job.detail
  const extraData = withoutSecrets(d.workflow?.extra_data ?? {})
  delete extraData.extra_pnginfo
  return {
    [d.id]: {
      prompt: { priority: PRIORITY, prompt_id: d.id, prompt: structuredClone(d.workflow?.prompt ?? {}), extra_data: extraData, outputs_to_execute: [...job.outputsToExecute] },
      ...historyBody(job)
    }
  }
}

/** outputs/status/meta; a running job has no status yet and only the outputs written so far. */
function historyBody (job: JobRecord): Record<string, unknown> {
  const d = job.detail
  const body: Record<string, unknown> = { outputs: structuredClone(d.outputs ?? {}) }
  if (d.execution_status !== undefined) body.status = structuredClone(d.execution_status)
  body.meta = structuredClone(d.execution_meta ?? {})
  return body
}

/** The cloud QueueItem: [position (1-based), prompt_id, API graph, output node ids, {create_time}] (cloud-api-notes §2.9). */
export function queueTuple (position: number, job: JobRecord): unknown[] {
  return [position, job.detail.id, structuredClone(job.detail.workflow?.prompt ?? {}), [...job.outputsToExecute], { create_time: job.detail.create_time }]
}
