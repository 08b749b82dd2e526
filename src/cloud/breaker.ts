/**
 * A circuit breaker for the cloud: after `threshold` consecutive failures it opens, and calls
 * fail at once with a 503 instead of piling up sockets on a dead cloud; after `cooldownMs` one
 * trial call goes through (half-open), and its outcome closes or re-opens the circuit.
 */
export class CircuitBreaker {
  private failures = 0
  private openedAt: number | undefined
  private trialStartedAt: number | undefined

  constructor (private readonly threshold: number, private readonly cooldownMs: number, private readonly now = Date.now) {}

  get state (): 'closed' | 'open' | 'half-open' {
    if (this.openedAt === undefined) return 'closed'
    return this.now() - this.openedAt >= this.cooldownMs ? 'half-open' : 'open'
  }

  /** Whether a call may go out now. In half-open state only one trial call at a time may. */
  allow (): boolean {
    const state = this.state
    if (state === 'closed') return true
    if (state === 'open') return false
    // One trial at a time; a trial that never reported back (its caller vanished) gives way after a cooldown.
    const now = this.now()
    if (this.trialStartedAt !== undefined && now - this.trialStartedAt < this.cooldownMs) return false
    this.trialStartedAt = now
    return true
  }

  success (): void {
    this.failures = 0
    this.openedAt = undefined
    this.trialStartedAt = undefined
  }

  failure (): void {
    this.failures++
    this.trialStartedAt = undefined
    if (this.openedAt !== undefined || this.failures >= this.threshold) this.openedAt = this.now()
  }

  /** Seconds until a trial call may go out, for Retry-After. */
  retryAfterSeconds (): number {
    return this.openedAt === undefined ? 0 : Math.max(1, Math.ceil((this.cooldownMs - (this.now() - this.openedAt)) / 1000))
  }
}
