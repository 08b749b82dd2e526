/**
 * JSON schemas of the Comfy Cloud payloads the proxy reads, written from the published Cloud
 * OpenAPI spec (components/schemas). They are tolerant: added fields are allowed everywhere,
 * because the deployed cloud is ahead of the spec. Where the deployed cloud is known to differ
 * from the spec, the schema follows the cloud and says why (cloud-api-notes §1.7, §3.5, §3.6).
 */
import { Ajv, type AnySchemaObject, type ErrorObject, type ValidateFunction } from 'ajv'

const str = { type: 'string' } as const
const bool = { type: 'boolean' } as const
const obj = { type: 'object' } as const
const strList = { type: 'array', items: str } as const
/** Timestamps: the spec says integer seconds, the cloud sends integer milliseconds (notes §1.7); accept any number and normalise later. */
const time = { type: 'number', minimum: 0 } as const
const jobStatus = { type: 'string', enum: ['pending', 'in_progress', 'completed', 'failed', 'cancelled'] } as const

export const ErrorResponse = {
  $id: 'ErrorResponse',
  type: 'object',
  required: ['code', 'message'],
  properties: { code: str, message: str }
} as const

export const PromptResponse = {
  $id: 'PromptResponse',
  type: 'object',
  // The spec marks nothing required, but a submit answer without the id is useless to every client.
  required: ['prompt_id'],
  properties: { prompt_id: str, number: { type: 'number' }, node_errors: obj }
} as const

export const PromptInfo = {
  $id: 'PromptInfo',
  type: 'object',
  required: ['exec_info'],
  properties: {
    exec_info: {
      type: 'object',
      required: ['queue_remaining'],
      properties: { queue_remaining: { type: 'integer', minimum: 0 } }
    }
  }
} as const

export const ExecutionError = {
  $id: 'ExecutionError',
  type: 'object',
  required: ['node_id', 'node_type', 'exception_message', 'exception_type', 'traceback', 'current_inputs', 'current_outputs'],
  properties: {
    node_id: { type: ['string', 'null'] },
    node_type: { type: ['string', 'null'] },
    exception_message: str,
    exception_type: str,
    traceback: strList,
    current_inputs: obj,
    // The spec says object; the ComfyUI executor that produces it writes a list of node ids (contract §2.4).
    current_outputs: { type: ['object', 'array'] }
  }
} as const

/** `next_cursor` and a `total` that may be 0 under cursor paging come from the deployed cloud (drift §2.1). */
export const PaginationInfo = {
  $id: 'PaginationInfo',
  type: 'object',
  nullMeansAbsent: true,
  required: ['offset', 'limit', 'total', 'has_more'],
  properties: {
    offset: { type: 'integer', minimum: 0 },
    limit: { type: 'integer', minimum: 1 },
    total: { type: 'integer', minimum: 0 },
    has_more: bool,
    next_cursor: str
  }
} as const

export const JobEntry = {
  $id: 'JobEntry',
  type: 'object',
  nullMeansAbsent: true,
  required: ['id', 'status', 'create_time'],
  properties: {
    id: str,
    status: jobStatus,
    execution_error: { $ref: 'ExecutionError' },
    create_time: time,
    preview_output: obj,
    outputs_count: { type: 'integer', minimum: 0 },
    workflow_id: str,
    execution_start_time: time,
    execution_end_time: time
  }
} as const

/** The page; its jobs are checked one by one against JobEntry, so one bad job does not cost the page (drift §1.6). */
export const JobsListResponse = {
  $id: 'JobsListResponse',
  type: 'object',
  required: ['jobs', 'pagination'],
  properties: {
    jobs: { type: 'array', items: obj },
    pagination: { $ref: 'PaginationInfo' }
  }
} as const

export const JobDetailResponse = {
  $id: 'JobDetailResponse',
  type: 'object',
  nullMeansAbsent: true,
  required: ['id', 'status', 'create_time', 'update_time'],
  properties: {
    id: str,
    status: jobStatus,
    // The spec calls it the "full ComfyUI workflow"; the cloud sends the container {prompt, extra_data} (notes §3.5).
    workflow: {
      type: 'object',
      nullMeansAbsent: true,
      properties: { prompt: obj, extra_data: obj }
    },
    execution_error: { $ref: 'ExecutionError' },
    create_time: time,
    update_time: time,
    outputs: obj,
    preview_output: obj,
    outputs_count: { type: 'integer', minimum: 0 },
    workflow_id: str,
    execution_status: { $ref: 'ExecutionStatus' },
    execution_meta: obj,
    execution_start_time: time,
    execution_end_time: time
  }
} as const

/** The spec leaves execution_status free-form; it is ComfyUI's own status dict (notes §3.2), so check the parts a local client reads. */
export const ExecutionStatus = {
  $id: 'ExecutionStatus',
  type: 'object',
  required: ['status_str', 'messages'],
  properties: {
    status_str: str,
    completed: bool,
    messages: {
      type: 'array',
      items: { type: 'array', minItems: 2, items: [str, obj] }
    }
  }
} as const

export const HistoryEntry = {
  $id: 'HistoryEntry',
  type: 'object',
  nullMeansAbsent: true,
  required: ['prompt_id'],
  properties: {
    prompt_id: str,
    create_time: time,
    workflow_id: str,
    prompt: {
      type: 'object',
      nullMeansAbsent: true,
      properties: { priority: { type: 'number' }, prompt_id: str, extra_data: obj }
    },
    outputs: obj,
    status: { $ref: 'ExecutionStatus' },
    meta: obj
  }
} as const

/** The list; its items are checked one by one against HistoryEntry, like the jobs list. */
export const HistoryResponse = {
  $id: 'HistoryResponse',
  type: 'object',
  required: ['history'],
  properties: { history: { type: 'array', items: obj } }
} as const

export const HistoryDetailEntry = {
  $id: 'HistoryDetailEntry',
  type: 'object',
  nullMeansAbsent: true,
  properties: {
    prompt: {
      type: 'object',
      nullMeansAbsent: true,
      properties: {
        priority: { type: 'number' },
        prompt_id: str,
        prompt: obj,
        extra_data: obj,
        outputs_to_execute: strList
      }
    },
    outputs: obj,
    status: { $ref: 'ExecutionStatus' },
    meta: obj
  }
} as const

export const HistoryDetailResponse = {
  $id: 'HistoryDetailResponse',
  type: 'object',
  additionalProperties: { $ref: 'HistoryDetailEntry' }
} as const

/** [job_number, prompt_id, workflow, output_node_ids, {create_time}]: not the local tuple order (notes §2.9). */
export const QueueItem = {
  $id: 'QueueItem',
  type: 'array',
  minItems: 5,
  items: [
    { type: 'number' },
    str,
    obj,
    strList,
    { type: 'object', properties: { create_time: time } }
  ]
} as const

export const QueueInfo = {
  $id: 'QueueInfo',
  type: 'object',
  required: ['queue_running', 'queue_pending'],
  properties: {
    queue_running: { type: 'array', items: { $ref: 'QueueItem' } },
    queue_pending: { type: 'array', items: { $ref: 'QueueItem' } }
  }
} as const

export const QueueManageResponse = {
  $id: 'QueueManageResponse',
  type: 'object',
  properties: { deleted: strList, cleared: bool }
} as const

/** POST /api/jobs/{id}/cancel: not in the published spec, from the newer cloud-inclusive spec (notes §2.7). */
export const CancelResponse = {
  $id: 'CancelResponse',
  type: 'object',
  required: ['cancelled'],
  properties: { cancelled: bool }
} as const

export const NodeInfo = {
  $id: 'NodeInfo',
  type: 'object',
  properties: {
    input: obj,
    input_order: { type: 'object', additionalProperties: strList },
    output: strList,
    output_is_list: { type: 'array', items: bool },
    output_name: strList,
    name: str,
    display_name: str,
    description: str,
    python_module: str,
    category: str,
    output_node: bool,
    output_tooltips: strList,
    deprecated: bool,
    experimental: bool,
    api_node: bool
  }
} as const

export const ObjectInfoResponse = {
  $id: 'ObjectInfoResponse',
  type: 'object',
  additionalProperties: { $ref: 'NodeInfo' }
} as const

export const FeaturesResponse = {
  $id: 'FeaturesResponse',
  type: 'object',
  properties: { supports_preview_metadata: bool, max_upload_size: { type: 'integer' } }
} as const

export const UploadImageResponse = {
  $id: 'UploadImageResponse',
  type: 'object',
  properties: { name: str, subfolder: str, type: str }
} as const

export const SystemStatsResponse = {
  $id: 'SystemStatsResponse',
  type: 'object',
  required: ['system', 'devices'],
  properties: {
    system: {
      type: 'object',
      required: ['os', 'python_version', 'embedded_python', 'comfyui_version', 'pytorch_version', 'argv', 'ram_total', 'ram_free'],
      properties: {
        os: str,
        python_version: str,
        embedded_python: bool,
        comfyui_version: str,
        comfyui_frontend_version: str,
        workflow_templates_version: str,
        cloud_version: str,
        pytorch_version: str,
        argv: strList,
        ram_total: { type: 'number' },
        ram_free: { type: 'number' }
      }
    },
    devices: {
      type: 'array',
      items: {
        type: 'object',
        required: ['name', 'type'],
        properties: { name: str, type: str, vram_total: { type: 'number' }, vram_free: { type: 'number' } }
      }
    }
  }
} as const

/** GET /api/experiment/models: the model folders (spec ModelFolder). */
export const ModelFolderList = {
  $id: 'ModelFolderList',
  type: 'array',
  items: { type: 'object', required: ['name'], properties: { name: str, folders: strList } }
} as const

/** GET /api/experiment/models/{folder}: the files of one folder (spec ModelFile). */
export const ModelFileList = {
  $id: 'ModelFileList',
  type: 'array',
  items: { type: 'object', required: ['name'], properties: { name: str, pathIndex: { type: 'integer' } } }
} as const

/** A WebSocket text frame: {type, data}. Types beyond the spec's list (notification, feature_flags, …) are allowed. */
export const WebSocketMessage = {
  $id: 'WebSocketMessage',
  type: 'object',
  required: ['type'],
  properties: { type: str, data: obj }
} as const

const all = [
  ErrorResponse, PromptResponse, PromptInfo, ExecutionError, PaginationInfo, JobEntry, JobsListResponse,
  JobDetailResponse, ExecutionStatus, HistoryEntry, HistoryResponse, HistoryDetailEntry, HistoryDetailResponse,
  QueueItem, QueueInfo, QueueManageResponse, CancelResponse, NodeInfo, ObjectInfoResponse, FeaturesResponse,
  UploadImageResponse, SystemStatsResponse, ModelFolderList, ModelFileList, WebSocketMessage
]

export type CloudSchemaName = typeof all[number]['$id']

/** The schema object itself, by its spec name (for reports that list fields, e.g. doctor). */
export function cloudSchema (name: string): Record<string, unknown> | undefined {
  return all.find(schema => schema.$id === name) as Record<string, unknown> | undefined
}

const ajv = new Ajv({ allErrors: false, strict: false })
/**
 * `nullMeansAbsent: true` on an object schema: its optional properties sent as null are removed before the
 * properties are checked, so mappers see them as absent. The deployed cloud's own frontend accepts null on
 * every optional job field (drift §1.6); a required property that is null still fails.
 */
ajv.addKeyword({
  keyword: 'nullMeansAbsent',
  type: 'object',
  schemaType: 'boolean',
  modifying: true,
  before: 'properties',
  validate: (enabled: boolean, data: Record<string, unknown>, parentSchema?: AnySchemaObject) => {
    if (!enabled) return true
    const required = (parentSchema?.required ?? []) as string[]
    for (const key of Object.keys(data)) if (data[key] === null && !required.includes(key)) delete data[key]
    return true
  }
})
for (const schema of all) ajv.addSchema(schema)

const compiled = new Map<string, ValidateFunction>()

/** The compiled validator of one cloud schema, by its spec name. */
export function cloudValidator (name: CloudSchemaName): ValidateFunction {
  let validate = compiled.get(name)
  if (validate === undefined) {
    validate = ajv.getSchema(name)!
    compiled.set(name, validate)
  }
  return validate
}

/** "field `jobs/0/status` must be equal to one of the allowed values" */
export function describeSchemaError (error: ErrorObject): { field: string, message: string } {
  let field = error.instancePath.replace(/^\//, '')
  if (error.keyword === 'required') {
    const missing = (error.params as { missingProperty: string }).missingProperty
    field = field === '' ? missing : `${field}/${missing}`
  }
  return { field: field === '' ? '(body)' : field, message: error.message ?? 'is invalid' }
}
