import t from 'tap'
import { OTHER_KEY, startSim } from './fixtures/helpers.js'

const WORKFLOW = JSON.stringify({ last_node_id: 2, nodes: [{ id: 1 }, { id: 2 }], links: [] })
const file = (path: string, query = ''): string => `/api/userdata/${encodeURIComponent(path)}${query}`

t.test('a saved workflow is listed, read back byte for byte, moved and deleted', async t => {
  const sim = await startSim(t)
  const saved = await sim.json(file('workflows/first.json', '?overwrite=true&full_info=true'), { method: 'POST', body: WORKFLOW })
  t.equal(saved.status, 200)
  t.equal(saved.body.path, 'workflows/first.json')
  t.equal(saved.body.size, Buffer.byteLength(WORKFLOW))
  t.ok(saved.body.modified > 1e12, 'modified is in ms')

  const read = await sim.call(file('workflows/first.json'))
  t.equal(read.status, 200)
  t.equal(await read.text(), WORKFLOW)

  const short = await sim.json(file('workflows/sub/second.json'), { method: 'POST', body: '{}' })
  t.equal(short.body, 'workflows/sub/second.json', 'without full_info the answer is the path')

  const flat = await sim.json('/api/userdata?dir=workflows&full_info=true')
  t.same(flat.body.map((f: { path: string }) => f.path), ['first.json'], 'without recurse: the folder only')
  const deep = await sim.json('/api/userdata?dir=workflows/&recurse=true&split=false&full_info=true')
  t.same(deep.body.map((f: { path: string }) => f.path), ['first.json', 'sub/second.json'])
  t.same(Object.keys(deep.body[0]), ['path', 'size', 'modified'])

  const moved = await sim.json(`${file('workflows/first.json')}/move/${encodeURIComponent('workflows/renamed.json')}?full_info=true`, { method: 'POST' })
  t.equal(moved.status, 200)
  t.equal(moved.body.path, 'workflows/renamed.json')
  t.equal((await sim.call(file('workflows/first.json'))).status, 404)
  t.equal(await (await sim.call(file('workflows/renamed.json'))).text(), WORKFLOW)

  t.equal((await sim.call(file('workflows/renamed.json'), { method: 'DELETE' })).status, 204)
  const gone = await sim.call(file('workflows/renamed.json'))
  t.equal(gone.status, 404)
  t.match(gone.headers.get('content-type'), /^text\/plain/, 'userdata errors are text (notes §1.4)')
  t.equal((await sim.call(file('workflows/renamed.json'), { method: 'DELETE' })).status, 404)
})

t.test('overwrite=false refuses an existing file, on write and on move', async t => {
  const sim = await startSim(t)
  await sim.call(file('workflows/a.json'), { method: 'POST', body: '1' })
  await sim.call(file('workflows/b.json'), { method: 'POST', body: '2' })
  t.equal((await sim.call(file('workflows/a.json', '?overwrite=false'), { method: 'POST', body: '3' })).status, 409)
  t.equal((await sim.call(`${file('workflows/a.json')}/move/${encodeURIComponent('workflows/b.json')}?overwrite=false`, { method: 'POST' })).status, 409)
  t.equal(await (await sim.call(file('workflows/a.json'))).text(), '1', 'nothing was overwritten')
  t.equal((await sim.call(`${file('workflows/missing.json')}/move/${encodeURIComponent('workflows/c.json')}`, { method: 'POST' })).status, 404)
})

t.test('each account sees only its own files', async t => {
  const sim = await startSim(t)
  await sim.call(file('workflows/mine.json'), { method: 'POST', body: WORKFLOW })
  t.equal((await sim.call(file('workflows/mine.json'), { key: OTHER_KEY })).status, 404)
  t.same((await sim.json('/api/userdata?dir=workflows', { key: OTHER_KEY })).body, [])
  t.equal((await sim.call(file('workflows/mine.json'), { key: null })).status, 401)
})

t.test('paths outside the user folder and a missing dir are refused', async t => {
  const sim = await startSim(t)
  for (const path of ['../escape.json', '/etc/passwd', 'workflows/../../x', 'a\\b']) {
    t.equal((await sim.call(file(path), { method: 'POST', body: '1' })).status, 403, path)
  }
  const noDir = await sim.call('/api/userdata')
  t.equal(noDir.status, 400)
  t.equal(await noDir.text(), 'Directory not provided')
  t.equal((await sim.call('/api/userdata?dir=../')).status, 403)
})

t.test('global subgraphs: none offered, and public like the spec says', async t => {
  const sim = await startSim(t)
  const list = await sim.json('/api/global_subgraphs', { key: null })
  t.equal(list.status, 200)
  t.same(list.body, {})
  t.equal((await sim.json('/api/global_subgraphs/abc')).status, 404)
})

t.test('reset() drops user data', async t => {
  const sim = await startSim(t)
  await sim.call(file('workflows/a.json'), { method: 'POST', body: '1' })
  sim.app.simulator.reset()
  t.equal((await sim.call(file('workflows/a.json'))).status, 404)
})
