/** Pure mapping of the cloud queue to local GET /queue (contract §6.1, notes §2.9, §4.7). */
import type { CloudQueueItem, Json, QueueInfo } from '../cloud/types.js'
import { localExtraData, toMs, type LocalPromptTuple } from './history.js'

export interface LocalQueue {
  queue_running: LocalPromptTuple[]
  queue_pending: LocalPromptTuple[]
}

function isObject (value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** What the proxy knows of a queued prompt it submitted. */
export interface KnownPrompt {
  /** the id its client knows it by */
  promptId: string
  number?: number
  extraData?: Json
}

/**
 * Cloud [position, prompt_id, workflow, output ids, {create_time}] → local
 * [number, prompt_id, prompt, extra_data, outputs_to_execute]. number is the prompt's own when this
 * proxy submitted it, else its submission time, as in /history, so it is stable while the queue
 * drains; extra_data is what this proxy submitted, when it did (the cloud queue does not carry it).
 */
export function localQueueItem (item: CloudQueueItem, known?: KnownPrompt): LocalPromptTuple {
  const [position, promptId, workflow, outputIds, meta] = item
  const createTime = typeof meta?.create_time === 'number' ? toMs(meta.create_time) : undefined
  // The spec calls [2] the "full workflow"; accept the {prompt, extra_data} container too (notes §3.5, §5 q4).
  const container = isObject(workflow) && isObject(workflow.prompt) ? workflow : undefined
  const prompt = container !== undefined ? container.prompt as Json : workflow ?? {}
  const extraData = known?.extraData ?? (container !== undefined && isObject(container.extra_data) ? container.extra_data : undefined)
  return [known?.number ?? createTime ?? position, known?.promptId ?? promptId, prompt, localExtraData(extraData, createTime), outputIds ?? []]
}

/**
 * Pending prompts in local heap order: by number, so a `front` prompt (a negative number) comes
 * first (observed finding 17). A sorted list is a valid heap; the cloud's own order breaks ties.
 */
export function localQueue (queue: QueueInfo, knownPrompt: (cloudId: string) => KnownPrompt | undefined): LocalQueue {
  const map = (item: CloudQueueItem): LocalPromptTuple => localQueueItem(item, knownPrompt(item[1]))
  const pending = queue.queue_pending.map(map).map((tuple, index) => ({ tuple, index }))
  pending.sort((a, b) => a.tuple[0] - b.tuple[0] || a.index - b.index)
  return { queue_running: queue.queue_running.map(map), queue_pending: pending.map(({ tuple }) => tuple) }
}
