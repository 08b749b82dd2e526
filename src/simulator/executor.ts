/**
 * Runs jobs on real timers, per account, at most `concurrency` at once; the rest stay pending, oldest first.
 * Each run walks the graph like ComfyUI's executor and sends the same WebSocket events (contract §9):
 * execution_start, execution_cached, then per node executing/progress_state (+ progress and binary previews
 * for KSampler, executed for output nodes), then execution_success | execution_error | execution_interrupted,
 * status, and finally `executing {node: null}` once the terminal job is readable over HTTP.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import type { Catalog } from './catalog.js'
import { executionOrder, isPlainObject, type ApiPrompt } from './nodes.js'
import { formatInput, runNode, type NodeContext } from './runtime.js'
import type { FileStore } from './storage.js'
import { promptOf, TERMINAL, type Account, type ExecutionErrorInfo, type ExecutionMeta, type FileItem, type JobRecord, type NodeOutput, type PreviewOutput, type StatusMessage, type Store } from './store.js'
import { NodeException, OOM_MESSAGE } from './tensor.js'
import type { SocketHub } from './ws.js'
import { INTERRUPT_EXCEPTION, type SimulatorProfile } from './profile.js'

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
  /** the node inputs of the running node, for execution_error's current_inputs */
  inputs: Record<string, unknown[]>
}

/** A node's results kept between prompts: its output values and what it showed (`executed.output`). */
interface CachedNode { outputs: unknown[], ui?: NodeOutput }

/** `extra_data.simulator = {outcome: 'fail', node?, exception_type?, exception_message?}`: test-only outcome control. */
interface Outcome { node?: string, exceptionType?: string, exceptionMessage?: string }

class NodeFailure extends Error {
  constructor (readonly nodeId: string, readonly exceptionType: string, message: string) {
    super(message)
  }
}


function traceback (classType: string): string[] {
  return [
    '  File "/comfyui/execution.py", line 496, in execute\n    output_data, output_ui, has_subgraph, has_pending_tasks = await get_output_data(prompt_id, unique_id, obj, input_data_all)\n',
    '  File "/comfyui/execution.py", line 315, in get_output_data\n    return_values = await _async_map_node_over_list(prompt_id, unique_id, obj, input_data_all, obj.FUNCTION)\n',
    `  File "/comfyui/nodes.py", line 1525, in ${classType === 'KSampler' ? 'sample' : 'run'}\n    raise error\n`
  ]
}

/**
 * ComfyUI's input signature of every node: its class and widget values, with each link replaced by the
 * signature of the node it comes from. Equal signatures mean equal results (classic cache, finding 26).
 */
function signatures (prompt: ApiPrompt): Map<string, string> {
  const memo = new Map<string, string>()
  const of = (id: string, depth = 0): string => {
    const known = memo.get(id)
    if (known !== undefined) return known
    if (depth > 1000 || prompt[id] === undefined) return `missing:${id}`
    const inputs = prompt[id].inputs ?? {}
    const parts = Object.keys(inputs).sort().map(name => {
      const value = inputs[name]
      return [name, Array.isArray(value) && typeof value[0] === 'string' ? ['link', of(value[0], depth + 1), value[1]] : value]
    })
    const signature = JSON.stringify([prompt[id].class_type, parts])
    memo.set(id, signature)
    return signature
  }
  for (const id of Object.keys(prompt)) of(id)
  return memo
}

export interface ExecutorOptions {
  concurrency: number
  stepMs: number
  catalog: Catalog
  /** finished jobs kept per account; older ones are forgotten with their files */
  maxJobs: number
  profile: SimulatorProfile
}

export class Executor {
  private readonly runs = new Map<string, Run>()
  /** per account: the results of the nodes of its latest prompts, by signature */
  private readonly caches = new Map<Account, Map<string, CachedNode>>()
  /** the stored files each job's outputs name, released when the job is forgotten */
  private readonly jobFiles = new Map<string, string[]>()

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
      executed: [], messages: [], outputs: {}, meta: {}, states: {}, inputs: {}
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
    const order = executionOrder(prompt, job.outputsToExecute)
    const outcome = readOutcome(job.detail.workflow?.extra_data)
    const failAt = outcome === undefined ? undefined : (outcome.node !== undefined && order.includes(outcome.node) ? outcome.node : order[order.length - 1])
    // Like ComfyUI's classic cache: what the previous prompt computed stays unless this prompt does not use it.
    // A job with a test outcome runs in full, so the failure happens where it was asked for.
    const sigs = signatures(prompt)
    let cache = this.caches.get(run.account)
    if (cache === undefined) this.caches.set(run.account, cache = new Map())
    const used = new Set(sigs.values())
    for (const [key, node] of cache) if (!used.has(key)) this.uncache(cache, key, node)
    const cached = outcome === undefined ? cache : new Map<string, CachedNode>()
    this.record(run, 'execution_cached', { nodes: Object.keys(prompt).filter(node => cached.has(sigs.get(node)!)), prompt_id: id }, true)
    const values = new Map<string, unknown[]>()
    try {
      for (const nodeId of order) {
        const hit = cached.get(sigs.get(nodeId)!)
        if (hit !== undefined) {
          values.set(nodeId, hit.outputs)
          run.executed.push(nodeId)
          if (hit.ui !== undefined) this.showOutput(run, nodeId, hit.ui)
          continue
        }
        run.current = nodeId
        this.progressState(run, nodeId, 'running', 0, 1)
        this.send(run, 'executing', { node: nodeId, display_node: nodeId, prompt_id: id })
        if (nodeId === failAt) {
          const classType = String(prompt[nodeId].class_type)
          const oom = classType === 'KSampler'
          run.inputs = this.currentInputs(prompt, nodeId, values)
          throw new NodeFailure(nodeId, outcome?.exceptionType ?? (oom ? 'torch.OutOfMemoryError' : 'RuntimeError'),
            outcome?.exceptionMessage ?? (oom ? `${OOM_MESSAGE}\n` : `Simulated failure in ${classType} (node ${nodeId})\n`))
        }
        const result = await this.evaluate(run, prompt, nodeId, values)
        // Cancelled or reset while the node awaited something other than the run's timer (sharp, an encoder).
        if (run.finished) return
        values.set(nodeId, result.outputs)
        this.cache(cache, sigs.get(nodeId)!, result)
        run.executed.push(nodeId)
        if (result.ui !== undefined) this.showOutput(run, nodeId, result.ui)
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

  /** The values of a node's inputs: linked outputs or (already converted) widget values. */
  private inputsOf (prompt: ApiPrompt, nodeId: string, values: Map<string, unknown[]>): Record<string, unknown> {
    const args: Record<string, unknown> = {}
    for (const [name, value] of Object.entries(prompt[nodeId].inputs ?? {})) {
      args[name] = Array.isArray(value) ? values.get(value[0] as string)?.[value[1] as number] : value
    }
    return args
  }

  /** execution_error's current_inputs: every input, linked ones too, as `[str(value)]` (finding 12). */
  private currentInputs (prompt: ApiPrompt, nodeId: string, values: Map<string, unknown[]>): Record<string, unknown[]> {
    const info = this.options.catalog.get(String(prompt[nodeId].class_type))
    const specs = { ...info?.input.required, ...info?.input.optional }
    const formatted: Record<string, unknown[]> = {}
    for (const [name, value] of Object.entries(this.inputsOf(prompt, nodeId, values))) {
      const type = specs[name]?.[0]
      formatted[name] = [formatInput(value, typeof type === 'string' ? type : 'COMBO')]
    }
    return formatted
  }

  /** Runs one node; a Python-style exception from it fails the job at this node. */
  private async evaluate (run: Run, prompt: ApiPrompt, nodeId: string, values: Map<string, unknown[]>): Promise<CachedNode> {
    const classType = String(prompt[nodeId].class_type)
    const info = this.options.catalog.get(classType)
    const extraData = run.job.detail.workflow?.extra_data
    const ctx: NodeContext = {
      nodeId,
      prompt,
      extraPngInfo: isPlainObject(extraData?.extra_pnginfo) ? extraData.extra_pnginfo : undefined,
      models: this.options.catalog.models,
      stepMs: this.options.stepMs,
      wait: async ms => { await this.wait(run, ms) },
      progress: (value, max) => {
        this.progressState(run, nodeId, 'running', value, max)
        this.send(run, 'progress', { value, max, prompt_id: run.job.detail.id, node: nodeId })
      },
      preview: png => this.hub.sendPreview(run.account.key, png, {
        node_id: nodeId, prompt_id: run.job.detail.id, display_node_id: nodeId, parent_node_id: null, real_node_id: nodeId
      }),
      save: (bytes, ext, type) => {
        if (run.finished) throw new Error('run finished')
        const filename = this.files.put(run.account.key, bytes, ext)
        this.fileOf(run, filename)
        return { filename, subfolder: '', type }
      },
      upload: name => this.files.upload(run.account.key, name)
    }
    run.inputs = this.currentInputs(prompt, nodeId, values)
    try {
      const specs = { ...info?.input.required, ...info?.input.optional }
      const inputs = Object.fromEntries(Object.entries(specs).map(([name, spec]) => [name, typeof spec[0] === 'string' ? spec[0] : 'COMBO']))
      const result = await runNode(classType, { inputs, outputs: info?.output ?? [] }, this.inputsOf(prompt, nodeId, values), ctx)
      return { outputs: result.outputs, ...(result.ui === undefined ? {} : { ui: result.ui as NodeOutput }) }
    } catch (error) {
      if (!(error instanceof NodeException)) throw error
      throw new NodeFailure(nodeId, error.exceptionType, `${error.message}\n`)
    }
  }

  /** The files an output names. */
  private filesOf (ui: NodeOutput | undefined): string[] {
    return Object.values(ui ?? {}).flat().filter(isFile).map(file => file.filename)
  }

  /** A cached output holds its files, so that a job reusing it names files that still exist. */
  private cache (cache: Map<string, CachedNode>, key: string, node: CachedNode): void {
    const previous = cache.get(key)
    if (previous !== undefined) this.uncache(cache, key, previous)
    for (const name of this.filesOf(node.ui)) this.files.retain(name)
    cache.set(key, node)
  }

  private uncache (cache: Map<string, CachedNode>, key: string, node: CachedNode): void {
    cache.delete(key)
    for (const name of this.filesOf(node.ui)) this.files.release(name)
  }

  /** Records a file a job's outputs name (a cached output is named again by the job that reuses it). */
  private fileOf (run: Run, filename: string): void {
    const list = this.jobFiles.get(run.job.detail.id)
    if (list === undefined) this.jobFiles.set(run.job.detail.id, [filename])
    else list.push(filename)
  }

  /** An output node's result: kept for history and sent as `executed`. */
  private showOutput (run: Run, nodeId: string, ui: NodeOutput): void {
    for (const filename of this.filesOf(ui)) {
      if (this.jobFiles.get(run.job.detail.id)?.includes(filename) === true) continue
      this.files.retain(filename)
      this.fileOf(run, filename)
    }
    run.outputs[nodeId] = ui
    run.meta[nodeId] = { node_id: nodeId, display_node: nodeId, parent_node: null, real_node_id: nodeId }
    this.send(run, 'executed', { node: nodeId, display_node: nodeId, output: ui, prompt_id: run.job.detail.id })
  }

  /** progress_state: every node seen so far, with local's keys only (observed finding 25). */
  private progressState (run: Run, nodeId: string, state: string, value: number, max: number): void {
    const id = run.job.detail.id
    run.states[nodeId] = { value, max, state, node_id: nodeId, prompt_id: id, display_node_id: nodeId, parent_node_id: null, real_node_id: nodeId }
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
    const error: ExecutionErrorInfo = {
      node_id: failure.nodeId,
      node_type: node === undefined ? null : String(node.class_type),
      exception_message: failure.message,
      exception_type: failure.exceptionType,
      traceback: traceback(String(node?.class_type)),
      current_inputs: run.inputs,
      current_outputs: []
    }
    // local's key order (observed finding 12)
    const { node_id: nodeId, node_type: nodeType, ...rest } = error
    const message = this.record(run, 'execution_error', { prompt_id: run.job.detail.id, node_id: nodeId, node_type: nodeType, executed: [...run.executed], ...rest }, false)
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
      outputs_count: Object.values(run.outputs).reduce((n, output) => n + Object.values(output).flat().filter(isFile).length, 0)
    })
    const preview = previewOutput(run.outputs)
    if (preview !== undefined) d.preview_output = preview
    d.outputs = run.outputs
    if (!withoutExecutionStatus(d.workflow?.extra_data)) {
      d.execution_status = { status_str: status === 'completed' ? 'success' : 'error', completed: status === 'completed', messages: run.messages }
    }
    d.execution_meta = run.meta
    if (error !== undefined) d.execution_error = error
    this.hub.send(run.account.key, { type: terminal[0], data: terminal[1] })
    this.sendStatus(run.account)
    this.hub.send(run.account.key, { type: 'executing', data: { node: null, prompt_id: d.id } })
    this.forgetOld(run.account)
    setImmediate(() => this.pump(run.account))
  }

  /** Keeps at most `maxJobs` finished jobs per account: older ones are forgotten, oldest first, like a cloud account's retention. */
  private forgetOld (account: Account): void {
    const finished = account.list().filter(job => TERMINAL.has(job.detail.status))
    for (const job of finished.slice(0, Math.max(0, finished.length - this.options.maxJobs))) this.forget(account, job.detail.id)
  }

  /** Forgets a finished job (retention, or a delete from history) with its hold on the files its outputs name. */
  forget (account: Account, jobId: string): void {
    account.jobs.delete(jobId)
    for (const name of this.jobFiles.get(jobId) ?? []) this.files.release(name)
    this.jobFiles.delete(jobId)
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
      this.forgetOld(account)
      return true
    }
    let run = this.runs.get(d.id)
    if (run === undefined) {
      // a seeded in_progress job: nothing runs it, but it is interrupted all the same
      const start = d.execution_start_time ?? d.create_time
      run = {
        account, job, controller: new AbortController(), finished: false, current: null, executed: [],
        messages: [['execution_start', { prompt_id: d.id, timestamp: start }], ['execution_cached', { nodes: [], prompt_id: d.id, timestamp: start }]],
        outputs: structuredClone(d.outputs ?? {}), meta: structuredClone(d.execution_meta ?? {}), states: {}, inputs: {}
      }
    }
    const nodeType = run.current === null ? null : String(promptOf(d)[run.current]?.class_type)
    const message = this.record(run, 'execution_interrupted', { prompt_id: d.id, node_id: run.current, node_type: nodeType, executed: [...run.executed] }, false)
    if (this.options.profile === 'current') {
      // The deployed cloud ends an interrupted run as failed with ComfyUI's interrupt exception (drift §2.2g).
      this.finish(run, 'failed', message, {
        node_id: run.current,
        node_type: nodeType,
        exception_message: 'Processing interrupted',
        exception_type: INTERRUPT_EXCEPTION,
        traceback: [],
        current_inputs: {},
        current_outputs: {}
      })
    } else {
      this.finish(run, 'cancelled', message)
    }
    return true
  }

  /** Stops every run without events (reset and close). */
  stopAll (): void {
    for (const run of this.runs.values()) {
      run.finished = true
      run.controller.abort()
    }
    this.runs.clear()
    this.caches.clear()
    this.jobFiles.clear()
  }
}

/**
 * `extra_data.simulator = {execution_status: 'absent'}`: the job finishes without an execution_status, as the
 * cloud records infrastructure failures (cloud-api-notes §4.1), in its jobs and history_v2 views alike.
 */
function withoutExecutionStatus (extraData: Record<string, unknown> | undefined): boolean {
  const control = extraData?.simulator
  return isPlainObject(control) && control.execution_status === 'absent'
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

/** An output item that is a file (`animated: [true]` and texts are not). */
const isFile = (item: unknown): item is FileItem => isPlainObject(item) && typeof item.filename === 'string'

/** The first image, preferring saved outputs over temp previews; other media when there is no image (cloud-api-notes §3.4). */
function previewOutput (outputs: Record<string, NodeOutput>): PreviewOutput | undefined {
  for (const media of ['images', 'audio']) {
    for (const wanted of ['output', 'temp']) {
      for (const [nodeId, output] of Object.entries(outputs)) {
        const item = output[media]?.filter(isFile).find(file => file.type === wanted)
        if (item !== undefined) return { ...item, nodeId, mediaType: media }
      }
    }
  }
  return undefined
}
