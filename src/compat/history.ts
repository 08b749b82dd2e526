/**
 * Pure mappers from Comfy Cloud job and history payloads to local ComfyUI history entries
 * (cloud-api-notes §4.1–4.3, contract §2). No I/O here.
 */
import type { ExecutionStatus, HistoryV2Detail, HistoryV2Entry, JobDetail, Json } from '../cloud/types.js'

export type LocalPromptTuple = [number, string, Json, Json, string[]]

/** Key order matters to clients that compare bytes: prompt, outputs, status, meta (contract §2). */
export interface LocalHistoryEntry {
  prompt: LocalPromptTuple
  outputs: Json
  status: ExecutionStatus
  meta: Json
}

const SENSITIVE_EXTRA_DATA = ['api_key_comfy_org', 'auth_token_comfy_org']
const FINISHED = new Set(['completed', 'failed', 'cancelled'])

/** Cloud timestamps are documented in seconds but sent in milliseconds (notes §1.7): accept both, answer ms. */
export function toMs (time: number): number {
  return Math.round(time < 1e12 ? time * 1000 : time)
}

export function isFinished (status: string): boolean {
  return FINISHED.has(status)
}

/** extra_data as local history shows it: never the sensitive keys, always create_time (contract §2.2). */
export function localExtraData (extraData: Json | undefined, createTime: number | undefined): Json {
  const out: Json = {}
  for (const [key, value] of Object.entries(extraData ?? {})) {
    if (!SENSITIVE_EXTRA_DATA.includes(key)) out[key] = value
  }
  if (out.create_time === undefined && createTime !== undefined) out.create_time = createTime
  return out
}

function withMsTimestamps (status: ExecutionStatus): ExecutionStatus {
  const messages = status.messages.map(([event, data]): [string, Json] =>
    typeof data.timestamp === 'number' && data.timestamp < 1e12 ? [event, { ...data, timestamp: toMs(data.timestamp) }] : [event, data])
  return { ...status, messages }
}

/** What ComfyUI raises on an interrupt; the deployed cloud reports such a run as `failed` with it (drift §2.2g). */
const INTERRUPT_EXCEPTION = 'InterruptProcessingException'

/** An interrupted run: a cloud `cancelled` job, or a `failed` one whose error is ComfyUI's interrupt. */
export function wasInterrupted (job: Pick<JobDetail, 'status' | 'execution_error'>): boolean {
  return job.status === 'cancelled' || (job.status === 'failed' && job.execution_error?.exception_type === INTERRUPT_EXCEPTION)
}

/**
 * A local status dict for a finished job that has no execution_status (notes §4.1): the start
 * event, then execution_success, execution_error (with the cloud's error fields) or
 * execution_interrupted, which local clients read as "cancelled" (notes §4.1 rule 4).
 */
export function synthesizeStatus (job: JobDetail): ExecutionStatus {
  const promptId = job.id
  const start = toMs(job.execution_start_time ?? job.create_time)
  const end = toMs(job.execution_end_time ?? job.update_time ?? job.create_time)
  const messages: Array<[string, Json]> = [['execution_start', { prompt_id: promptId, timestamp: start }]]
  if (job.status === 'completed') {
    messages.push(['execution_success', { prompt_id: promptId, timestamp: end }])
    return { status_str: 'success', completed: true, messages }
  }
  const error = job.execution_error
  const where = { prompt_id: promptId, node_id: error?.node_id ?? null, node_type: error?.node_type ?? null, executed: Array.isArray(error?.executed) ? error.executed : [] }
  if (wasInterrupted(job)) {
    messages.push(['execution_interrupted', { ...where, timestamp: end }])
  } else {
    messages.push(['execution_error', {
      ...where,
      exception_message: error?.exception_message ?? 'Cloud job failed',
      exception_type: error?.exception_type ?? 'ServiceError',
      traceback: error?.traceback ?? [],
      current_inputs: error?.current_inputs ?? {},
      current_outputs: error?.current_outputs ?? [],
      timestamp: end
    }])
  }
  return { status_str: 'error', completed: false, messages }
}

/** The local entry of a finished cloud job (GET /api/jobs/{id}); null while it is pending or running. */
export function historyEntryFromJob (job: JobDetail): LocalHistoryEntry | null {
  if (!isFinished(job.status)) return null
  const createTime = toMs(job.create_time)
  const outputs = job.outputs ?? {}
  return {
    prompt: [
      createTime,
      job.id,
      job.workflow?.prompt ?? {},
      localExtraData(job.workflow?.extra_data, createTime),
      Object.keys(outputs)
    ],
    outputs,
    status: job.execution_status !== undefined ? withMsTimestamps(job.execution_status) : synthesizeStatus(job),
    meta: job.execution_meta ?? {}
  }
}

function finishedStatus (status: ExecutionStatus | undefined): status is ExecutionStatus {
  return status !== undefined && (status.status_str === 'success' || status.status_str === 'error')
}

/** The first message timestamp, for entries that carry no create_time of their own. */
function firstTimestamp (status: ExecutionStatus): number | undefined {
  const time = status.messages[0]?.[1]?.timestamp
  return typeof time === 'number' ? toMs(time) : undefined
}

/**
 * A local entry from a /api/history_v2 list item. The list has no API graph (prompt[2] is {})
 * and no outputs_to_execute (derived from the outputs' keys); notes §2.3, §4.2 option B.
 */
export function historyEntryFromHistoryV2 (entry: HistoryV2Entry): LocalHistoryEntry | null {
  if (!finishedStatus(entry.status)) return null
  const extraData = entry.prompt?.extra_data
  const createTime = entry.create_time !== undefined
    ? toMs(entry.create_time)
    : typeof extraData?.create_time === 'number' ? toMs(extraData.create_time) : firstTimestamp(entry.status) ?? 0
  const outputs = entry.outputs ?? {}
  return {
    prompt: [createTime, entry.prompt_id, {}, localExtraData(extraData, createTime), Object.keys(outputs)],
    outputs,
    status: withMsTimestamps(entry.status),
    meta: entry.meta ?? {}
  }
}

/** A local entry from GET /api/history_v2/{id}; null unless the record is finished (notes §2.4). */
export function historyEntryFromHistoryV2Detail (promptId: string, detail: HistoryV2Detail): LocalHistoryEntry | null {
  if (!finishedStatus(detail.status)) return null
  const extraData = detail.prompt?.extra_data
  const createTime = typeof extraData?.create_time === 'number' ? toMs(extraData.create_time) : firstTimestamp(detail.status) ?? 0
  const outputs = detail.outputs ?? {}
  return {
    prompt: [
      createTime,
      promptId,
      detail.prompt?.prompt ?? {},
      localExtraData(extraData, createTime),
      detail.prompt?.outputs_to_execute ?? Object.keys(outputs)
    ],
    outputs,
    status: withMsTimestamps(detail.status),
    meta: detail.meta ?? {}
  }
}

/** history_v2 detail answers {id: record}, but clients of the cloud also see a bare record (notes §2.4): accept both. */
export function unwrapHistoryV2Detail (promptId: string, body: Json): HistoryV2Detail | undefined {
  if (body[promptId] !== undefined && typeof body[promptId] === 'object') return body[promptId] as HistoryV2Detail
  if ('outputs' in body || 'status' in body) return body as HistoryV2Detail
  return undefined
}

/** How clients know a prompt: the id they gave it and its number (observed findings 3, 4). */
export interface LocalIdentity {
  promptId: string
  number: number
}

/** The entry as clients know the prompt: their id in prompt[1] and in the status messages, its number in prompt[0]. */
export function withIdentity (entry: LocalHistoryEntry, identity: LocalIdentity): LocalHistoryEntry {
  const [, cloudId, prompt, extraData, outputs] = entry.prompt
  const messages = identity.promptId === cloudId
    ? entry.status.messages
    : entry.status.messages.map(([event, data]): [string, Json] => data.prompt_id === cloudId ? [event, { ...data, prompt_id: identity.promptId }] : [event, data])
  return { ...entry, prompt: [identity.number, identity.promptId, prompt, extraData, outputs], status: { ...entry.status, messages } }
}
