/**
 * How /history pages through the cloud's job list when the cloud behaves in ways neither simulator profile
 * plays (drift §2.1): the paging style is chosen from what the cloud answers, not from configuration. The
 * cloud here is a small stand-in whose page size, offset handling, cursor and total can each be switched.
 */
import t, { type Test } from 'tap'
import Fastify from 'fastify'
import type { AddressInfo } from 'node:net'
import { getJson, startProxy, testKey } from '../helpers.js'

interface CloudBehaviour {
  /** the most jobs one page holds, whatever limit asks for */
  pageSize: number
  honoursOffset: boolean
  offersCursor: boolean
  reportsTotal: boolean
}

const BASE_TIME = 1763900000000
const ids = Array.from({ length: 7 }, (_, i) => `00000000-0000-4000-8000-00000000000${i}`)

async function startCloud (t: Test, behaviour: CloudBehaviour): Promise<{ url: string, lists: string[] }> {
  const app = Fastify()
  const lists: string[] = []
  const newestFirst = [...ids].reverse()
  app.get('/api/jobs', async request => {
    lists.push(request.url)
    const query = request.query as Record<string, string | undefined>
    const offset = behaviour.honoursOffset ? Number(query.offset ?? 0) : 0
    const start = query.after !== undefined && behaviour.offersCursor ? newestFirst.indexOf(query.after) + 1 : offset
    const page = newestFirst.slice(start, start + Math.min(Number(query.limit ?? 100), behaviour.pageSize))
    const hasMore = start + page.length < newestFirst.length
    return {
      jobs: page.map(id => ({ id, status: 'completed', create_time: BASE_TIME + ids.indexOf(id) })),
      pagination: {
        offset: behaviour.honoursOffset ? offset : 0,
        limit: Number(query.limit ?? 100),
        total: behaviour.reportsTotal ? newestFirst.length : 0,
        has_more: hasMore,
        ...(behaviour.offersCursor && hasMore ? { next_cursor: page[page.length - 1] } : {})
      }
    }
  })
  app.get('/api/jobs/:id', async request => {
    const id = (request.params as { id: string }).id
    const created = BASE_TIME + ids.indexOf(id)
    return { id, status: 'completed', create_time: created, update_time: created + 1, execution_status: { status_str: 'success', completed: true, messages: [] } }
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(async () => { await app.close() })
  return { url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, lists }
}

const WINDOWS: Array<[string, number[]]> = [
  ['', [0, 1, 2, 3, 4, 5, 6]],
  ['max_items=5', [2, 3, 4, 5, 6]],
  ['offset=1&max_items=3', [1, 2, 3]],
  ['offset=4', [4, 5, 6]]
]

const CLOUDS: Array<[string, CloudBehaviour, RegExp]> = [
  ['offset paging with a real total', { pageSize: 2, honoursOffset: true, offersCursor: false, reportsTotal: true }, /offset=[1-9]/],
  ['cursor paging, offset ignored, total 0', { pageSize: 2, honoursOffset: false, offersCursor: true, reportsTotal: false }, /after=/],
  ['a real total and a cursor in offset mode too (OSS style)', { pageSize: 2, honoursOffset: true, offersCursor: true, reportsTotal: true }, /after=/],
  ['a real total, but offset ignored: the cursor reaches the window', { pageSize: 2, honoursOffset: false, offersCursor: true, reportsTotal: true }, /after=/]
]

for (const [name, behaviour, used] of CLOUDS) {
  t.test(`windows stay exact against a cloud with ${name}`, async t => {
    const cloud = await startCloud(t, behaviour)
    const proxy = await startProxy(t, { cloudUrl: cloud.url, apiKey: testKey(), listTtlMs: 0 })
    for (const [query, expected] of WINDOWS) {
      const { status, body } = await getJson(`${proxy.url}/history?${query}`)
      t.equal(status, 200, query)
      t.same(Object.keys(body), expected.map(i => ids[i]), query)
    }
    t.ok(cloud.lists.some(url => used.test(url)), `paged with ${String(used)}`)
  })
}

t.test('a cloud that ignores offset and offers no cursor gets a clear 502, never a wrong window', async t => {
  const cloud = await startCloud(t, { pageSize: 2, honoursOffset: false, offersCursor: false, reportsTotal: true })
  const proxy = await startProxy(t, { cloudUrl: cloud.url, apiKey: testKey(), listTtlMs: 0 })
  const { status, body } = await getJson(`${proxy.url}/history?max_items=5`)
  t.equal(status, 502)
  t.equal(body.error.type, 'cloud_paging_unsupported')
  t.match(body.error.message, /offset/)
})
