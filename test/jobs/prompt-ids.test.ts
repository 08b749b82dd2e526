import t from 'tap'
import { identityOf, PromptIds } from '../../src/jobs/prompt-ids.js'

t.test('a client id maps to the cloud id and back; unknown ids map to themselves', async t => {
  const ids = new PromptIds()
  ids.remember({ cloudId: 'cloud-1', clientId: 'mine', number: 5 })
  t.equal(ids.toCloud('mine'), 'cloud-1')
  t.equal(ids.toClient('cloud-1'), 'mine')
  t.equal(ids.numberOf('cloud-1'), 5)
  t.equal(ids.toCloud('other'), 'other')
  t.equal(ids.toClient('cloud-2'), 'cloud-2')
  t.equal(ids.numberOf('cloud-2'), undefined)
  t.same(identityOf(ids, 'cloud-2', 99), { promptId: 'cloud-2', number: 99 }, 'unknown: the cloud id and the fallback number')
  t.ok(ids.isTaken('mine'))
  t.notOk(ids.isTaken('other'))
})

t.test('a reused client id names its newest prompt; the older one is superseded', async t => {
  const ids = new PromptIds()
  ids.remember({ cloudId: 'cloud-1', clientId: 'job', number: 1 })
  ids.remember({ cloudId: 'cloud-2', clientId: 'job', number: 2 })
  t.equal(ids.toCloud('job'), 'cloud-2')
  t.ok(ids.superseded('cloud-1'))
  t.notOk(ids.superseded('cloud-2'))
  t.equal(ids.toClient('cloud-1'), 'job', 'the old run still answers to the client id')
})

t.test('memory is bounded by prompts and by characters: the oldest are forgotten from both directions', async t => {
  const ids = new PromptIds({ maxPrompts: 3 })
  for (let i = 0; i < 5; i++) ids.remember({ cloudId: `cloud-${i}`, clientId: `client-${i}`, number: i })
  t.equal(ids.size, 3)
  t.equal(ids.toCloud('client-0'), 'client-0', 'forgotten')
  t.equal(ids.toCloud('client-4'), 'cloud-4')
  const small = new PromptIds({ maxChars: 100 })
  for (let i = 0; i < 10; i++) small.remember({ cloudId: `c${i}`.padEnd(20, '-'), clientId: `k${i}`.padEnd(20, '-'), number: i })
  t.ok(small.size <= 2, `at most 100 characters kept (${small.size} prompts)`)
  t.equal(small.toCloud('k0'.padEnd(20, '-')), 'k0'.padEnd(20, '-'), 'the oldest client id maps to nothing any more')
})

t.test('numbers only grow, on the scale of a creation time in ms', async t => {
  const ids = new PromptIds()
  const before = Date.now()
  const numbers = Array.from({ length: 1000 }, () => ids.nextNumber())
  t.ok(numbers.every((n, i) => i === 0 || n > numbers[i - 1]), 'strictly increasing, even within one millisecond')
  t.ok(numbers[0] >= before)
})
