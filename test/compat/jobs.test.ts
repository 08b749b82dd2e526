import t from 'tap'
import { localJob, localJobDetail, parseJobsQuery, JobsQueryError } from '../../src/compat/jobs.js'
import type { JobDetail } from '../../src/cloud/types.js'

const identity = { promptId: 'mine', number: 42 }

t.test('a cloud job in local order: seconds become ms, nulls are dropped, outputs_count is always there', async t => {
  const job = localJob({ id: 'cloud', status: 'failed', create_time: 1763900000, execution_start_time: 1763900001, execution_end_time: 1763900002,
    execution_error: { node_id: '3', node_type: 'KSampler', exception_message: 'boom\n', exception_type: 'RuntimeError', traceback: [], current_inputs: {}, current_outputs: { 4: 1 } },
    workflow_id: null as unknown as string }, identity)
  t.same(job, {
    id: 'mine',
    status: 'failed',
    priority: 42,
    create_time: 1763900000000,
    execution_start_time: 1763900001000,
    execution_end_time: 1763900002000,
    execution_error: { prompt_id: 'mine', node_id: '3', node_type: 'KSampler', executed: [], exception_message: 'boom\n', exception_type: 'RuntimeError', traceback: [], current_inputs: {}, current_outputs: ['4'], timestamp: 1763900002000 },
    outputs_count: 0
  })
  t.same(Object.keys(job), ['id', 'status', 'priority', 'create_time', 'execution_start_time', 'execution_end_time', 'execution_error', 'outputs_count'])
})

t.test('a finished job without execution_status gets a synthesized one under the client\'s id', async t => {
  const detail: JobDetail = { id: 'cloud', status: 'completed', create_time: 1763900000000, update_time: 1763900005000, execution_start_time: 1763900001000, execution_end_time: 1763900004000, outputs: {}, outputs_count: 0 }
  const local = localJobDetail(detail, identity)
  t.same(local.execution_status, {
    status_str: 'success',
    completed: true,
    messages: [['execution_start', { prompt_id: 'mine', timestamp: 1763900001000 }], ['execution_success', { prompt_id: 'mine', timestamp: 1763900004000 }]]
  })
  t.same(local.workflow, { prompt: {}, extra_data: { create_time: 1763900000000 } })
})

t.test('the query: repeated parameters take the first value; an empty status means every status', async t => {
  t.same(parseJobsQuery({ status: ',', limit: ['2', '3'], offset: ' 1 ' }), { status: undefined, sortBy: 'create_time', sortOrder: 'desc', limit: 2, offset: 1, workflowId: undefined })
  t.type(t.throws(() => parseJobsQuery({ limit: '-1' })), JobsQueryError)
})
