/**
 * How long the event loop was recently blocked: a timer that should fire every intervalMs notes how
 * late it ran; /healthz reads the worst delay of the last windowMs (issue 14 rule 2).
 */
export class EventLoopWatch {
  private readonly samples: Array<{ at: number, delayMs: number }> = []
  private readonly timer: NodeJS.Timeout

  constructor (private readonly intervalMs = 250, private readonly windowMs = 10_000) {
    let expected = performance.now() + intervalMs
    this.timer = setInterval(() => {
      const now = performance.now()
      const delayMs = Math.max(0, now - expected)
      expected = now + intervalMs
      if (delayMs >= intervalMs) this.samples.push({ at: now, delayMs })
      while (this.samples.length > 0 && this.samples[0].at < now - this.windowMs) this.samples.shift()
    }, intervalMs)
    this.timer.unref()
  }

  /** the longest the loop was blocked in the last window, in ms (0 if never by more than one interval) */
  worstDelayMs (now = performance.now()): number {
    return Math.round(Math.max(0, ...this.samples.filter(sample => sample.at >= now - this.windowMs).map(sample => sample.delayMs)))
  }

  stop (): void {
    clearInterval(this.timer)
  }
}
