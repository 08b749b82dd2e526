import t from 'tap'
import { renamePromptInBinary, renamePromptInText } from '../../src/compat/ws-frames.js'

const CLOUD = '8d0c3a4e-6b1f-4c1e-9a55-2f0e7d3b9c11'

t.test('every prompt id in a text frame is renamed, nested progress_state nodes included', async t => {
  const frame = JSON.stringify({ type: 'progress_state', data: { prompt_id: CLOUD, nodes: { 3: { prompt_id: CLOUD, value: 1 } } } })
  const renamed = JSON.parse(renamePromptInText(frame, CLOUD, 'my "run"'))
  t.same(renamed, { type: 'progress_state', data: { prompt_id: 'my "run"', nodes: { 3: { prompt_id: 'my "run"', value: 1 } } } })
})

function preview (metadata: object): Buffer {
  const json = Buffer.from(JSON.stringify(metadata))
  const head = Buffer.alloc(8)
  head.writeUInt32BE(4, 0)
  head.writeUInt32BE(json.length, 4)
  return Buffer.concat([head, json, Buffer.from('IMAGE')])
}

t.test('a type-4 preview gets its metadata prompt_id renamed and keeps its image bytes', async t => {
  const renamed = renamePromptInBinary(preview({ node_id: '3', prompt_id: CLOUD, image_type: 'image/png' }), () => 'mine')
  const length = renamed.readUInt32BE(4)
  t.equal(renamed.readUInt32BE(0), 4)
  t.same(JSON.parse(renamed.toString('utf8', 8, 8 + length)), { node_id: '3', prompt_id: 'mine', image_type: 'image/png' })
  t.equal(renamed.subarray(8 + length).toString(), 'IMAGE')
})

t.test('other binary frames, unknown ids and malformed metadata pass unchanged', async t => {
  const typeOne = Buffer.concat([Buffer.from([0, 0, 0, 1, 0, 0, 0, 2]), Buffer.from('PNG')])
  t.equal(renamePromptInBinary(typeOne, () => 'x'), typeOne)
  const unknown = preview({ prompt_id: CLOUD })
  t.equal(renamePromptInBinary(unknown, id => id), unknown)
  const broken = Buffer.from([0, 0, 0, 4, 0, 0, 0, 3, 0x7b, 0x7b, 0x7b])
  t.equal(renamePromptInBinary(broken, () => 'x'), broken)
  const truncated = Buffer.from([0, 0, 0, 4, 0, 0, 1, 0])
  t.equal(renamePromptInBinary(truncated, () => 'x'), truncated)
})
