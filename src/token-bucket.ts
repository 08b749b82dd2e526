/**
 * A token bucket in one process: refilled at a rate, holding at most `burst`. The cloud budget takes
 * tokens from one (writes before reads, see cloud/budget.ts); the memory and file stores reserve from
 * them for the fleet budget, and the Redis store while Redis is down.
 */
export interface Reservation {
  /** whether a token was taken; false when the wait would exceed the caller's limit */
  granted: boolean
  /** how long the caller must wait before using the token (or would have had to) */
  waitMs: number
}

export class TokenBucket {
  private tokens: number
  private updated: number

  constructor (private readonly now: () => number = Date.now, initial = 0) {
    this.tokens = initial
    this.updated = now()
  }

  /** The tokens in the bucket now (fractions included). */
  level (ratePerSecond: number, burst: number): number {
    const now = this.now()
    this.tokens = Math.min(burst, this.tokens + (now - this.updated) * ratePerSecond / 1000)
    this.updated = now
    return this.tokens
  }

  /** Takes one token that level() said is there. */
  take (): void {
    this.tokens--
  }

  /** Takes one token now or, in order, from the future: the caller waits `waitMs`, unless that exceeds `maxWaitMs`. */
  reserve (ratePerSecond: number, burst: number, maxWaitMs: number): Reservation {
    const after = this.level(ratePerSecond, burst) - 1
    const waitMs = after >= 0 ? 0 : Math.ceil(-after * 1000 / ratePerSecond)
    if (waitMs > maxWaitMs) return { granted: false, waitMs }
    this.tokens = after
    return { granted: true, waitMs }
  }
}
