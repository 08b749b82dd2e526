import t from 'tap'
import {
  historyEntryFromHistoryV2, historyEntryFromHistoryV2Detail, historyEntryFromJob, localExtraData, toMs, unwrapHistoryV2Detail
} from '../../src/compat/history.js'
import {
  apiGraph, CANCELLED_ID, cancelledJobWithoutStatus, COMPLETED_ID, completedJob, FAILED_ID, failedJobWithoutStatus, historyV2Detail, historyV2ListItem
} from '../fixtures/cloud.js'

t.test('a completed job maps to a local entry with keys in local order', async t => {
  const entry = historyEntryFromJob(completedJob())!
  t.same(Object.keys(entry), ['prompt', 'outputs', 'status', 'meta'])
  t.equal(entry.prompt.length, 5)
  t.equal(entry.prompt[0], 1763900000123, 'number is the submission time')
  t.equal(entry.prompt[1], COMPLETED_ID)
  t.same(entry.prompt[2], apiGraph)
  t.same(entry.prompt[3], {
    extra_pnginfo: { workflow: { id: 'wf-1', nodes: [], links: [], version: 0.4 } },
    client_id: 'client-one',
    create_time: 1763900000123
  }, 'extra_data without api_key_comfy_org or auth_token_comfy_org')
  t.same(entry.prompt[4], ['9'])
  t.same(entry.outputs, completedJob().outputs)
  t.same(entry.status, completedJob().execution_status, 'execution_status verbatim')
  t.same(entry.meta, completedJob().execution_meta)
})

t.test('pending and running jobs have no history entry', async t => {
  for (const status of ['pending', 'in_progress'] as const) {
    t.equal(historyEntryFromJob({ ...completedJob(), status }), null, status)
  }
})

t.test('a failed job without execution_status gets a synthesized error status carrying the cloud error, in ms', async t => {
  const entry = historyEntryFromJob(failedJobWithoutStatus())!
  t.equal(entry.prompt[0], 1763900100000, 'seconds normalised to ms')
  t.same(entry.prompt[3], { client_id: 'client-two', create_time: 1763900100000 })
  t.same(entry.status, {
    status_str: 'error',
    completed: false,
    messages: [
      ['execution_start', { prompt_id: FAILED_ID, timestamp: 1763900101000 }],
      ['execution_error', {
        prompt_id: FAILED_ID,
        node_id: '3',
        node_type: 'KSampler',
        executed: [],
        exception_message: 'Allocation on device failed',
        exception_type: 'OOMError',
        traceback: ['  File "execution.py", line 1'],
        current_inputs: { seed: [7] },
        current_outputs: {},
        timestamp: 1763900104000
      }]
    ]
  })
  t.same(entry.meta, {})
})

t.test('a failed job without any error detail says so', async t => {
  const job = failedJobWithoutStatus()
  delete job.execution_error
  const [, last] = historyEntryFromJob(job)!.status.messages
  t.equal(last[0], 'execution_error')
  t.equal(last[1].exception_type, 'ServiceError')
  t.equal(last[1].exception_message, 'Cloud job failed')
})

t.test('a cancelled job is an error ending in execution_interrupted', async t => {
  const entry = historyEntryFromJob(cancelledJobWithoutStatus())!
  t.equal(entry.status.status_str, 'error')
  t.equal(entry.status.completed, false)
  const last = entry.status.messages.at(-1)!
  t.same(last, ['execution_interrupted', { prompt_id: CANCELLED_ID, node_id: null, node_type: null, executed: [], timestamp: 1763900202500 }])
  t.same(entry.outputs, {})
  t.same(entry.prompt[4], [])
})

t.test('message timestamps in seconds become ms; ms stay', async t => {
  const job = completedJob()
  job.execution_status!.messages[0][1].timestamp = 1763900000
  const entry = historyEntryFromJob(job)!
  t.equal(entry.status.messages[0][1].timestamp, 1763900000000)
  t.equal(entry.status.messages[2][1].timestamp, 1763900004871)
  t.equal(toMs(1763900000.5), 1763900000500)
})

t.test('extra_data never carries the sensitive keys', async t => {
  t.same(localExtraData({ api_key_comfy_org: 'x', auth_token_comfy_org: 'y', a: 1 }, 5), { a: 1, create_time: 5 })
  t.same(localExtraData({ create_time: 3 }, 5), { create_time: 3 })
  t.same(localExtraData(undefined, undefined), {})
})

t.test('history_v2 list items map without an API graph', async t => {
  const entry = historyEntryFromHistoryV2(historyV2ListItem())!
  t.same(Object.keys(entry), ['prompt', 'outputs', 'status', 'meta'])
  t.same(entry.prompt, [1763900000123, COMPLETED_ID, {}, { client_id: 'client-one', create_time: 1763900000123 }, ['9']])
  t.equal(historyEntryFromHistoryV2({ ...historyV2ListItem(), status: undefined }), null, 'no status: not finished')
  t.equal(historyEntryFromHistoryV2({ ...historyV2ListItem(), status: { status_str: 'running', messages: [] } }), null)
})

t.test('history_v2 detail maps with its graph and outputs_to_execute, wrapped or bare', async t => {
  const wrapped = unwrapHistoryV2Detail(COMPLETED_ID, { [COMPLETED_ID]: historyV2Detail() })!
  const entry = historyEntryFromHistoryV2Detail(COMPLETED_ID, wrapped)!
  t.same(entry.prompt, [1763900000123, COMPLETED_ID, apiGraph, { client_id: 'client-one', create_time: 1763900000123 }, ['9']])
  const bare = unwrapHistoryV2Detail(COMPLETED_ID, historyV2Detail() as Record<string, unknown>)
  t.same(bare, historyV2Detail())
  t.equal(unwrapHistoryV2Detail(COMPLETED_ID, {}), undefined)
  const noCreateTime = historyV2Detail()
  delete noCreateTime.prompt!.extra_data!.create_time
  t.equal(historyEntryFromHistoryV2Detail(COMPLETED_ID, noCreateTime)!.prompt[0], 1763900000200, 'falls back to the first message time')
})

t.test('a failed job whose error is InterruptProcessingException is shown as a local interrupt (drift §2.2)', async t => {
  const job = failedJobWithoutStatus()
  job.execution_error = { ...job.execution_error!, exception_type: 'InterruptProcessingException', exception_message: 'Processing interrupted', executed: ['4'] }
  const entry = historyEntryFromJob(job)!
  t.equal(entry.status.status_str, 'error')
  t.equal(entry.status.completed, false)
  t.same(entry.status.messages.at(-1), ['execution_interrupted', { prompt_id: FAILED_ID, node_id: '3', node_type: 'KSampler', executed: ['4'], timestamp: 1763900104000 }])
  t.notOk(entry.status.messages.some(([event]) => event === 'execution_error'), 'not shown as a failure')
})
