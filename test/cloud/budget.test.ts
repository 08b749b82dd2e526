import t from 'tap'
import { CloudBudget, type Priority } from '../../src/cloud/budget.js'
import { ProxyError } from '../../src/errors.js'

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

t.test('calls beyond the burst wait for tokens: the rate is held to maxRps', async t => {
  const budget = new CloudBudget(20)
  const started = performance.now()
  const granted: number[] = []
  await Promise.all(Array.from({ length: 30 }, async () => {
    await budget.acquire('read', 10_000)
    granted.push(performance.now() - started)
  }))
  granted.sort((a, b) => a - b)
  t.ok(granted[19] < 200, 'a burst of one second\'s worth goes at once')
  // 10 more at 20 per second: the last cannot go before about 0.5 s (timers may fire a little early).
  t.ok(granted[29] >= 450, `the 30th call went after ${Math.round(granted[29])} ms`)
})

t.test('writes go before reads that were waiting longer', async t => {
  const budget = new CloudBudget(10)
  for (let i = 0; i < 10; i++) await budget.acquire('read', 1000)
  const order: Priority[] = []
  const reads = Array.from({ length: 3 }, async () => { await budget.acquire('read', 5000); order.push('read') })
  await sleep(10)
  const write = (async () => { await budget.acquire('write', 5000); order.push('write') })()
  await Promise.all([...reads, write])
  t.same(order, ['write', 'read', 'read', 'read'])
})

t.test('a 429 pauses reads for Retry-After; writes still go; a read that cannot wait is refused at once with Retry-After', async t => {
  const budget = new CloudBudget(1000)
  budget.pause(400)
  const refused = await budget.acquire('read', 100).then(() => undefined, (error: unknown) => error)
  t.ok(refused instanceof ProxyError)
  t.equal((refused as ProxyError).statusCode, 503)
  t.equal((refused as ProxyError).type, 'cloud_rate_limited')
  t.equal((refused as ProxyError).headers['retry-after'], '1')
  const writeStarted = performance.now()
  await budget.acquire('write', 100)
  t.ok(performance.now() - writeStarted < 100, 'a submit is not paused')
  const readStarted = performance.now()
  await budget.acquire('read', 2000)
  t.ok(performance.now() - readStarted >= 250, `a read that may wait went after the pause (${Math.round(performance.now() - readStarted)} ms)`)
  t.equal(budget.pausedForMs, 0)
})

t.test('a call queued longer than it may wait is refused with 503 cloud_budget_exhausted, never left hanging', async t => {
  const budget = new CloudBudget(2)
  await budget.acquire('read', 10)
  await budget.acquire('read', 10)
  const refused = await budget.acquire('read', 50).then(() => undefined, (error: unknown) => error)
  t.equal((refused as ProxyError).type, 'cloud_budget_exhausted')
  t.ok(Number((refused as ProxyError).headers['retry-after']) >= 1)
  t.equal(budget.waiting, 0, 'the refused call left the queue')
})

t.test('a broken Retry-After cannot stop the proxy for hours; close() refuses the waiting calls', async t => {
  const budget = new CloudBudget(1000)
  budget.pause(10 * 3600_000)
  t.ok(budget.pausedForMs <= 300_000, 'capped at five minutes')
  const waiting = budget.acquire('read', 600_000).then(() => 'granted', (error: ProxyError) => error.type)
  await sleep(10)
  budget.close()
  t.equal(await waiting, 'shutting_down')
})

t.test('the observer hears of every admission and every 429', async t => {
  const seen: string[] = []
  const budget = new CloudBudget(1, { admission: (priority, outcome) => seen.push(`${priority} ${outcome}`), rateLimited: ms => seen.push(`paused ${ms}`) })
  await budget.acquire('write', 10)
  await budget.acquire('read', 10).catch(() => {})
  budget.pause(undefined)
  t.same(seen, ['write granted', 'read refused', 'paused 1000'])
})
