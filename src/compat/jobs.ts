/**
 * Local ComfyUI's own /api/jobs (observed finding 23, contract §8) from the cloud's: the query
 * parsed and refused as local does, and each cloud job in local's shape and key order, with
 * `priority` (the prompt's number), `outputs_count` on every job and local's `execution_error`
 * fields. No I/O here.
 */
import type { ExecutionError, JobDetail, JobEntry, Json } from '../cloud/types.js'
import { historyEntryFromJob, toMs, withIdentity, type LocalIdentity } from './history.js'
import { firstValue, parsePythonInt } from './params.js'

export const JOB_STATUSES = ['pending', 'in_progress', 'completed', 'failed', 'cancelled'] as const

/** Local sort names → the cloud's (notes §4.8). */
const SORT_BY: Record<string, string> = { created_at: 'create_time', execution_duration: 'execution_time' }

/** A refusal in local's /api/jobs shape: `{"error": "<text>"}`. */
export class JobsQueryError extends Error {
  readonly statusCode = 400
}

export interface JobsQuery {
  /** undefined: every status */
  status: string[] | undefined
  sortBy: string
  sortOrder: 'asc' | 'desc'
  /** undefined: no limit (local answers `"limit": null`) */
  limit: number | undefined
  offset: number
  workflowId: string | undefined
}

/** The query as local ComfyUI's get_jobs reads it, in the same order, with the same messages. */
export function parseJobsQuery (query: Record<string, unknown>): JobsQuery {
  const statusParam = firstValue(query.status)
  let status: string[] | undefined
  if (statusParam !== undefined && statusParam !== '') {
    const wanted = statusParam.split(',').map(value => value.trim().toLowerCase()).filter(value => value !== '')
    const invalid = wanted.filter(value => !(JOB_STATUSES as readonly string[]).includes(value))
    if (invalid.length > 0) {
      throw new JobsQueryError(`Invalid status value(s): ${invalid.join(', ')}. Valid values: ${JOB_STATUSES.join(', ')}`)
    }
    if (wanted.length > 0) status = wanted
  }
  const sortBy = (firstValue(query.sort_by) ?? 'created_at').toLowerCase()
  if (SORT_BY[sortBy] === undefined) throw new JobsQueryError('sort_by must be \'created_at\' or \'execution_duration\'')
  const sortOrder = (firstValue(query.sort_order) ?? 'desc').toLowerCase()
  if (sortOrder !== 'asc' && sortOrder !== 'desc') throw new JobsQueryError('sort_order must be \'asc\' or \'desc\'')
  let limit: number | undefined
  const limitParam = firstValue(query.limit)
  if (limitParam !== undefined) {
    limit = parsePythonInt(limitParam)
    if (limit === undefined) throw new JobsQueryError('limit must be an integer')
    if (limit <= 0) throw new JobsQueryError('limit must be a positive integer')
  }
  let offset = 0
  const offsetParam = firstValue(query.offset)
  if (offsetParam !== undefined) {
    const value = parsePythonInt(offsetParam)
    if (value === undefined) throw new JobsQueryError('offset must be an integer')
    offset = Math.max(value, 0)
  }
  return { status, sortBy: SORT_BY[sortBy], sortOrder, limit, offset, workflowId: firstValue(query.workflow_id) }
}

/** The cloud query for one page of a local query. */
export function cloudJobsQuery (query: JobsQuery, offset: number, limit: number): Record<string, string | number | undefined> {
  return {
    status: query.status?.join(','),
    workflow_id: query.workflowId,
    sort_by: query.sortBy,
    sort_order: query.sortOrder,
    // Python's int() has no ceiling; past the largest exact number every page is empty anyway.
    offset: Math.min(offset, Number.MAX_SAFE_INTEGER),
    limit
  }
}

/** Local's execution_error is the whole execution_error message (contract §2.4), timestamp included. */
function localExecutionError (error: ExecutionError, promptId: string, timestamp: number | undefined): Json {
  const currentOutputs = Array.isArray(error.current_outputs) ? error.current_outputs : Object.keys(error.current_outputs ?? {})
  return {
    prompt_id: promptId,
    node_id: error.node_id ?? null,
    node_type: error.node_type ?? null,
    executed: Array.isArray(error.executed) ? error.executed : [],
    exception_message: error.exception_message,
    exception_type: error.exception_type,
    traceback: error.traceback ?? [],
    current_inputs: error.current_inputs ?? {},
    current_outputs: currentOutputs,
    ...(timestamp === undefined ? {} : { timestamp })
  }
}

const UNFINISHED = new Set(['pending', 'in_progress'])

/** One job of the list, in local's key order; absent values are left out, as local's prune_dict does. */
export function localJob (job: JobEntry, identity: LocalIdentity): Json {
  const start = job.execution_start_time === undefined ? undefined : toMs(job.execution_start_time)
  const end = job.execution_end_time === undefined ? undefined : toMs(job.execution_end_time)
  const fields: Json = {
    id: identity.promptId,
    status: job.status,
    priority: identity.number,
    create_time: toMs(job.create_time),
    execution_start_time: start,
    execution_end_time: end,
    execution_error: job.execution_error === undefined || job.execution_error === null ? undefined : localExecutionError(job.execution_error, identity.promptId, end),
    // Local counts outputs on every job, 0 while it has not finished (contract §8.1).
    outputs_count: UNFINISHED.has(job.status) ? 0 : job.outputs_count ?? 0,
    preview_output: job.preview_output,
    workflow_id: job.workflow_id
  }
  for (const key of Object.keys(fields)) if (fields[key] === undefined || fields[key] === null) delete fields[key]
  return fields
}

/** GET /api/jobs/{id}: a finished job adds its outputs, execution_status and workflow; an unfinished one is the list's. */
export function localJobDetail (job: JobDetail, identity: LocalIdentity): Json {
  const compact = localJob(job, identity)
  const entry = historyEntryFromJob(job)
  if (entry === null) return compact
  const local = withIdentity(entry, identity)
  return { ...compact, outputs: local.outputs, execution_status: local.status, workflow: { prompt: local.prompt[2], extra_data: local.prompt[3] } }
}
