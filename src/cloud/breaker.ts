/**
 * A circuit breaker for the cloud: after `threshold` consecutive failures it opens, and calls
 * fail at once with a 503 instead of piling up sockets on a dead cloud; after `cooldownMs` one
 * trial call goes through (half-open), and its outcome closes or re-opens the circuit.
 */
export class CircuitBreaker {
  private failures = 0
  private openedAt: number | undefined
  private trialInFlight = false

  constructor (private readonly threshold: number, private readonly cooldownMs: number, private readonly now = Date.now) {}

  get state (): 'closed' | 'open' | 'half-open' {
    if (this.openedAt === undefined) return 'closed'
    return this.now() - this.openedAt >= this.cooldownMs ? 'half-open' : 'open'
  }

  /** Whether a call may go out now. In half-open state only one trial call at a time may. */
  allow (): boolean {
    const state = this.state
    if (state === 'closed') return true
    if (state === 'open' || this.trialInFlight) return false
    this.trialInFlight = true
    return true
  }

  success (): void {
    this.failures = 0
    this.openedAt = undefined
    this.trialInFlight = false
  }

  failure (): void {
    this.failures++
    this.trialInFlight = false
    if (this.openedAt !== undefined || this.failures >= this.threshold) this.openedAt = this.now()
  }

  /** Seconds until a trial call may go out, for Retry-After. */
  retryAfterSeconds (): number {
    return this.openedAt === undefined ? 0 : Math.max(1, Math.ceil((this.cooldownMs - (this.now() - this.openedAt)) / 1000))
  }
}
