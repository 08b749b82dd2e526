/**
 * Runs jobs on real timers, per account, at most `concurrency` at once; the rest stay pending, oldest first.
 * Each run walks the graph like ComfyUI's executor and sends the same WebSocket events (contract §9):
 * execution_start, execution_cached, then per node executing/progress_state (+ progress and binary previews
 * for KSampler, executed for output nodes), then execution_success | execution_error | execution_interrupted,
 * status, and finally `executing {node: null}` once the terminal job is readable over HTTP.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { coerce, executionOrder, isPlainObject, type ApiPrompt } from './nodes.js'
import { renderImage, seedFrom } from './png.js'
import type { FileStore } from './storage.js'
import { promptOf, TERMINAL, type Account, type ExecutionErrorInfo, type ExecutionMeta, type FileItem, type JobRecord, type NodeOutput, type PreviewOutput, type StatusMessage, type Store } from './store.js'
import type { SocketHub } from './ws.js'

/** Beyond this many pixels per job the simulated GPU runs out of memory (VAEDecode fails like a real OOM). */
export const MAX_PIXELS_PER_JOB = 4096 * 4096 * 4

interface Latent { width: number, height: number, batch: number, seed: string }

interface Run {
  account: Account
  job: JobRecord
  controller: AbortController
  /** set once the terminal state is written; a late timer then only unwinds */
  finished: boolean
  current: string | null
  executed: string[]
  messages: StatusMessage[]
  outputs: Record<string, NodeOutput>
  meta: Record<string, ExecutionMeta>
  states: Record<string, Record<string, unknown>>
}

/** `extra_data.simulator = {outcome: 'fail', node?, exception_type?, exception_message?}`: test-only outcome control. */
interface Outcome { node?: string, exceptionType?: string, exceptionMessage?: string }

class NodeFailure extends Error {
  constructor (readonly nodeId: string, readonly exceptionType: string, message: string) {
    super(message)
  }
}

const OOM_MESSAGE = 'Allocation on device\nThe GPU ran out of memory while running this node. Try a smaller image size or batch size.\n'

function traceback (classType: string): string[] {
  return [
    '  File "/comfyui/execution.py", line 496, in execute\n    output_data, output_ui, has_subgraph, has_pending_tasks = await get_output_data(prompt_id, unique_id, obj, input_data_all)\n',
    '  File "/comfyui/execution.py", line 315, in get_output_data\n    return_values = await _async_map_node_over_list(prompt_id, unique_id, obj, input_data_all, obj.FUNCTION)\n',
    `  File "/comfyui/nodes.py", line 1525, in ${classType === 'KSampler' ? 'sample' : 'run'}\n    raise error\n`
  ]
}

export interface ExecutorOptions { concurrency: number, stepMs: number }

export class Executor {
  private readonly runs = new Map<string, Run>()

  constructor (
    private readonly store: Store,
    private readonly files: FileStore,
    private readonly hub: SocketHub,
    private readonly options: ExecutorOptions
  ) {}

  /** A new job was queued: tell the account's sockets, then start it when a slot is free. */
  submitted (account: Account): void {
    this.sendStatus(account)
    setImmediate(() => this.pump(account))
  }

  private running (account: Account): number {
    let n = 0
    for (const run of this.runs.values()) if (run.account === account) n++
    return n
  }

  private pump (account: Account): void {
    while (this.running(account) < this.options.concurrency) {
      const next = account.byStatus('pending').find(job => !job.inert)
      if (next === undefined) return
      this.start(account, next)
    }
  }

  private start (account: Account, job: JobRecord): void {
    const now = Date.now()
    const d = job.detail
    d.status = 'in_progress'
    d.update_time = now
    d.execution_start_time = now
    const run: Run = {
      account, job, controller: new AbortController(), finished: false, current: null,
      executed: [], messages: [], outputs: {}, meta: {}, states: {}
    }
    this.runs.set(d.id, run)
    this.execute(run).catch(error => {
      if (!run.finished) this.fail(run, new NodeFailure(run.current ?? '', (error as Error).name, `${(error as Error).message}\n`))
    })
  }

  private async execute (run: Run): Promise<void> {
    const { job } = run
    const id = job.detail.id
    const prompt = promptOf(job.detail)
    this.record(run, 'execution_start', { prompt_id: id }, true, job.detail.execution_start_time)
    // Every run is a fresh worker here, so nothing comes from the cache.
    this.record(run, 'execution_cached', { nodes: [], prompt_id: id }, true)
    const order = executionOrder(prompt, job.outputsToExecute)
    const outcome = readOutcome(job.detail.workflow?.extra_data)
    const failAt = outcome === undefined ? undefined : (outcome.node !== undefined && order.includes(outcome.node) ? outcome.node : order[order.length - 1])
    const values = new Map<string, unknown[]>()
    try {
      for (const nodeId of order) {
        run.current = nodeId
        this.send(run, 'executing', { node: nodeId, display_node: nodeId, prompt_id: id })
        this.progressState(run, nodeId, 'running', 0, 1)
        if (nodeId === failAt) {
          const classType = String(prompt[nodeId].class_type)
          const oom = classType === 'KSampler'
          throw new NodeFailure(nodeId, outcome?.exceptionType ?? (oom ? 'torch.OutOfMemoryError' : 'RuntimeError'),
            outcome?.exceptionMessage ?? (oom ? OOM_MESSAGE : `Simulated failure in ${classType} (node ${nodeId})\n`))
        }
        values.set(nodeId, await this.evaluate(run, prompt, nodeId, values))
        run.executed.push(nodeId)
        this.progressState(run, nodeId, 'finished', 1, 1)
      }
    } catch (error) {
      if (run.finished) return // cancelled or reset while a timer was pending
      if (error instanceof NodeFailure) return this.fail(run, error)
      throw error
    }
    if (run.finished) return
    run.current = null
    const message = this.record(run, 'execution_success', { prompt_id: id }, false)
    this.finish(run, 'completed', message)
  }

  /** Sleeps on the run's timer; throws once the run was cancelled, even if the timer had already fired. */
  private async wait (run: Run, ms: number): Promise<void> {
    await sleep(ms, undefined, { signal: run.controller.signal })
    if (run.finished) throw new Error('run finished')
  }

  /** Simulates one node; returns its output values by slot. */
  private async evaluate (run: Run, prompt: ApiPrompt, nodeId: string, values: Map<string, unknown[]>): Promise<unknown[]> {
    const node = prompt[nodeId]
    const inputs = node.inputs ?? {}
    const input = (name: string): unknown => {
      const value = inputs[name]
      return Array.isArray(value) ? values.get(value[0] as string)?.[value[1] as number] : value
    }
    const classType = node.class_type as string
    switch (classType) {
      case 'CheckpointLoaderSimple':
        await this.wait(run, 2)
        return [{ model: input('ckpt_name') }, { clip: input('ckpt_name') }, { vae: input('ckpt_name') }]
      case 'CLIPTextEncode':
        await this.wait(run, 1)
        return [{ conditioning: input('text') }]
      case 'EmptyLatentImage': {
        await this.wait(run, 1)
        const latent: Latent = { width: Number(coerce('INT', input('width'))), height: Number(coerce('INT', input('height'))), batch: Number(coerce('INT', input('batch_size'))), seed: '0' }
        return [latent]
      }
      case 'KSampler': {
        const latent = input('latent_image') as Latent
        const seed = String(inputs.seed)
        const steps = Number(coerce('INT', inputs.steps))
        const previewEvery = Math.max(1, Math.ceil(steps / 4))
        for (let step = 1; step <= steps; step++) {
          await this.wait(run, this.options.stepMs)
          this.send(run, 'progress', { value: step, max: steps, prompt_id: run.job.detail.id, node: nodeId })
          if (step % previewEvery === 0) this.sendPreview(run, latent, `${seed}:${step}`)
        }
        return [{ ...latent, seed }]
      }
      case 'VAEDecode': {
        await this.wait(run, 1)
        const latent = input('samples') as Latent
        if (latent.width * latent.height * latent.batch > MAX_PIXELS_PER_JOB) throw new NodeFailure(nodeId, 'torch.OutOfMemoryError', OOM_MESSAGE)
        return [latent]
      }
      case 'SaveImage':
      case 'PreviewImage': {
        await this.wait(run, 1)
        const image = input('images') as Latent
        const type = classType === 'SaveImage' ? 'output' : 'temp'
        const items: FileItem[] = []
        for (let i = 0; i < image.batch; i++) {
          const bytes = renderImage(image.width, image.height, seedFrom(`${image.seed}:${i}`))
          items.push({ filename: this.files.put(run.account.key, bytes, 'png'), subfolder: '', type })
        }
        const output = { images: items }
        run.outputs[nodeId] = output
        run.meta[nodeId] = { node_id: nodeId, display_node: nodeId, parent_node: null, real_node_id: nodeId }
        this.send(run, 'executed', { node: nodeId, display_node: nodeId, output, prompt_id: run.job.detail.id })
        return []
      }
      default:
        throw new NodeFailure(nodeId, 'RuntimeError', `No simulation for node type ${classType}\n`)
    }
  }

  /** A binary PREVIEW_IMAGE frame: event type 1, image type 2 (PNG), then a small PNG (cloud-api-notes §2.12). */
  private sendPreview (run: Run, latent: Latent, seed: string): void {
    const width = Math.max(8, Math.min(64, Math.round(latent.width / 8)))
    const height = Math.max(8, Math.min(64, Math.round(latent.height / 8)))
    const imageType = Buffer.alloc(4)
    imageType.writeUInt32BE(2, 0)
    this.hub.sendBinary(run.account.key, 1, Buffer.concat([imageType, renderImage(width, height, seedFrom(seed))]))
  }

  private progressState (run: Run, nodeId: string, state: string, value: number, max: number): void {
    const id = run.job.detail.id
    run.states[nodeId] = {
      value, max, state, node_id: nodeId, prompt_id: id, display_node_id: nodeId, parent_node_id: null, real_node_id: nodeId,
      class_type: promptOf(run.job.detail)[nodeId]?.class_type
    }
    this.send(run, 'progress_state', { prompt_id: id, nodes: structuredClone(run.states) })
  }

  /** Adds a status message (ms timestamp, as ComfyUI records them) and optionally sends it. */
  private record (run: Run, type: string, data: Record<string, unknown>, send: boolean, timestamp = Date.now()): StatusMessage {
    const message: StatusMessage = [type, { ...data, timestamp }]
    run.messages.push(message)
    if (send) this.send(run, type, message[1])
    return message
  }

  private send (run: Run, type: string, data: Record<string, unknown>): void {
    this.hub.send(run.account.key, { type, data })
  }

  private sendStatus (account: Account): void {
    this.hub.send(account.key, { type: 'status', data: { status: { exec_info: { queue_remaining: account.remaining() } } } })
  }

  private fail (run: Run, failure: NodeFailure): void {
    const prompt = promptOf(run.job.detail)
    const node = prompt[failure.nodeId]
    const currentInputs: Record<string, unknown> = {}
    for (const [name, value] of Object.entries(node?.inputs ?? {})) if (!Array.isArray(value)) currentInputs[name] = [value]
    const error: ExecutionErrorInfo = {
      node_id: failure.nodeId,
      node_type: node === undefined ? null : String(node.class_type),
      exception_message: failure.message,
      exception_type: failure.exceptionType,
      traceback: traceback(String(node?.class_type)),
      current_inputs: currentInputs,
      // The spec types this as an object ("empty object if not available").
      current_outputs: {}
    }
    const message = this.record(run, 'execution_error', { prompt_id: run.job.detail.id, ...error, executed: [...run.executed] }, false)
    this.finish(run, 'failed', message, error)
  }

  /** Writes the terminal state, then sends the terminal event, status and `executing {node: null}`, in that order. */
  private finish (run: Run, status: 'completed' | 'failed' | 'cancelled', terminal: StatusMessage, error?: ExecutionErrorInfo): void {
    run.finished = true
    run.controller.abort()
    this.runs.delete(run.job.detail.id)
    // the job's end time is the time of its last status message
    const now = terminal[1].timestamp as number
    const d = run.job.detail
    Object.assign(d, {
      status,
      update_time: now,
      execution_end_time: now,
      outputs_count: Object.values(run.outputs).reduce((n, output) => n + (output.images?.length ?? 0), 0)
    })
    const preview = previewOutput(run.outputs)
    if (preview !== undefined) d.preview_output = preview
    d.outputs = run.outputs
    d.execution_status = { status_str: status === 'completed' ? 'success' : 'error', completed: status === 'completed', messages: run.messages }
    d.execution_meta = run.meta
    if (error !== undefined) d.execution_error = error
    this.hub.send(run.account.key, { type: terminal[0], data: terminal[1] })
    this.sendStatus(run.account)
    this.hub.send(run.account.key, { type: 'executing', data: { node: null, prompt_id: d.id } })
    setImmediate(() => this.pump(run.account))
  }

  /**
   * Cancels a job: false when it is already terminal. A running job is interrupted at its current node
   * (`execution_interrupted`); a pending one becomes `cancelled` without ever starting, so it has no
   * execution_status or execution times (cloud-api-notes §4.1 rule 2; §5 question 14 leaves this open).
   */
  cancel (account: Account, job: JobRecord): boolean {
    const d = job.detail
    if (TERMINAL.has(d.status)) return false
    if (d.status === 'pending') {
      Object.assign(d, { status: 'cancelled', update_time: Date.now(), outputs: {}, outputs_count: 0 })
      this.sendStatus(account)
      return true
    }
    let run = this.runs.get(d.id)
    if (run === undefined) {
      // a seeded in_progress job: nothing runs it, but it is interrupted all the same
      const start = d.execution_start_time ?? d.create_time
      run = {
        account, job, controller: new AbortController(), finished: false, current: null, executed: [],
        messages: [['execution_start', { prompt_id: d.id, timestamp: start }], ['execution_cached', { nodes: [], prompt_id: d.id, timestamp: start }]],
        outputs: structuredClone(d.outputs ?? {}), meta: structuredClone(d.execution_meta ?? {}), states: {}
      }
    }
    const nodeType = run.current === null ? null : String(promptOf(d)[run.current]?.class_type)
    const message = this.record(run, 'execution_interrupted', { prompt_id: d.id, node_id: run.current, node_type: nodeType, executed: [...run.executed] }, false)
    this.finish(run, 'cancelled', message)
    return true
  }

  /** Stops every run without events (reset and close). */
  stopAll (): void {
    for (const run of this.runs.values()) {
      run.finished = true
      run.controller.abort()
    }
    this.runs.clear()
  }
}

function readOutcome (extraData: Record<string, unknown> | undefined): Outcome | undefined {
  const control = extraData?.simulator
  if (!isPlainObject(control) || control.outcome !== 'fail') return undefined
  return {
    node: typeof control.node === 'string' ? control.node : undefined,
    exceptionType: typeof control.exception_type === 'string' ? control.exception_type : undefined,
    exceptionMessage: typeof control.exception_message === 'string' ? control.exception_message : undefined
  }
}

/** The first image, preferring saved outputs over temp previews (cloud-api-notes §3.4). */
function previewOutput (outputs: Record<string, NodeOutput>): PreviewOutput | undefined {
  for (const wanted of ['output', 'temp']) {
    for (const [nodeId, output] of Object.entries(outputs)) {
      const item = (output.images as FileItem[] | undefined)?.find(image => image.type === wanted)
      if (item !== undefined) return { ...item, nodeId, mediaType: 'images' }
    }
  }
  return undefined
}
