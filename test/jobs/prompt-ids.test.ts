import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { identityOf, PromptIds } from '../../src/jobs/prompt-ids.js'
import { FileStore } from '../../src/store/file.js'

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
  t.equal(ids.toClient('cloud-0'), 'cloud-0', 'forgotten in the other direction too')
  t.equal(ids.toCloud('client-4'), 'cloud-4')
  t.equal(ids.toClient('cloud-4'), 'client-4')
  const small = new PromptIds({ maxChars: 100 })
  for (let i = 0; i < 10; i++) small.remember({ cloudId: `c${i}`.padEnd(20, '-'), clientId: `k${i}`.padEnd(20, '-'), number: i })
  t.ok(small.size >= 1 && small.size <= 2, `at most 100 characters kept (${small.size} prompts)`)
  t.equal(small.toCloud('k9'.padEnd(20, '-')), 'c9'.padEnd(20, '-'), 'the newest still maps')
  t.equal(small.toCloud('k0'.padEnd(20, '-')), 'k0'.padEnd(20, '-'), 'the oldest client id maps to nothing any more')
})

t.test('numbers only grow, on the scale of a creation time in ms', async t => {
  const ids = new PromptIds()
  const before = Date.now()
  const numbers = Array.from({ length: 1000 }, () => ids.nextNumber())
  t.ok(numbers.every((n, i) => i === 0 || n > numbers[i - 1]), 'strictly increasing, even within one millisecond')
  t.ok(numbers[0] >= before)
})

t.test('with a state store, a new process maps the ids an earlier one remembered, once it has loaded them', async t => {
  const store = new FileStore(join(mkdtempSync(join(tmpdir(), 'ccp-ids-')), 'state.db'))
  t.teardown(async () => { await store.close() })
  const before = new PromptIds({ store })
  await before.remember({ cloudId: 'cloud-1', clientId: 'job', number: 1 })
  await before.remember({ cloudId: 'cloud-2', clientId: 'job', number: 2 })
  await before.remember({ cloudId: 'cloud-3', clientId: 'cloud-3', number: 3 })

  const after = new PromptIds({ store })
  t.equal(after.toCloud('job'), 'job', 'nothing in memory before a load')
  await after.load({ client: ['job', 'cloud-3', 'never-seen'] })
  t.equal(after.toCloud('job'), 'cloud-2', 'the client id answers to its newest prompt')
  t.equal(after.numberOf('cloud-3'), 3, 'a prompt known by its cloud id keeps its number')
  t.ok(after.isTaken('job'))
  t.notOk(after.isTaken('never-seen'))
  await after.load({ cloud: ['cloud-1'] })
  t.equal(after.toClient('cloud-1'), 'job')
  t.ok(after.superseded('cloud-1'), 'the older run of a reused id stays superseded')
  t.notOk(after.superseded('cloud-2'))

  const fresh = new PromptIds({ store })
  await fresh.load({ cloud: ['cloud-1'] })
  t.ok(fresh.superseded('cloud-1'), 'superseded even when only the older run was loaded')
})

t.test('with a state store, prompts forgotten from memory come back from it', async t => {
  const store = new FileStore(join(mkdtempSync(join(tmpdir(), 'ccp-ids-')), 'state.db'))
  t.teardown(async () => { await store.close() })
  const ids = new PromptIds({ store, maxPrompts: 2 })
  for (let i = 0; i < 4; i++) await ids.remember({ cloudId: `cloud-${i}`, clientId: `client-${i}`, number: i })
  t.equal(ids.toCloud('client-0'), 'client-0', 'forgotten from memory')
  await ids.load({ client: ['client-0'] })
  t.equal(ids.toCloud('client-0'), 'cloud-0')
  t.equal(ids.numberOf('cloud-0'), 0)
})
