import t from 'tap'
import { ProxyCache } from '../src/cache.js'

const options = { maxEntries: 10, maxBytes: 10_000, ttlMs: 0, listTtlMs: 1000 }

t.test('regression: a read that began before a delete cannot put the deleted entry back', async t => {
  const cache = new ProxyCache(options)
  const readStartedAt = cache.generation
  cache.deleteEntries(['a'])
  cache.setEntry('a', '{"stale":true}', readStartedAt)
  t.equal(cache.getEntry('a'), undefined)
  cache.setEntry('a', '{"fresh":true}', cache.generation)
  t.equal(cache.getEntry('a'), '{"fresh":true}')
})

t.test('shared reads: one load for concurrent callers, reused within the window, dropped on change or failure', async t => {
  const cache = new ProxyCache(options)
  let loads = 0
  const load = async (): Promise<number> => { loads++; await new Promise(resolve => setTimeout(resolve, 20)); return loads }
  t.same(await Promise.all([cache.shared('k', load), cache.shared('k', load), cache.shared('k', load)]), [1, 1, 1])
  t.equal(await cache.shared('k', load), 1, 'reused within the window')
  cache.changed()
  t.equal(await cache.shared('k', load), 2, 'a change drops shared answers')
  await t.rejects(cache.shared('bad', async () => { throw new Error('boom') }))
  t.equal(await cache.shared('bad', async () => 'ok'), 'ok', 'a failure is not kept')
  t.equal(await cache.shared('once', load, 0), 3)
  t.equal(await cache.shared('once', load, 0), 4, 'ttl 0 shares only the in-flight call')
})

t.test('hits and misses are counted; a disabled cache stores nothing', async t => {
  const cache = new ProxyCache(options)
  cache.getEntry('x')
  cache.setEntry('x', '{}', cache.generation)
  cache.getEntry('x')
  t.same([cache.hits, cache.misses], [1, 1])
  const off = new ProxyCache({ ...options, maxEntries: 0 })
  off.setEntry('x', '{}', off.generation)
  t.equal(off.getEntry('x'), undefined)
  t.same(off.size, { entries: 0, bytes: 0 })
})
