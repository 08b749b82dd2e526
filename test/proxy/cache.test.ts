import t from 'tap'
import { getJson, postJson, startStack, type Stack } from '../helpers.js'

function seed (stack: Stack, count: number): string[] {
  const ids: string[] = []
  for (let i = 0; i < count; i++) {
    ids.push(stack.simulator.app.simulator.seedJob(stack.key, {
      status: 'completed',
      create_time: 1763900000000 + i * 1000,
      update_time: 1763900000500 + i * 1000,
      outputs: { 9: { images: [{ filename: `${i}.png`, subfolder: '', type: 'output' }] } }
    }).id)
  }
  return ids
}

function cloudCalls (stack: Stack, prefix: string): number {
  return stack.simulator.app.simulator.requests.filter(r => r.url.startsWith(prefix)).length
}

t.test('a finished entry is served from the cache: one cloud call for many reads', async t => {
  const stack = await startStack(t)
  const [id] = seed(stack, 1)
  const first = await getJson(`${stack.url}/history/${id}`)
  for (let i = 0; i < 5; i++) t.same((await getJson(`${stack.url}/api/history/${id}`)).body, first.body)
  t.equal(cloudCalls(stack, `/api/jobs/${id}`), 1)
})

t.test('identical concurrent reads are coalesced into one cloud call', async t => {
  const stack = await startStack(t, { listTtlMs: 0, cacheMaxEntries: 0 })
  const [id] = seed(stack, 1)
  stack.simulator.app.simulator.faults.set('GET /api/jobs/:job_id', { latencyMs: 100 })
  const answers = await Promise.all(Array.from({ length: 20 }, async () => await getJson(`${stack.url}/history/${id}`)))
  t.ok(answers.every(answer => answer.body[id] !== undefined))
  t.equal(cloudCalls(stack, `/api/jobs/${id}`), 1, '20 readers, 1 call')
})

t.test('list answers are shared for LIST_TTL_MS, then fetched again', async t => {
  const stack = await startStack(t, { listTtlMs: 300 })
  seed(stack, 3)
  // Ten polls at once: one window however loaded the machine (ten in a row could outlast 300 ms).
  const polls = await Promise.all(Array.from({ length: 10 }, async () => await getJson(`${stack.url}/history`)))
  for (const poll of polls) t.equal(Object.keys(poll.body).length, 3)
  t.equal(cloudCalls(stack, '/api/jobs?'), 1, 'ten polls in one window: one list call')
  const [late] = seed(stack, 1)
  await new Promise(resolve => setTimeout(resolve, 350))
  const after = await getJson(`${stack.url}/history`)
  t.ok(after.body[late], 'a job finished meanwhile is there after one window')
  t.equal(cloudCalls(stack, '/api/jobs?'), 2)
  t.equal(cloudCalls(stack, '/api/jobs/'), 4, 'details only for the new id')
})

t.test('a submit invalidates shared answers: the job is in /queue at once', async t => {
  const stack = await startStack(t, { listTtlMs: 60_000 }, { stepMs: 50 })
  t.same((await getJson(`${stack.url}/queue`)).body.queue_pending, [])
  const { body } = await postJson(`${stack.url}/prompt`, { prompt: (await import('../helpers.js')).defaultGraph(1, 64, 64, 50) })
  const queue = (await getJson(`${stack.url}/queue`)).body
  t.ok([...queue.queue_running, ...queue.queue_pending].some((item: unknown[]) => item[1] === body.prompt_id))
})

t.test('the cache is bounded by entries and by bytes', async t => {
  const byEntries = await startStack(t, { cacheMaxEntries: 2 })
  const ids = seed(byEntries, 3)
  for (const id of ids) await getJson(`${byEntries.url}/history/${id}`)
  await getJson(`${byEntries.url}/history/${ids[0]}`)
  t.equal(cloudCalls(byEntries, `/api/jobs/${ids[0]}`), 2, 'the oldest was evicted')
  await getJson(`${byEntries.url}/history/${ids[2]}`)
  t.equal(cloudCalls(byEntries, `/api/jobs/${ids[2]}`), 1, 'the newest stayed')
  t.equal(byEntries.app.cache.size.entries, 2)

  const byBytes = await startStack(t, { cacheMaxBytes: 1500 })
  const small = seed(byBytes, 4)
  for (const id of small) await getJson(`${byBytes.url}/history/${id}`)
  t.ok(byBytes.app.cache.size.bytes <= 1500, `${byBytes.app.cache.size.bytes} bytes`)
  t.ok(byBytes.app.cache.size.entries < 4)
})

t.test('CACHE_TTL_MS is a safety net: an entry deleted elsewhere is gone after it', async t => {
  const stack = await startStack(t, { cacheTtlMs: 200 })
  const [id] = seed(stack, 1)
  t.ok((await getJson(`${stack.url}/history/${id}`)).body[id])
  // Deleted by another client of the account, not through this proxy.
  await fetch(`${stack.simulator.url}/api/history`, { method: 'POST', headers: { 'x-api-key': stack.key, 'content-type': 'application/json' }, body: JSON.stringify({ delete: [id] }) })
  await new Promise(resolve => setTimeout(resolve, 250))
  t.same((await getJson(`${stack.url}/history/${id}`)).body, {})
})
