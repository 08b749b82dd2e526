/**
 * The cloud budget on real loopback HTTP (issue 9 rule 4): one shared back-off on 429, answers from
 * memory while paused, 503 with Retry-After for the rest, CLOUD_MAX_RPS with submits first.
 */
import t from 'tap'
import { defaultGraph, getJson, postJson, runJob, startStack } from '../helpers.js'

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

t.test('429 with Retry-After: 2 on every route: no request for 2 s, answers from memory, 503 with Retry-After for the rest', async t => {
  const stack = await startStack(t, { cloudTimeoutMs: 1_000, listTtlMs: 200 }, { stepMs: 1 })
  const sim = stack.simulator.app.simulator
  // What the proxy knows before the cloud starts refusing: a finished entry, an unfinished job, the queue.
  const { promptId: finished } = await runJob(stack.url)
  const pending = sim.seedJob(stack.key, { status: 'pending', workflow: { prompt: defaultGraph(5) } })
  t.same((await getJson(`${stack.url}/history/${pending.id}`)).body, {})
  t.equal((await getJson(`${stack.url}/queue`)).body.queue_pending.length, 1)
  t.same((await getJson(`${stack.url}/prompt`)).body, { exec_info: { queue_remaining: 1 } })

  sim.faults.set('*', { status: 429, retryAfter: 2 })
  await sleep(250) // every shared answer is now older than LIST_TTL_MS
  const first = await getJson(`${stack.url}/history/00000000-0000-4000-8000-00000000000a`)
  const pausedAt = Date.now()
  const calls = sim.requests.length
  t.equal(first.status, 503)
  t.equal(first.body.error.type, 'cloud_rate_limited')
  t.equal(first.headers.get('retry-after'), '2')

  // Reads that cannot be answered from memory: refused at once while the pause outlasts CLOUD_TIMEOUT_MS, else they
  // wait for its end (and meet the 429 again). Either way 503 with Retry-After, and nothing is sent before the pause ends.
  const refusals: Array<Promise<[string, Awaited<ReturnType<typeof getJson>>]>> = []
  while (Date.now() < pausedAt + 1_200) {
    const fromMemory = await Promise.all([
      getJson(`${stack.url}/history/${finished}`),
      getJson(`${stack.url}/history/${pending.id}`),
      getJson(`${stack.url}/prompt`),
      getJson(`${stack.url}/api/queue`)
    ])
    t.ok(fromMemory[0].body[finished], 'a cached entry')
    t.same(fromMemory[1].body, {}, 'a job known to be unfinished')
    t.same(fromMemory[2].body, { exec_info: { queue_remaining: 1 } }, 'queue_remaining from the tracker')
    t.equal(fromMemory[3].body.queue_pending[0][1], pending.id, 'the last queue seen')
    for (const path of ['/history/00000000-0000-4000-8000-00000000000b', '/history?max_items=1', '/object_info', '/system_stats']) {
      refusals.push(getJson(`${stack.url}${path}`).then(answer => [path, answer]))
    }
    await sleep(200)
  }
  const sampledAt = Date.now()
  t.equal(sim.requests.length, calls, 'no request reached the cloud while it asked the proxy to wait')
  t.ok(sampledAt < pausedAt + 2_000, `counted ${sampledAt - pausedAt} ms into the 2 s pause`)
  for (const [path, refused] of await Promise.all(refusals)) {
    const passedThrough = ['/object_info', '/system_stats'].includes(path)
    if (passedThrough && refused.status === 429) {
      // Waited for the pause to end and met the cloud's 429 again: passed on as it is, like every cloud 4xx there.
      t.equal(refused.body.code, 'TOO_MANY_REQUESTS', path)
    } else {
      t.equal(refused.status, 503, `${path} ${refused.text.slice(0, 200)}`)
      t.equal(refused.body.error.type, 'cloud_rate_limited', path)
    }
    const retryAfter = Number(refused.headers.get('retry-after'))
    t.ok(retryAfter >= 1 && retryAfter <= 2, `${path}: Retry-After ${retryAfter}`)
  }

  sim.faults.clear()
  // The reads that waited met the 429 again and paused once more.
  await sleep(stack.app.cloud.budget.pausedForMs + 50)
  t.same((await getJson(`${stack.url}/history/00000000-0000-4000-8000-00000000000b`)).body, {}, 'reads go again once the pause is over')
  const metrics = await (await fetch(`${stack.url}/metrics`)).text()
  t.match(metrics, /comfy_proxy_cloud_rate_limited_total [1-9]/)
  t.match(metrics, /comfy_proxy_cloud_budget_wait_seconds_count\{priority="read",outcome="refused"\} [1-9]/)
})

t.test('one 429: every read waits out the shared pause once, then goes; no storm of retries', async t => {
  const stack = await startStack(t, { cloudTimeoutMs: 5_000, cloudRetries: 2 })
  const sim = stack.simulator.app.simulator
  sim.faults.set('GET /api/jobs/:job_id', { status: 429, retryAfter: 1, times: 1 })
  const started = Date.now()
  const ids = Array.from({ length: 6 }, (_, i) => `00000000-0000-4000-8000-00000000001${i}`)
  const first = getJson(`${stack.url}/history/${ids[0]}`)
  await sleep(100)
  const before = sim.requests.length
  const others = ids.slice(1).map(async id => await getJson(`${stack.url}/history/${id}`))
  await sleep(600)
  t.equal(sim.requests.length, before, 'reads asked during the pause wait for it')
  const answers = await Promise.all([first, ...others])
  t.ok(answers.every(answer => answer.status === 200 && answer.text === '{}'), 'and then succeed')
  t.ok(Date.now() - started >= 950, 'after the Retry-After')
  t.equal(sim.requests.filter(request => request.url.startsWith('/api/jobs/')).length, 7, 'one refused call, its retry, and one call per other id')
})

t.test('a submit is not held up by the back-off of reads; a QUEUE_LIMIT refusal does not pause reads', async t => {
  const stack = await startStack(t, { cloudTimeoutMs: 1_000 }, { queueLimit: 1, stepMs: 20 })
  const sim = stack.simulator.app.simulator
  sim.faults.set('GET /api/jobs/:job_id', { status: 429, retryAfter: 5, times: 1 })
  t.equal((await getJson(`${stack.url}/history/00000000-0000-4000-8000-000000000020`)).status, 503)
  const submitted = await postJson(`${stack.url}/prompt`, { prompt: defaultGraph(1, 64, 64, 200) })
  t.equal(submitted.status, 200, 'submitted while reads are paused')
  const second = await postJson(`${stack.url}/prompt`, { prompt: defaultGraph(2) })
  const third = await postJson(`${stack.url}/prompt`, { prompt: defaultGraph(3) })
  t.equal(third.status, 429, 'the cloud\'s queue cap reaches the client')
  t.equal(third.body.error.type, 'QUEUE_LIMIT')
  t.equal(second.status, 200)
  const stack2 = await startStack(t, {}, { queueLimit: 1, stepMs: 20 })
  await postJson(`${stack2.url}/prompt`, { prompt: defaultGraph(1, 64, 64, 200) })
  await postJson(`${stack2.url}/prompt`, { prompt: defaultGraph(2, 64, 64, 200) })
  t.equal((await postJson(`${stack2.url}/prompt`, { prompt: defaultGraph(3) })).status, 429)
  t.equal((await getJson(`${stack2.url}/history/00000000-0000-4000-8000-000000000021`)).status, 200, 'reads are not paused by a full queue')
})

t.test('CLOUD_MAX_RPS holds a flood under the cloud\'s rate limit: no 429, submits go first, the rest 503 with Retry-After', async t => {
  const stack = await startStack(t, { cloudMaxRps: 5, cloudTimeoutMs: 2_000 }, { rateLimit: 30 })
  const sim = stack.simulator.app.simulator
  // Each a cloud call of its own: /history/{id} of an id nobody has seen (a shared read such as /system_stats would be one call).
  const flood = Array.from({ length: 60 }, async (_, i) => await getJson(`${stack.url}/history/00000000-0000-4000-8000-${String(i).padStart(12, '0')}`))
  await sleep(300)
  const submit = await postJson(`${stack.url}/prompt`, { prompt: defaultGraph() })
  t.equal(submit.status, 200, 'the submit went through')
  const answers = await Promise.all(flood)
  const statuses = answers.map(answer => answer.status)
  t.notOk(statuses.includes(429), 'the cloud never had to refuse')
  const ok = statuses.filter(status => status === 200).length
  t.ok(ok >= 5 && ok <= 5 + 5 * 3, `${ok} reads within the budget (5 at once, then 5 per second)`)
  for (const answer of answers.filter(answer => answer.status !== 200)) {
    t.equal(answer.status, 503)
    t.equal(answer.body.error.type, 'cloud_budget_exhausted')
    t.ok(Number(answer.headers.get('retry-after')) >= 1)
  }
  const order = sim.requests.map(request => `${request.method} ${request.url}`)
  const submitAt = order.indexOf('POST /api/prompt')
  const readsAfter = order.slice(submitAt).filter(line => line.startsWith('GET /api/jobs/')).length
  t.ok(readsAfter >= 3, `reads that had waited longer went after the submit (${readsAfter})`)
})

t.test('GET /prompt while paused, before the proxy ever listed the account: 503 with Retry-After, no call', async t => {
  const stack = await startStack(t, { cloudTimeoutMs: 500 })
  const sim = stack.simulator.app.simulator
  sim.faults.set('GET /api/jobs/:job_id', { status: 429, retryAfter: 3, times: 1 })
  t.equal((await getJson(`${stack.url}/history/00000000-0000-4000-8000-000000000030`)).status, 503)
  const before = sim.requests.length
  const answer = await getJson(`${stack.url}/prompt`)
  t.equal(answer.status, 503)
  t.equal(answer.body.error.type, 'cloud_rate_limited')
  t.ok(Number(answer.headers.get('retry-after')) >= 2, 'Retry-After: the pause left')
  t.equal(sim.requests.length, before, 'no call while paused')
})
