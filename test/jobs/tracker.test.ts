import t from 'tap'
import { JobTracker, type UnfinishedList } from '../../src/jobs/tracker.js'

function tracker (lists: UnfinishedList[], options: { listTtlMs?: number, maxJobs?: number } = {}): { tracker: JobTracker, calls: () => number, clock: { now: number } } {
  const clock = { now: 0 }
  let calls = 0
  const instance = new JobTracker({
    listTtlMs: options.listTtlMs ?? 1000,
    maxJobs: options.maxJobs ?? 100,
    now: () => clock.now,
    list: async () => {
      calls++
      await new Promise(resolve => setImmediate(resolve))
      return lists.shift() ?? { jobs: [], complete: true, total: 0 }
    }
  })
  return { tracker: instance, calls: () => calls, clock }
}

const listed = (...jobs: Array<[string, 'pending' | 'in_progress']>): UnfinishedList => ({ jobs: jobs.map(([id, status]) => ({ id, status })), complete: true, total: jobs.length })

t.test('a submitted job is unfinished at once; the list is asked only when someone asks, once per listTtlMs, shared', async t => {
  const { tracker: jobs, calls, clock } = tracker([listed(['a', 'pending']), listed()])
  jobs.submitted('a')
  t.ok(jobs.isUnfinished('a'))
  t.equal(calls(), 0, 'nobody asked yet')
  await Promise.all(Array.from({ length: 20 }, async () => { await jobs.refresh() }))
  t.equal(calls(), 1, 'twenty askers, one list')
  clock.now = 999
  await jobs.refresh()
  t.equal(calls(), 1, 'fresh for listTtlMs')
  clock.now = 1000
  await jobs.refresh()
  t.equal(calls(), 2)
  t.equal(jobs.state('a'), 'finished', 'gone from a complete list: finished')
})

t.test('absence from a list cut short proves nothing: the job is forgotten, not finished', async t => {
  const { tracker: jobs } = tracker([{ jobs: [], complete: false, total: 150 }])
  jobs.submitted('a')
  await jobs.refresh()
  t.equal(jobs.state('a'), undefined)
  t.equal(jobs.unfinishedCount, 150, 'the cloud\'s total')
})

t.test('WebSocket events: execution_start, the end events and executing with node null', async t => {
  const { tracker: jobs } = tracker([])
  jobs.observe({ type: 'execution_start', data: { prompt_id: 'a' } })
  t.equal(jobs.state('a'), 'in_progress')
  jobs.observe({ type: 'executing', data: { prompt_id: 'a', node: '3' } })
  t.equal(jobs.state('a'), 'in_progress', 'a node starting changes nothing')
  jobs.observe({ type: 'executing', data: { prompt_id: 'a', node: null } })
  t.equal(jobs.state('a'), 'finished')
  for (const type of ['execution_success', 'execution_error', 'execution_interrupted']) {
    jobs.observe({ type, data: { prompt_id: type } })
    t.equal(jobs.state(type), 'finished', type)
  }
  jobs.observe({ type: 'execution_start', data: { prompt_id: 'a' } })
  t.equal(jobs.state('a'), 'finished', 'finished is final')
  for (const frame of [undefined, null, 'text', { type: 'progress', data: { prompt_id: 'p' } }, { type: 'execution_start', data: {} }, { type: 'execution_start' }]) jobs.observe(frame)
  t.equal(jobs.state('p'), undefined, 'other frames are ignored')
})

t.test('events that came before the submit answered are not overwritten by it', async t => {
  const { tracker: jobs } = tracker([])
  jobs.observe({ type: 'execution_success', data: { prompt_id: 'fast' } })
  jobs.submitted('fast')
  t.equal(jobs.state('fast'), 'finished')
})

t.test('what the proxy learnt while a list was on its way is newer than the list', async t => {
  const clock = { now: 0 }
  let release: (list: UnfinishedList) => void = () => {}
  const jobs = new JobTracker({ listTtlMs: 1000, maxJobs: 100, now: () => clock.now, list: async () => await new Promise(resolve => { release = resolve }) })
  jobs.submitted('old')
  const refreshing = jobs.refresh()
  await new Promise(resolve => setImmediate(resolve))
  jobs.submitted('new')
  jobs.observe({ type: 'execution_success', data: { prompt_id: 'old' } })
  release(listed(['old', 'in_progress']))
  await refreshing
  t.equal(jobs.state('new'), 'pending', 'submitted after the list was asked for: still pending though the list lacks it')
  t.equal(jobs.state('old'), 'finished', 'the event wins over the older list')
})

t.test('a detail that lags behind a finish event does not make the job unfinished again', async t => {
  const { tracker: jobs } = tracker([])
  jobs.observe({ type: 'execution_success', data: { prompt_id: 'a' } })
  jobs.learnFromDetail('a', 'in_progress')
  t.equal(jobs.state('a'), 'finished')
  jobs.learnFromDetail('b', 'pending')
  t.equal(jobs.state('b'), 'pending')
  jobs.learnFromDetail('b', 'cancelled')
  t.equal(jobs.state('b'), 'finished')
})

t.test('memory is bounded: finished jobs are forgotten first', async t => {
  const { tracker: jobs } = tracker([], { maxJobs: 3 })
  jobs.submitted('u1')
  jobs.observe({ type: 'execution_success', data: { prompt_id: 'f1' } })
  jobs.submitted('u2')
  jobs.submitted('u3')
  t.equal(jobs.state('f1'), undefined, 'the finished one went first')
  t.same(jobs.size, { unfinished: 3, finished: 0 })
  jobs.submitted('u4')
  t.equal(jobs.state('u1'), undefined, 'then the oldest')
  t.same(jobs.size, { unfinished: 3, finished: 0 })
})

t.test('invalidate() makes the next question ask again', async t => {
  const { tracker: jobs, calls } = tracker([])
  await jobs.refresh()
  jobs.invalidate()
  await jobs.refresh()
  t.equal(calls(), 2)
})

t.test('a failed list is not remembered: the next question asks again', async t => {
  let calls = 0
  const jobs = new JobTracker({ listTtlMs: 1000, maxJobs: 10, list: async () => { calls++; throw new Error('cloud down') } })
  await t.rejects(jobs.refresh(), /cloud down/)
  await t.rejects(jobs.refresh(), /cloud down/)
  t.equal(calls, 2)
  t.notOk(jobs.listedOnce)
})
