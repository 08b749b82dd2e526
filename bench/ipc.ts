/**
 * A tiny request/answer protocol over the IPC channel of a forked child: the benchmark's servers run
 * in child processes, so the load generator (autocannon, in the parent) never shares their event loop.
 */
import { fork, type ChildProcess } from 'node:child_process'

interface Call { id: number, cmd: string, args: unknown }
interface Answer { id: number, ok: boolean, result?: unknown, error?: string }

export type Handlers = Record<string, (args: any) => Promise<unknown>>

/** Child side: answers the parent's calls until it disconnects (then the process exits, so no child outlives the harness). */
export function serveCalls (handlers: Handlers): void {
  if (process.send === undefined) throw new Error('bench/servers must be started by the harness (it needs an IPC channel)')
  process.on('message', (message: Call) => {
    const handler = handlers[message.cmd]
    const reply = (answer: Answer): void => { process.send?.(answer) }
    if (handler === undefined) {
      reply({ id: message.id, ok: false, error: `unknown command ${message.cmd}` })
      return
    }
    handler(message.args).then(
      result => { reply({ id: message.id, ok: true, result }) },
      (error: Error) => { reply({ id: message.id, ok: false, error: error.stack ?? String(error) }) }
    )
  })
  process.on('disconnect', () => { process.exit(0) })
}

export class ChildServer {
  private readonly child: ChildProcess
  private nextId = 0
  private readonly pending = new Map<number, { resolve: (value: unknown) => void, reject: (error: Error) => void, timer: NodeJS.Timeout }>()
  /** the last lines the child wrote, for error messages */
  private output = ''
  private exited = false

  constructor (readonly role: string, script: URL, execArgv: string[]) {
    this.child = fork(script, [role], { execArgv, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] })
    const keep = (chunk: Buffer): void => { this.output = (this.output + chunk.toString()).slice(-4000) }
    this.child.stdout?.on('data', keep)
    this.child.stderr?.on('data', keep)
    this.child.on('message', (answer: Answer) => {
      const waiting = this.pending.get(answer.id)
      if (waiting === undefined) return
      this.pending.delete(answer.id)
      clearTimeout(waiting.timer)
      if (answer.ok) waiting.resolve(answer.result)
      else waiting.reject(new Error(`${role}: ${answer.error ?? 'failed'}`))
    })
    this.child.on('exit', (code, signal) => {
      this.exited = true
      for (const [id, waiting] of this.pending) {
        clearTimeout(waiting.timer)
        waiting.reject(new Error(`${role} child exited (${signal ?? code}) during a call\n${this.output}`))
        this.pending.delete(id)
      }
    })
  }

  get pid (): number | undefined {
    return this.child.pid
  }

  async call<T> (cmd: string, args: unknown = {}, timeoutMs = 60_000): Promise<T> {
    if (this.exited) throw new Error(`${this.role} child has exited\n${this.output}`)
    const id = ++this.nextId
    return await new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id)
        reject(new Error(`${this.role}: ${cmd} took more than ${timeoutMs} ms`))
      }, timeoutMs)
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject, timer })
      this.child.send({ id, cmd, args } satisfies Call)
    })
  }

  /** Asks the child to close its servers, then makes sure it is gone. */
  async stop (): Promise<void> {
    if (this.exited) return
    const gone = new Promise<void>(resolve => { this.child.once('exit', () => { resolve() }) })
    try {
      await this.call('stop', {}, 5_000)
    } catch {}
    if (!this.exited && this.child.connected) this.child.disconnect()
    const timer = setTimeout(() => { if (!this.exited) this.child.kill('SIGKILL') }, 5_000)
    await gone
    clearTimeout(timer)
  }
}
