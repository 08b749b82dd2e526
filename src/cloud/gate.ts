/**
 * A pool's connections as slots: a call takes one before it is sent and gives it back when its answer
 * is read, so that undici never queues and the wait for a connection is bounded like the call itself
 * (CLOUD_TIMEOUT_MS; issue 14 rule 2). It also tells /healthz when the pool is wedged: callers have been
 * waiting, or giving up, while no slot came free for a whole timeout.
 */
export class GateTimeoutError extends Error {
  constructor (readonly waitedMs: number) {
    super(`No connection came free within ${waitedMs} ms`)
    this.name = 'GateTimeoutError'
  }
}

interface Waiter { grant: (release: () => void) => void, timer: NodeJS.Timeout }

export class Gate {
  private active = 0
  private readonly waiters: Waiter[] = []
  private lastFreedAt = performance.now()
  private lastGaveUpAt = Number.NEGATIVE_INFINITY

  constructor (readonly capacity: number) {}

  /** A slot, within timeoutMs; the function it resolves to gives it back (once). A caller that goes away aborts its wait. */
  async acquire (timeoutMs: number, signal?: AbortSignal): Promise<() => void> {
    signal?.throwIfAborted()
    if (this.active < this.capacity && this.waiters.length === 0) {
      this.active++
      return this.releaser()
    }
    return await new Promise((resolve, reject) => {
      const leave = (): void => {
        clearTimeout(waiter.timer)
        signal?.removeEventListener('abort', abandoned)
        this.waiters.splice(this.waiters.indexOf(waiter), 1)
      }
      const abandoned = (): void => {
        leave()
        reject(signal?.reason)
      }
      const waiter: Waiter = {
        grant: release => {
          signal?.removeEventListener('abort', abandoned)
          resolve(release)
        },
        timer: setTimeout(() => {
          leave()
          this.lastGaveUpAt = performance.now()
          reject(new GateTimeoutError(timeoutMs))
        }, Math.max(0, timeoutMs))
      }
      signal?.addEventListener('abort', abandoned, { once: true })
      this.waiters.push(waiter)
    })
  }

  private releaser (): () => void {
    let released = false
    return () => {
      if (released) return
      released = true
      this.lastFreedAt = performance.now()
      const next = this.waiters.shift()
      if (next === undefined) {
        this.active--
        return
      }
      clearTimeout(next.timer)
      next.grant(this.releaser())
    }
  }

  get stats (): { capacity: number, active: number, waiting: number } {
    return { capacity: this.capacity, active: this.active, waiting: this.waiters.length }
  }

  /** true when callers waited (or gave up) while no slot came free for windowMs */
  wedged (windowMs: number, now = performance.now()): boolean {
    if (now - this.lastFreedAt < windowMs) return false
    return this.waiters.length > 0 || now - this.lastGaveUpAt < windowMs
  }
}
