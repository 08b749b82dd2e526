import t from 'tap'
import { Limiter } from '../src/concurrency.js'

t.test('a Limiter runs at most its limit at once, the rest in order, and frees a slot when a task fails', async t => {
  const limiter = new Limiter(2)
  let running = 0
  let peak = 0
  const order: number[] = []
  const task = (i: number) => async () => {
    running++
    peak = Math.max(peak, running)
    await new Promise(resolve => setTimeout(resolve, 5))
    running--
    order.push(i)
    if (i === 1) throw new Error('boom')
    return i
  }
  const results = await Promise.allSettled([0, 1, 2, 3, 4].map(async i => await limiter.run(task(i))))
  t.equal(peak, 2)
  t.same(results.map(r => r.status), ['fulfilled', 'rejected', 'fulfilled', 'fulfilled', 'fulfilled'])
  t.same(order.slice(0, 2).sort(), [0, 1], 'the first two ran first')
  t.equal(await limiter.run(async () => 'free'), 'free', 'every slot was given back')
})
