/**
 * A per-key request rate limit like Comfy Cloud's (drift §1.4: 429 with Retry-After, per account):
 * at most `limit` requests in any sliding window of `windowMs`.
 */
export class RateLimiter {
  /** per key, the times of the requests let through in the current window, oldest first */
  private readonly recent = new Map<string, number[]>()

  constructor (private readonly limit: number, private readonly windowMs: number, private readonly now = Date.now) {}

  /** Counts a request; undefined when it may go ahead, else the seconds until it may (Retry-After). */
  take (key: string): number | undefined {
    const now = this.now()
    let times = this.recent.get(key)
    if (times === undefined) this.recent.set(key, times = [])
    let expired = 0
    while (expired < times.length && times[expired] <= now - this.windowMs) expired++
    if (expired > 0) times.splice(0, expired)
    if (times.length < this.limit) {
      times.push(now)
      return undefined
    }
    return Math.max(1, Math.ceil((times[0] + this.windowMs - now) / 1000))
  }

  clear (): void {
    this.recent.clear()
  }
}
