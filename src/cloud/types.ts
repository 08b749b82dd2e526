/** TypeScript views of the cloud payloads that src/cloud/schemas.ts validates (only the fields we read). */
export type JobStatus = 'pending' | 'in_progress' | 'completed' | 'failed' | 'cancelled'
export type Json = Record<string, unknown>

export interface ExecutionError {
  node_id: string | null
  node_type: string | null
  exception_message: string
  exception_type: string
  traceback: string[]
  current_inputs: Json
  current_outputs: Json | unknown[]
  [extra: string]: unknown
}

export interface ExecutionStatus {
  status_str: string
  completed?: boolean
  messages: Array<[string, Json]>
  [extra: string]: unknown
}

export interface JobEntry {
  id: string
  status: JobStatus
  create_time: number
  execution_error?: ExecutionError
  preview_output?: Json
  outputs_count?: number
  workflow_id?: string
  execution_start_time?: number
  execution_end_time?: number
}

export interface JobsList {
  jobs: JobEntry[]
  pagination: { offset: number, limit: number, total: number, has_more: boolean, next_cursor?: string }
}

export interface JobDetail extends JobEntry {
  update_time: number
  workflow?: { prompt?: Json, extra_data?: Json }
  outputs?: Json
  execution_status?: ExecutionStatus
  execution_meta?: Json
}

export interface HistoryV2Entry {
  prompt_id: string
  create_time?: number
  workflow_id?: string
  prompt?: { priority?: number, prompt_id?: string, extra_data?: Json }
  outputs?: Json
  status?: ExecutionStatus
  meta?: Json
}

export interface HistoryV2Detail {
  prompt?: { priority?: number, prompt_id?: string, prompt?: Json, extra_data?: Json, outputs_to_execute?: string[] }
  outputs?: Json
  status?: ExecutionStatus
  meta?: Json
}

/** [position, prompt_id, API graph, output node ids, {create_time}] (notes §2.9) */
export type CloudQueueItem = [number, string, Json, string[], { create_time?: number }]

export interface QueueInfo {
  queue_running: CloudQueueItem[]
  queue_pending: CloudQueueItem[]
}
