/**
 * Pure mapping of local POST /prompt requests to Comfy Cloud and of every cloud answer back to
 * the local envelope {error: {type, message, details, extra_info}, node_errors} (contract §5,
 * cloud-api-notes §4.6). No I/O here.
 */
import type { Json } from '../cloud/types.js'
import { ProxyError, type LocalError } from '../errors.js'
import { pythonFloat, pythonTruthy } from './params.js'

export interface LocalPromptError {
  statusCode: number
  body: { error: LocalError, node_errors: Json }
}

/**
 * Fields of a local submit that Comfy Cloud understands; anything else is ignored, as local ComfyUI does.
 * `number`, `front` and `prompt_id` are the proxy's to honour (the cloud ignores the first two; notes §2.1).
 */
const FORWARDED = ['prompt', 'client_id', 'partial_execution_targets', 'workflow_id', 'workflow_version_id']

/** Local ComfyUI takes any prompt_id through Python's str(); very long ones are refused so that the id map stays bounded. */
const MAX_PROMPT_ID_LENGTH = 1024
const CANONICAL_UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

function isObject (value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

export interface LocalSubmit {
  /** the body for POST /api/prompt */
  cloudRequest: Json
  /** the client's own prompt_id, as local ComfyUI would store it */
  promptId: string | undefined
  /** the client's own number (Python float(); observed finding 3) */
  number: number | undefined
  /** queue ahead of the pending prompts (ignored when number is given, as local does) */
  front: boolean
}

/** The id a cloud may be offered: a canonical UUID, which newer cloud and local servers accept as a job id. */
export function offerableId (promptId: string): boolean {
  return CANONICAL_UUID.test(promptId)
}

/** A prompt_id as Python's str() makes it (observed finding 4); null means "none", as newer local servers read it. */
function clientPromptId (value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined
  let id: string
  if (typeof value === 'string') id = value
  else if (typeof value === 'number' && Number.isFinite(value)) id = String(value)
  else if (typeof value === 'boolean') id = value ? 'True' : 'False'
  else throw new ProxyError(400, 'invalid_prompt_id', 'prompt_id must be a string or a number', 'prompt_id')
  if (id.length > MAX_PROMPT_ID_LENGTH) {
    throw new ProxyError(400, 'invalid_prompt_id', `prompt_id must be at most ${MAX_PROMPT_ID_LENGTH} characters`, 'prompt_id')
  }
  return id
}

/** The local submit as the proxy passes it on, or a ProxyError for what local ComfyUI would reject (or crash on). */
export function localSubmit (body: unknown): LocalSubmit {
  // A JSON array is local's no_prompt (observed finding 6); other non-objects crash it.
  if (Array.isArray(body)) throw new ProxyError(400, 'no_prompt', 'No prompt provided', 'No prompt provided')
  if (!isObject(body)) throw new ProxyError(400, 'invalid_request', 'The request body must be a JSON object')
  if (!('prompt' in body)) throw new ProxyError(400, 'no_prompt', 'No prompt provided', 'No prompt provided')
  if (!isObject(body.prompt)) throw new ProxyError(400, 'invalid_prompt', 'prompt must be an object of nodes', 'prompt')
  if (body.extra_data !== undefined && !isObject(body.extra_data)) {
    throw new ProxyError(400, 'invalid_prompt', 'extra_data must be an object', 'extra_data')
  }
  let number: number | undefined
  if (body.number !== undefined) {
    number = pythonFloat(body.number)
    if (number === undefined) throw new ProxyError(400, 'invalid_prompt', 'number must be a number', 'number')
  }
  const promptId = clientPromptId(body.prompt_id)
  const cloudRequest: Json = {}
  for (const key of FORWARDED) if (key in body) cloudRequest[key] = body[key]
  const extraData: Json = { ...(body.extra_data as Json | undefined) }
  // Local ComfyUI copies a top-level client_id into extra_data whenever the key is present (contract §5.2).
  if ('client_id' in body) extraData.client_id = body.client_id
  cloudRequest.extra_data = extraData
  return { cloudRequest, promptId, number, front: pythonTruthy(body.front) }
}

const STATUS_FOR_CLIENT: Record<number, number> = {
  400: 400, 402: 402, 403: 403, 409: 409, 413: 413, 422: 400, 429: 429, 500: 502, 502: 502, 503: 503, 504: 504
}

/** Cloud-only details (402/403/429 bodies) kept for the client in extra_info. */
const DETAIL_FIELDS = ['reason', 'class_types', 'providers']

const NOTHING_QUEUED = 'Comfy Cloud queued nothing'
/**
 * Refusals local ComfyUI never gives, by the cloud's error.type (notes §1.5, drift §2.6): what happened
 * and what to do, for a person reading a client's error box. 429s are back-pressure (retrying later
 * succeeds); 402s are plan refusals (retrying never does until the plan changes).
 */
const REFUSALS: Record<string, string> = {
  QUEUE_LIMIT: `${NOTHING_QUEUED}: the account's queue is full (Comfy Cloud holds at most 100 waiting jobs). Submit again once some jobs have finished`,
  FREE_TIER_UNAVAILABLE: `${NOTHING_QUEUED}: the free tier has no capacity right now. Try again later`,
  BILLING_UNAVAILABLE: `${NOTHING_QUEUED}: it could not check the account's funds just now. Try again later`,
  PLATFORM_REFUSED: `${NOTHING_QUEUED}: the platform is not ready to run this job yet. Try again later`,
  PAYMENT_REQUIRED: `${NOTHING_QUEUED}: the account has no credits left for this job. Add credits at https://cloud.comfy.org, then submit again`,
  CLOUD_SUBSCRIPTION_REQUIRED: `${NOTHING_QUEUED}: running jobs through the API needs a paid Comfy Cloud subscription. Subscribe at https://cloud.comfy.org, then submit again`,
  FREE_TIER_EXHAUSTED: `${NOTHING_QUEUED}: the account's free allowance is used up. Upgrade the plan at https://cloud.comfy.org or wait for it to renew`,
  PARTNER_NODE_PAYMENT_REQUIRED: `${NOTHING_QUEUED}: the workflow uses partner (paid API) nodes the account cannot pay for. Add credits or remove those nodes`,
  MODEL_PAYMENT_REQUIRED: `${NOTHING_QUEUED}: the workflow uses a model the account's plan does not include. Upgrade the plan or choose another model`
}

/** The person-readable message of a cloud refusal, with when to retry; undefined for answers that are not refusals. */
function refusalMessage (status: number, type: string | undefined, retryAfter: string | undefined): string | undefined {
  const known = type === undefined ? undefined : REFUSALS[type]
  const message = known ?? (status === 429 ? `${NOTHING_QUEUED}: it is refusing new jobs for the moment. Try again later` : undefined)
  if (message === undefined) return undefined
  return retryAfter !== undefined && /^\d+$/.test(retryAfter) ? `${message} (Comfy Cloud asks to wait ${retryAfter} s)` : message
}

/**
 * Any non-200 answer of POST /api/prompt as the local envelope with a fitting status. Refusals get a
 * message a person understands; the cloud's own words stay in extra_info.cloud_message.
 */
export function localPromptError (status: number, body: unknown, retryAfter?: string): LocalPromptError {
  if (status === 401) {
    return envelope(502, {
      type: 'proxy_auth_failed',
      message: 'Comfy Cloud rejected the proxy\'s API key: check COMFY_CLOUD_API_KEY (or COMFY_CLOUD_API_KEY_FILE) where the proxy runs',
      details: '',
      extra_info: {}
    })
  }
  const statusCode = STATUS_FOR_CLIENT[status] ?? (status >= 500 ? 502 : status)
  const nodeErrors = isObject(body) && isObject(body.node_errors) ? body.node_errors : {}
  if (isObject(body) && isObject(body.error)) {
    const error = body.error
    const extraInfo: Json = isObject(error.extra_info) ? { ...error.extra_info } : {}
    for (const field of DETAIL_FIELDS) {
      if (error[field] !== undefined) extraInfo[field] = error[field]
    }
    const type = typeof error.type === 'string' ? error.type : undefined
    const cloudMessage = typeof error.message === 'string' ? error.message : undefined
    const refusal = refusalMessage(status, type, retryAfter)
    if (refusal !== undefined && cloudMessage !== undefined) extraInfo.cloud_message = cloudMessage
    return envelope(statusCode, {
      type: type ?? `cloud_${status}`,
      message: refusal ?? cloudMessage ?? `Comfy Cloud refused the prompt (${status})`,
      details: typeof error.details === 'string' ? error.details : error.details === undefined ? '' : JSON.stringify(error.details),
      extra_info: extraInfo
    }, nodeErrors)
  }
  if (isObject(body) && typeof body.code === 'string') {
    const refusal = refusalMessage(status, body.code, retryAfter)
    const extraInfo: Json = isObject(body.details) ? { ...body.details } : {}
    if (refusal !== undefined && typeof body.message === 'string') extraInfo.cloud_message = body.message
    return envelope(statusCode, {
      type: body.code,
      message: refusal ?? (typeof body.message === 'string' ? body.message : body.code),
      details: '',
      extra_info: extraInfo
    }, nodeErrors)
  }
  const message = refusalMessage(status, undefined, retryAfter) ?? (isObject(body) && typeof body.error === 'string' ? body.error : `Comfy Cloud answered ${status}`)
  return envelope(statusCode, { type: `cloud_${status}`, message, details: '', extra_info: {} }, nodeErrors)
}

function envelope (statusCode: number, error: LocalError, nodeErrors: Json = {}): LocalPromptError {
  return { statusCode, body: { error, node_errors: nodeErrors } }
}
