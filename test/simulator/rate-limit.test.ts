import t from 'tap'
import { RateLimiter } from '../../src/simulator/rate-limit.js'
import { KEY, OTHER_KEY, startSim } from './fixtures/helpers.js'

t.test('with SIMULATOR_RATE_LIMIT, a key beyond its requests per minute gets 429 with Retry-After', async t => {
  const sim = await startSim(t, { rateLimit: 5 })
  const statuses: number[] = []
  for (let i = 0; i < 5; i++) statuses.push((await sim.call('/api/prompt')).status)
  t.same(statuses, [200, 200, 200, 200, 200])
  const limited = await sim.json('/api/jobs')
  t.equal(limited.status, 429)
  t.equal(limited.body.code, 'RATE_LIMITED')
  const retryAfter = Number(limited.headers.get('retry-after'))
  t.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${retryAfter} s`)
  t.equal((await sim.call('/api/prompt', { key: OTHER_KEY })).status, 200, 'the limit is per key')
  t.equal((await sim.call('/api/prompt', { key: null })).status, 401, 'a request without a key is refused as before')
})

t.test('the rate limit is off by default', async t => {
  const sim = await startSim(t)
  const statuses = await Promise.all(Array.from({ length: 200 }, async () => (await sim.call('/api/prompt')).status))
  t.ok(statuses.every(status => status === 200))
})

t.test('the window slides: requests are allowed again once the oldest leave it', async t => {
  let now = 0
  const limiter = new RateLimiter(2, 60_000, () => now)
  t.equal(limiter.take(KEY), undefined)
  now = 30_000
  t.equal(limiter.take(KEY), undefined)
  t.equal(limiter.take(KEY), 30, 'the oldest leaves the window in 30 s')
  now = 60_000
  t.equal(limiter.take(KEY), undefined, 'the first request has left the window')
  t.equal(limiter.take(KEY), 30)
  t.equal(limiter.take(OTHER_KEY), undefined)
})
