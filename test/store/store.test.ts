/** The three state stores answer the same contract; the file store survives a reopen; Redis is shared and survives outages. */
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { MemoryStore } from '../../src/store/memory.js'
import { FileStore } from '../../src/store/file.js'
import { RedisStore } from '../../src/store/redis.js'
import type { StateStore } from '../../src/store/store.js'
import { StoredSettings } from '../../src/store/settings.js'
import { startRedis } from '../fixtures/redis.js'

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

async function contract (t: Test, make: () => Promise<StateStore>): Promise<void> {
  const store = await make()
  t.teardown(async () => { await store.close() })

  t.test('records round-trip as JSON and expire', async t => {
    await store.set('ids', 'a', { cloud: 'x', n: 1 }, 60_000)
    t.same(await store.get('ids', 'a'), { cloud: 'x', n: 1 })
    t.equal(await store.get('ids', 'missing'), undefined)
    t.equal(await store.get('other', 'a'), undefined, 'namespaces are separate')
    await store.set('ids', 'short', 1, 30)
    await sleep(80)
    t.equal(await store.get('ids', 'short'), undefined, 'expired')
    await store.delete('ids', 'a')
    t.equal(await store.get('ids', 'a'), undefined, 'deleted')
  })

  t.test('a read sees the writes made before it, awaited or not (the file store commits a turn\'s writes together)', async t => {
    const writes = [store.set('turn', 'a', 1, 60_000), store.set('turn', 'b', 2, 60_000), store.delete('turn', 'a')]
    t.equal(await store.get('turn', 'b'), 2)
    t.equal(await store.get('turn', 'a'), undefined)
    await Promise.all(writes)
    await store.set('turn', 'a', 3, 60_000)
    t.equal(await store.get('turn', 'a'), 3)
  })

  t.test('the token bucket grants a burst, then asks to wait, then refuses past maxWaitMs', async t => {
    const bucket = `b-${Math.random()}`
    const first = await Promise.all([1, 2, 3].map(async () => await store.reserve(bucket, 10, 3, 1000)))
    t.same(first.map(r => r.granted), [true, true, true])
    t.same(first.map(r => r.waitMs), [0, 0, 0])
    const fourth = await store.reserve(bucket, 10, 3, 1000)
    t.ok(fourth.granted)
    t.ok(fourth.waitMs > 50 && fourth.waitMs <= 100, `waits for a refill (${fourth.waitMs} ms)`)
    const refused = await store.reserve(bucket, 10, 3, 50)
    t.notOk(refused.granted, 'a wait beyond maxWaitMs takes nothing')
    const again = await store.reserve(bucket, 10, 3, 1000)
    t.ok(again.waitMs <= 200, 'the refused reservation took no token')
  })

  t.test('messages reach subscribers of the channel only', async t => {
    const got: string[] = []
    store.subscribe('events', message => { got.push(message) })
    await sleep(50)
    // The stray message goes first: messages arrive in order, so a leak would be in `got` by the time 'one' is.
    await store.publish('elsewhere', 'two')
    await store.publish('events', 'one')
    for (let i = 0; i < 40 && got.length === 0; i++) await sleep(25)
    t.same(got, ['one'])
  })
}

t.test('memory store', async t => { await contract(t, async () => new MemoryStore()) })

t.test('memory store is bounded by record count', async t => {
  const store = new MemoryStore({ maxRecords: 3 })
  for (const key of ['a', 'b', 'c', 'd']) await store.set('n', key, key, 60_000)
  t.equal(await store.get('n', 'a'), undefined, 'the oldest record went')
  t.equal(await store.get('n', 'd'), 'd')
})

t.test('memory store is bounded by bytes (the Redis store keeps its copy of large entries in one)', async t => {
  const store = new MemoryStore({ maxBytes: 1000 })
  const entry = 'x'.repeat(300)
  for (const key of ['a', 'b', 'c', 'd']) await store.set('entry', key, entry, 60_000)
  t.equal(await store.get('entry', 'a'), undefined, 'the oldest entry went')
  t.equal(await store.get('entry', 'd'), entry)
})

t.test('file store', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'ccp-store-'))
  await contract(t, async () => new FileStore(join(dir, 'state.db')))
})

t.test('file store keeps records across a reopen and stays bounded', async t => {
  const path = join(mkdtempSync(join(tmpdir(), 'ccp-store-')), 'state.db')
  const first = new FileStore(path)
  await first.set('ids', 'client-id', 'cloud-uuid', 60_000)
  await first.set('ids', 'gone', 'x', 1)
  await first.close()
  const second = new FileStore(path, { maxRecords: 2 })
  t.teardown(async () => { await second.close() })
  t.equal(await second.get('ids', 'client-id'), 'cloud-uuid', 'survives the restart')
  t.equal(await second.get('ids', 'gone'), undefined, 'expired while closed')
  for (const key of ['k1', 'k2', 'k3']) await second.set('n', key, key, 60_000 + key.length)
  second.sweep()
  t.equal(await second.get('ids', 'client-id'), undefined, 'the soonest-expiring record went past maxRecords')
  t.equal(await second.get('n', 'k3'), 'k3')
})

t.test('redis store', async t => {
  const redis = await startRedis(t)
  await contract(t, async () => {
    const store = new RedisStore({ url: redis.url, prefix: 'contract:' })
    await store.connected()
    return store
  })
})

/** Two replicas' stores on one Redis, connected before the test goes on. */
async function twoReplicas (t: Test, url: string, prefix: string): Promise<[RedisStore, RedisStore]> {
  const a = new RedisStore({ url, prefix })
  const b = new RedisStore({ url, prefix })
  t.teardown(async () => { await a.close(); await b.close() })
  t.ok(await a.connected() && await b.connected())
  return [a, b]
}

t.test('redis store: two replicas share records, one bucket and messages', async t => {
  const redis = await startRedis(t)
  const [a, b] = await twoReplicas(t, redis.url, 'fleet:')
  await a.set('ids', 'p1', 'cloud-1', 60_000)
  t.equal(await b.get('ids', 'p1'), 'cloud-1', 'written on A, read on B')
  const grants = [await a.reserve('cloud', 1, 2, 0), await b.reserve('cloud', 1, 2, 0), await a.reserve('cloud', 1, 2, 0)]
  t.same(grants.map(g => g.granted), [true, true, false], 'the burst is the fleet\'s, not each replica\'s')
  const got: string[] = []
  b.subscribe('events', message => { got.push(message) })
  await sleep(100)
  await a.publish('events', 'from A')
  for (let i = 0; i < 40 && got.length === 0; i++) await sleep(25)
  t.same(got, ['from A'], 'published on A, heard on B')
})

t.test('redis store: a record deleted through one replica is gone on the replica that wrote it', async t => {
  const redis = await startRedis(t)
  const [a, b] = await twoReplicas(t, redis.url, 'deleted:')
  await a.set('entry', 'job-1', { json: '{}' }, 60_000)
  await b.delete('entry', 'job-1')
  t.equal(await a.get('entry', 'job-1'), undefined, 'A does not answer from its own copy')
  await b.set('entry', 'job-2', 'from B', 60_000)
  await a.set('entry', 'job-2', 'from A', 60_000)
  t.equal(await b.get('entry', 'job-2'), 'from A', 'the newest write wins for everyone')
})

t.test('redis store: serves from memory while Redis is down and catches up when it returns', async t => {
  const redis = await startRedis(t)
  const changes: Array<[boolean, boolean]> = []
  const a = new RedisStore({ url: redis.url, prefix: 'outage:', onHealthChange: (healthy, first) => { changes.push([healthy, first]) } })
  const b = new RedisStore({ url: redis.url, prefix: 'outage:' })
  t.teardown(async () => { await a.close(); await b.close() })
  t.ok(await a.connected() && await b.connected())
  await redis.stop()
  for (let i = 0; i < 40 && a.healthy; i++) await sleep(25)
  t.notOk(a.healthy, 'reports the outage')
  await a.set('ids', 'during', 'cloud-2', 60_000)
  t.equal(await a.get('ids', 'during'), 'cloud-2', 'reads its own writes from memory')
  t.ok((await a.reserve('cloud', 10, 5, 0)).granted, 'the budget still answers')
  const heard: string[] = []
  a.subscribe('events', message => { heard.push(message) })
  await a.publish('events', 'local')
  t.same(heard, ['local'], 'messages reach this replica\'s own subscribers')
  await redis.start()
  t.ok(await a.connected(5000) && await b.connected(5000), 'reconnects')
  for (let i = 0; i < 40 && await b.get('ids', 'during') === undefined; i++) await sleep(50)
  t.equal(await b.get('ids', 'during'), 'cloud-2', 'the write made during the outage reached Redis')
  t.same(changes, [[true, true], [false, false], [true, false]], 'the first connection is told apart from a return')
})

t.test('redis store: a replica started while Redis is down says so once, then that it connected', async t => {
  const redis = await startRedis(t)
  await redis.stop()
  const changes: Array<[boolean, boolean]> = []
  const store = new RedisStore({ url: redis.url, prefix: 'late:', onHealthChange: (healthy, first) => { changes.push([healthy, first]) } })
  t.teardown(async () => { await store.close() })
  for (let i = 0; i < 80 && changes.length === 0; i++) await sleep(25)
  t.same(changes, [[false, true]], 'unreachable from the start')
  await redis.start()
  t.ok(await store.connected(5000))
  t.same(changes, [[false, true], [true, false]])
})

t.test('settings on a durable store: two merges at once keep each other\'s keys', async t => {
  const store = new FileStore(join(mkdtempSync(join(tmpdir(), 'ccp-settings-')), 'state.db'))
  t.teardown(async () => { await store.close() })
  const settings = new StoredSettings(store, 3)
  await Promise.all([settings.merge({ 'Comfy.Theme': 'dark' }), settings.merge({ 'Comfy.Locale': 'fr' }), settings.merge({ 'Comfy.Zoom': 2 })])
  t.same(await settings.all(), { 'Comfy.Theme': 'dark', 'Comfy.Locale': 'fr', 'Comfy.Zoom': 2 })
  await t.rejects(settings.merge({ 'One.Too.Many': true }), { name: 'SettingsFullError' }, 'a full store refuses')
  await settings.merge({ 'Comfy.Theme': 'light' })
  t.equal(await settings.get('Comfy.Theme'), 'light', 'a refused merge does not block the next')
})
