import t from 'tap'
import { byteRange } from '../../src/simulator/storage.js'
import { startSim, submit, waitForStatus } from './fixtures/helpers.js'

t.test('byte ranges as a storage bucket reads them', async t => {
  t.same(byteRange('bytes=0-7', 100), { start: 0, end: 7 })
  t.same(byteRange('bytes=90-', 100), { start: 90, end: 99 })
  t.same(byteRange('bytes=95-200', 100), { start: 95, end: 99 }, 'an end past the file is clamped')
  t.same(byteRange('bytes=-10', 100), { start: 90, end: 99 })
  t.same(byteRange('bytes=-200', 100), { start: 0, end: 99 })
  t.equal(byteRange('bytes=100-', 100), 'unsatisfiable')
  t.equal(byteRange('bytes=-0', 100), 'unsatisfiable')
  for (const ignored of ['bytes=5-2', 'bytes=-', 'bytes=0-1,5-6', 'items=0-1', 'bytes=a-b']) t.equal(byteRange(ignored, 100), undefined, ignored)
})

t.test('the storage route has validators, conditional GETs, one range and HEAD; /api/view honours type', async t => {
  const sim = await startSim(t)
  const id = await submit(sim)
  const job = await waitForStatus(sim, id, ['completed'])
  const { filename } = job.outputs['9'].images[0]
  const redirect = await sim.call(`/api/view?filename=${filename}&type=output`)
  t.equal(redirect.status, 302)
  const location = redirect.headers.get('location')!
  const full = await fetch(location)
  const bytes = Buffer.from(await full.arrayBuffer())
  t.equal(full.headers.get('accept-ranges'), 'bytes')
  const etag = full.headers.get('etag')!
  t.match(etag, /^"[0-9a-f]{64}"$/)
  t.equal((await fetch(location, { headers: { 'if-none-match': etag } })).status, 304)
  t.equal((await fetch(location, { headers: { 'if-modified-since': full.headers.get('last-modified')! } })).status, 304)
  const part = await fetch(location, { headers: { range: 'bytes=1-3' } })
  t.equal(part.status, 206)
  t.equal(part.headers.get('content-range'), `bytes 1-3/${bytes.length}`)
  t.same(Buffer.from(await part.arrayBuffer()), bytes.subarray(1, 4))
  const stale = await fetch(location, { headers: { range: 'bytes=1-3', 'if-range': '"old"' } })
  t.equal(stale.status, 200, 'If-Range with another validator: the whole file')
  await stale.arrayBuffer()
  const head = await fetch(location, { method: 'HEAD' })
  t.equal(head.headers.get('content-length'), String(bytes.length))
  t.equal((await sim.call(`/api/view?filename=${filename}&type=temp`)).status, 302, 'outputs and temp files share a bucket')
  t.equal((await sim.call(`/api/view?filename=${filename}&type=input`)).status, 404, 'an output is not an input')
  t.equal((await sim.call(`/api/view?filename=${filename}&type=models`)).status, 400)
})
