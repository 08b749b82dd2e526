import t from 'tap'
import { firstValue, historyWindow, parsePythonInt, pythonTruthy } from '../../src/compat/params.js'

const history = ['p0', 'p1', 'p2', 'p3', 'p4']

function select (query: Record<string, string>): string[] {
  const max = query.max_items === undefined ? undefined : parsePythonInt(query.max_items)
  const offset = query.offset === undefined ? undefined : parsePythonInt(query.offset)
  const { start, count } = historyWindow(max, offset, history.length)
  return history.slice(start, start + count)
}

t.test('max_items and offset select exactly what local ComfyUI selects (contract §1.3)', async t => {
  const cases: Array<[Record<string, string>, string[]]> = [
    [{}, history],
    [{ max_items: '2' }, ['p3', 'p4']],
    [{ offset: '1' }, ['p1', 'p2', 'p3', 'p4']],
    [{ max_items: '2', offset: '1' }, ['p1', 'p2']],
    [{ max_items: '0' }, []],
    [{ max_items: '10' }, history],
    [{ max_items: '-1' }, []],
    [{ max_items: '-1', offset: '0' }, ['p0']],
    [{ max_items: '-3', offset: '2' }, ['p2']],
    [{ offset: '-2' }, history],
    [{ offset: '-2', max_items: '1' }, ['p4']],
    [{ offset: '5' }, []],
    [{ offset: '100' }, []],
    [{ max_items: ' 3' }, ['p2', 'p3', 'p4']],
    [{ max_items: '+3' }, ['p2', 'p3', 'p4']],
    [{ max_items: '1_0' }, history],
    [{ max_items: '2', offset: '0' }, ['p0', 'p1']],
    [{ max_items: '2', offset: '2' }, ['p2', 'p3']]
  ]
  for (const [query, expected] of cases) t.same(select(query), expected, JSON.stringify(query))
})

t.test('values Python int() rejects are not integers', async t => {
  for (const value of ['abc', '1.5', '', '3abc', '1__0', '_1', '1_', '0x10', '1e3', ' ', '+', '--1']) {
    t.equal(parsePythonInt(value), undefined, JSON.stringify(value))
  }
  t.equal(parsePythonInt('-7'), -7)
  t.equal(parsePythonInt('\t42\n'), 42)
})

t.test('the first of repeated query values wins', async t => {
  t.equal(firstValue(['2', '3']), '2')
  t.equal(firstValue('5'), '5')
  t.equal(firstValue(undefined), undefined)
  t.equal(firstValue([]), undefined)
})

t.test('truthiness follows Python, as local ComfyUI reads clear and prompt_id', async t => {
  for (const value of [undefined, null, false, 0, '', [], {}]) t.equal(pythonTruthy(value), false, JSON.stringify(value))
  for (const value of [true, 1, -1, 'x', [0], { a: 1 }]) t.equal(pythonTruthy(value), true, JSON.stringify(value))
})
