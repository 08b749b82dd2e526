/** Runs fn over items with at most `limit` calls in flight; results keep the items' order. */
export async function mapLimit<T, R> (items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length)
  let next = 0
  async function worker (): Promise<void> {
    while (next < items.length) {
      const index = next++
      results[index] = await fn(items[index])
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  return results
}

/** At most `limit` tasks run at once; the others wait their turn, in order. */
export class Limiter {
  private running = 0
  private readonly waiting: Array<() => void> = []

  constructor (private readonly limit: number) {}

  async run<T> (task: () => Promise<T>): Promise<T> {
    if (this.running < this.limit) this.running++
    else await new Promise<void>(resolve => { this.waiting.push(resolve) })
    try {
      return await task()
    } finally {
      const next = this.waiting.shift()
      if (next !== undefined) next()
      else this.running--
    }
  }
}
