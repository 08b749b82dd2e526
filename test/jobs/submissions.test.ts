import t from 'tap'
import { Submissions } from '../../src/jobs/submissions.js'

t.test('regression: held WebSocket frames waited for every later submit too (never released under overlapping submits)', async t => {
  const submissions = new Submissions()
  const first = submissions.begin()
  let released = 0
  submissions.whenSettled(() => { released++ })
  const second = submissions.begin()
  submissions.end(first)
  t.equal(released, 1, 'released when the submits in flight at the time ended, though another began since')
  t.equal(submissions.busy, true)
  submissions.end(second)
  t.equal(submissions.busy, false)
  submissions.whenSettled(() => { released++ })
  t.equal(released, 2, 'nothing in flight: at once')
})

t.test('owners: a prompt submitted by another client_id is recognised, an unknown one is not', async t => {
  const submissions = new Submissions()
  submissions.record('p1', { client_id: 'alice' })
  submissions.record('p2', {})
  t.equal(submissions.ownedByAnother('p1', 'bob'), true)
  t.equal(submissions.ownedByAnother('p1', 'alice'), false)
  t.equal(submissions.ownedByAnother('p2', 'bob'), false, 'no client_id: not another client\'s')
  t.equal(submissions.ownedByAnother('p3', 'bob'), false, 'unknown: passed through')
  t.same(submissions.get('p1')?.extraData, { client_id: 'alice' })
})
