/**
 * Which cloud the simulator plays: `spec`, the published v1 spec (724cda9), or `current`, the deployed
 * cloud as the drift report describes it (drift §2). This file holds the `current` behaviours:
 * - about the account: the 403 family (drift §1.3), the user's own models in the node catalogue
 *   (drift §2.11) and the cross-account 403 on per-job routes (notes §2.7);
 * - about jobs: `GET /api/jobs` pages with an opaque `after` cursor, ignores `offset` and reports `total`
 *   0 (drift §2.1); optional job fields without a value are sent as `null` (drift §1.6); an interrupted
 *   running job ends `failed` with an `InterruptProcessingException` error (drift §2.2).
 */
import { badRequest } from './errors.js'
import type { NodeInfo } from './catalog.js'
import type { JobRecord } from './store.js'

export type SimulatorProfile = 'spec' | 'current'
export const PROFILES: readonly SimulatorProfile[] = ['spec', 'current']

/** 403 codes the deployed cloud sends to any credential, API keys included (drift §1.3). */
export const ACCOUNT_REFUSALS = ['sso_required', 'FORBIDDEN', 'workspace_access_denied', 'auth_type_not_allowed'] as const
export type AccountRefusal = typeof ACCOUNT_REFUSALS[number]

const REFUSAL_MESSAGES: Record<AccountRefusal, string> = {
  sso_required: 'This workspace requires single sign-on',
  FORBIDDEN: 'Email address is not verified',
  workspace_access_denied: 'You do not have access to this workspace',
  auth_type_not_allowed: 'This credential type is not accepted here'
}

/** The body of a refusal: ErrorResponse, or the credential-type shape {error, accepted} (cloud-api-notes §1.2, §1.4). */
export function refusalBody (code: AccountRefusal): Record<string, unknown> {
  if (code === 'auth_type_not_allowed') return { error: { type: code, message: REFUSAL_MESSAGES[code] }, accepted: ['firebase'] }
  return code === 'sso_required'
    ? { code, message: REFUSAL_MESSAGES[code], organization_id: 'org-simulated' }
    : { code, message: REFUSAL_MESSAGES[code] }
}

/** What a job of another account answers on the per-job routes of the current cloud (notes §2.7: "403 Job does not belong to user"). */
export const FOREIGN_JOB_BODY = { code: 'FORBIDDEN', message: 'Job does not belong to user' }

/** Models every simulated account has imported itself (Civitai, Hugging Face), by combo input name. */
export const USER_MODELS: Record<string, string[]> = {
  ckpt_name: ['my-imported-checkpoint.safetensors'],
  lora_name: ['my-imported-lora.safetensors']
}

/** The node catalogue with the account's own models added to the loaders' lists (`include_user_models=true`, drift §2.11). */
export function withUserModels (nodes: Record<string, NodeInfo>): Record<string, NodeInfo> {
  const out = structuredClone(nodes)
  for (const info of Object.values(out)) {
    for (const inputs of [info.input.required, info.input.optional ?? {}]) {
      for (const [name, spec] of Object.entries(inputs)) {
        const extra = USER_MODELS[name]
        if (extra !== undefined && Array.isArray(spec[0])) spec[0] = [...spec[0], ...extra.filter(model => !(spec[0] as string[]).includes(model))]
      }
    }
  }
  return out
}

/** Optional fields of a job list entry that the deployed cloud's own frontend accepts as null (drift §1.6). */
const NULLABLE_ENTRY_FIELDS = ['execution_start_time', 'execution_end_time', 'outputs_count', 'preview_output', 'execution_error', 'workflow_id']
/** The detail adds the queue fields, documented as nullable (drift §2.2c). */
const NULLABLE_DETAIL_FIELDS = [...NULLABLE_ENTRY_FIELDS, 'queue_reason', 'queue_position']

function withNulls<T extends object> (view: T, fields: string[]): T {
  const record = view as Record<string, unknown>
  for (const field of fields) if (record[field] === undefined) record[field] = null
  return view
}

export const entryWithNulls = <T extends object>(view: T): T => withNulls(view, NULLABLE_ENTRY_FIELDS)
export const detailWithNulls = <T extends object>(view: T): T => withNulls(view, NULLABLE_DETAIL_FIELDS)

/** The exception ComfyUI raises when a run is interrupted; the deployed cloud reports it as a failure (drift §2.2g). */
export const INTERRUPT_EXCEPTION = 'InterruptProcessingException'

type Order = 'asc' | 'desc'

/** The keyset cursor's wire format: base64url(JSON {s, v, id, o}) (drift §2.1g). */
interface Cursor { s: 'create_time', v: number, id: string, o: Order }

export function encodeCursor (job: JobRecord, order: Order): string {
  const cursor: Cursor = { s: 'create_time', v: job.detail.create_time, id: job.detail.id, o: order }
  return Buffer.from(JSON.stringify(cursor)).toString('base64url')
}

function decodeCursor (raw: string): Cursor {
  let cursor: unknown
  try {
    cursor = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8'))
  } catch {
    cursor = undefined
  }
  const c = cursor as Partial<Cursor> | undefined
  if (c === undefined || c === null || c.s !== 'create_time' || typeof c.v !== 'number' || typeof c.id !== 'string' || (c.o !== 'asc' && c.o !== 'desc')) {
    throw badRequest('malformed pagination cursor')
  }
  return c as Cursor
}

/**
 * Where the page after `raw` starts in `sorted` (sorted by create_time in `order`): just after the cursor's
 * job, or, when that job is gone, at the first job beyond its create_time.
 */
export function cursorStart (sorted: JobRecord[], raw: string, order: Order): number {
  const cursor = decodeCursor(raw)
  if (cursor.o !== order) throw badRequest('malformed pagination cursor: it was minted for the other sort order')
  const at = sorted.findIndex(job => job.detail.id === cursor.id)
  if (at >= 0) return at + 1
  const beyond = sorted.findIndex(job => order === 'asc' ? job.detail.create_time > cursor.v : job.detail.create_time < cursor.v)
  return beyond < 0 ? sorted.length : beyond
}
