import t from 'tap'
import { cloudValidator } from '../../src/cloud/schemas.js'
import { completedJob } from '../fixtures/cloud.js'

t.test('null on an optional job field is accepted as absent (drift §1.6); null on a required one is not', async t => {
  const entry: Record<string, unknown> = {
    id: 'a', status: 'completed', create_time: 1, execution_start_time: null, execution_end_time: null, preview_output: null, outputs_count: null, execution_error: null, workflow_id: null
  }
  t.ok(cloudValidator('JobEntry')(entry))
  t.same(entry, { id: 'a', status: 'completed', create_time: 1 }, 'the nulls are gone')

  const detail: Record<string, unknown> = { ...completedJob(), execution_status: null, execution_meta: null, outputs: null, queue_reason: null, workflow: { prompt: {}, extra_data: null } }
  t.ok(cloudValidator('JobDetailResponse')(detail))
  t.notOk('execution_status' in detail)
  t.same(detail.workflow, { prompt: {} })

  const page: Record<string, any> = { jobs: [], pagination: { offset: 0, limit: 1, total: 0, has_more: false, next_cursor: null } }
  t.ok(cloudValidator('JobsListResponse')(page))
  t.notOk('next_cursor' in page.pagination)

  for (const field of ['id', 'status', 'create_time']) {
    t.notOk(cloudValidator('JobEntry')({ id: 'a', status: 'completed', create_time: 1, [field]: null }), `${field}: null is refused`)
  }
  t.ok(cloudValidator('ExecutionError')({ node_id: null, node_type: null, exception_message: '', exception_type: 'X', traceback: [], current_inputs: {}, current_outputs: {} }),
    'node_id and node_type stay nullable')
})
