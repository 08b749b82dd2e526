import { createHash } from 'node:crypto'
import { crc32, deflateSync, inflateSync } from 'node:zlib'
import t from 'tap'
import { encodePng } from '../../src/simulator/png.js'
import { conforms, defaultPrompt, download, inspectPng, KEY, OTHER_KEY, startSim, submit, waitForStatus, type Sim } from './fixtures/helpers.js'

/** A 4x2 RGBA PNG whose alpha goes 0, 85, 170, 255 along each row. */
function rgbaPng (): Buffer {
  const pixels = Buffer.alloc(4 * 2 * 4)
  for (let i = 0; i < 8; i++) pixels.set([200, 100, 50, (i % 4) * 85], i * 4)
  return encodePng({ width: 4, height: 2, channels: 4, pixels })
}

/** Raw rows of a PNG written without filters (what the simulator writes for channel answers). */
function unfilteredRows (png: Buffer, stride: number): Buffer[] {
  const at = png.indexOf('IDAT') - 4
  const data = inflateSync(png.subarray(at + 8, at + 8 + png.readUInt32BE(at)))
  const rows = []
  for (let y = 0; y * (stride + 1) < data.length; y++) {
    if (data[y * (stride + 1)] !== 0) throw new Error('filtered row')
    rows.push(data.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1)))
  }
  return rows
}

/** A 3x3 RGB PNG written with the Sub, Average and Paeth filters (one per row), built here from the PNG spec. */
function filteredPng (): { png: Buffer, rows: number[][] } {
  const rows = [[10, 20, 30, 200, 210, 220, 5, 250, 128], [99, 1, 77, 254, 3, 180, 60, 61, 62], [0, 255, 17, 42, 42, 42, 140, 7, 233]]
  const paeth = (a: number, b: number, c: number): number => {
    const p = a + b - c
    const [pa, pb, pc] = [Math.abs(p - a), Math.abs(p - b), Math.abs(p - c)]
    return pa <= pb && pa <= pc ? a : pb <= pc ? b : c
  }
  const filters = [1, 3, 4]
  const scanlines = rows.map((row, y) => {
    const out = [filters[y]]
    row.forEach((value, i) => {
      const left = i >= 3 ? row[i - 3] : 0
      const up = y > 0 ? rows[y - 1][i] : 0
      const upLeft = y > 0 && i >= 3 ? rows[y - 1][i - 3] : 0
      const predictor = filters[y] === 1 ? left : filters[y] === 3 ? (left + up) >> 1 : paeth(left, up, upLeft)
      out.push((value - predictor + 256) % 256)
    })
    return out
  })
  const chunk = (type: string, data: Buffer): Buffer => {
    const head = Buffer.alloc(8)
    head.writeUInt32BE(data.length)
    head.write(type, 4, 'latin1')
    const crc = Buffer.alloc(4)
    crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])) >>> 0)
    return Buffer.concat([head, data, crc])
  }
  const ihdr = Buffer.from([0, 0, 0, 3, 0, 0, 0, 3, 8, 2, 0, 0, 0])
  const png = Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr), chunk('IDAT', deflateSync(Buffer.from(scanlines.flat()))), chunk('IEND', Buffer.alloc(0))
  ])
  return { png, rows }
}

async function upload (sim: Sim, bytes: Buffer, fields: Record<string, string> = {}, key = KEY, name = 'image.png'): Promise<{ status: number, body: any }> {
  const form = new FormData()
  form.append('image', new Blob([bytes], { type: 'image/png' }), name)
  for (const [field, value] of Object.entries(fields)) form.append(field, value)
  return await sim.json('/api/upload/image', { method: 'POST', body: form, key })
}

async function finishedImage (sim: Sim, seed = 42): Promise<{ filename: string, subfolder: string, type: string }> {
  const id = await submit(sim, { prompt: defaultPrompt({ width: 40, height: 24, seed }) })
  return (await waitForStatus(sim, id, ['completed'])).outputs['9'].images[0]
}

t.test('/api/view redirects to a signed storage URL on the same host', async t => {
  const sim = await startSim(t, { stepMs: 1 })
  const image = await finishedImage(sim)
  const view = await sim.call(`/api/view?filename=${image.filename}&subfolder=&type=output`)
  t.equal(view.status, 302)
  const location = view.headers.get('location')!
  t.match(location, new RegExp(`^${sim.url}/storage/${image.filename}\\?expires=\\d+&signature=[0-9a-f]{64}$`), 'an absolute signed URL')
  t.equal(view.headers.get('cache-control'), 'private, no-store')
  const stored = await fetch(location)
  t.equal(stored.status, 200, 'fetched without any credentials')
  t.equal(stored.headers.get('content-type'), 'image/png')
  const bytes = Buffer.from(await stored.arrayBuffer())
  t.equal(Number(stored.headers.get('content-length')), bytes.length)
  t.match(inspectPng(bytes), { width: 40, height: 24 })
  const sameHost = await fetch(location.replace('127.0.0.1', 'localhost'))
  t.equal(sameHost.status, 200, 'the signature does not depend on the host name')
  const viaLocalhost = await fetch(`${sim.url.replace('127.0.0.1', 'localhost')}/api/view?filename=${image.filename}`, { redirect: 'manual', headers: { 'x-api-key': KEY } })
  t.match(viaLocalhost.headers.get('location'), /^http:\/\/localhost:\d+\/storage\//, 'Location follows the request Host')
  t.equal((await sim.call(`/api/view?filename=${image.filename}&type=temp&subfolder=elsewhere`)).status, 302, 'type and subfolder do not matter')
})

t.test('storage refuses any request that carries credentials', async t => {
  const sim = await startSim(t, { stepMs: 1 })
  const image = await finishedImage(sim)
  const location = (await sim.call(`/api/view?filename=${image.filename}`)).headers.get('location')!
  const attempts: Array<[string, RequestInit, string]> = [
    ['X-API-Key', { headers: { 'x-api-key': KEY } }, location],
    ['Authorization', { headers: { authorization: `Bearer ${KEY}` } }, location],
    ['Cookie', { headers: { cookie: 'session=abc' } }, location],
    ['token query', {}, `${location}&token=${KEY}`]
  ]
  for (const [what, init, url] of attempts) {
    const response = await fetch(url, init)
    t.equal(response.status, 403, what)
    t.match(response.headers.get('content-type'), /^application\/json/)
    const body = await response.json() as { code: string }
    conforms(t, 'ErrorResponse', body, what)
    t.equal(body.code, 'FORBIDDEN')
  }
  const followed = await fetch(`${sim.url}/api/view?filename=${image.filename}`, { headers: { 'x-api-key': KEY } })
  t.equal(followed.status, 403, 'a client that follows the redirect with its key attached is refused')
})

t.test('storage refuses bad and expired signatures', async t => {
  const sim = await startSim(t, { stepMs: 1, viewUrlTtlMs: 300 })
  const image = await finishedImage(sim)
  const location = (await sim.call(`/api/view?filename=${image.filename}`)).headers.get('location')!
  const url = new URL(location)
  const tampered = new URL(location)
  tampered.searchParams.set('signature', url.searchParams.get('signature')!.replace(/^./, c => c === 'a' ? 'b' : 'a'))
  t.equal((await fetch(tampered)).status, 403, 'tampered signature')
  const longer = new URL(location)
  longer.searchParams.set('expires', String(Number(url.searchParams.get('expires')) + 60_000))
  t.equal((await fetch(longer)).status, 403, 'a changed expiry breaks the signature')
  t.equal((await fetch(`${url.origin}/storage/${image.filename}`)).status, 403, 'unsigned')
  const other = await finishedImage(sim, 43)
  t.equal((await fetch(location.replace(image.filename, other.filename))).status, 403, 'a signature is for one file')
  t.equal((await fetch(location)).status, 200, 'still valid')
  await new Promise(resolve => setTimeout(resolve, Number(url.searchParams.get('expires')) - Date.now() + 10))
  const expired = await fetch(location)
  t.equal(expired.status, 403, 'expired')
  t.match(await expired.json(), { code: 'FORBIDDEN', message: /expired/ })
})

t.test('the signing secret can be fixed', async t => {
  const a = await startSim(t, { stepMs: 1, signingSecret: 'shared' })
  const b = await startSim(t, { stepMs: 1, signingSecret: 'shared' })
  const image = await finishedImage(a)
  const signed = new URL((await a.call(`/api/view?filename=${image.filename}`)).headers.get('location')!)
  const otherHost = new URL(`${b.url}${signed.pathname}${signed.search}`)
  t.equal((await fetch(otherHost)).status, 404, 'the signature is accepted by a simulator with the same secret (the file is not there)')
})

t.test('/api/view errors', async t => {
  const sim = await startSim(t, { stepMs: 1 })
  const missing = await sim.json('/api/view?filename=0000.png')
  t.equal(missing.status, 404)
  conforms(t, 'ErrorResponse', missing.body)
  const noName = await sim.json('/api/view')
  t.equal(noName.status, 400)
  conforms(t, 'ErrorResponse', noName.body)
  const image = await finishedImage(sim)
  t.equal((await sim.json(`/api/view?filename=${image.filename}`, { key: OTHER_KEY })).status, 404, 'another account\'s file')
  const badChannel = await sim.json(`/api/view?filename=${image.filename}&channel=r`)
  t.equal(badChannel.status, 400)
  conforms(t, 'ErrorResponse', badChannel.body)
})

t.test('with channel the bytes come back directly', async t => {
  const sim = await startSim(t, { stepMs: 1 })
  const image = await finishedImage(sim)
  const rgb = await sim.call(`/api/view?filename=${image.filename}&type=output&channel=rgb`)
  t.equal(rgb.status, 200)
  t.equal(rgb.headers.get('content-type'), 'image/png')
  const rgbBytes = Buffer.from(await rgb.arrayBuffer())
  t.match(inspectPng(rgbBytes), { width: 40, height: 24, colorType: 2 })
  const alpha = Buffer.from(await (await sim.call(`/api/view?filename=${image.filename}&channel=a`)).arrayBuffer())
  t.match(inspectPng(alpha), { width: 40, height: 24, colorType: 0 }, 'a grayscale image')
  t.ok(unfilteredRows(alpha, 40).every(row => row.every(v => v === 255)), 'an image without alpha is opaque')

  const { body: uploaded } = await upload(sim, rgbaPng())
  const mask = Buffer.from(await (await sim.call(`/api/view?filename=${uploaded.name as string}&channel=alpha`)).arrayBuffer())
  t.match(inspectPng(mask), { width: 4, height: 2, colorType: 0 })
  t.same(unfilteredRows(mask, 4).map(row => [...row]), [[0, 85, 170, 255], [0, 85, 170, 255]], 'the alpha channel as gray')
  const colour = Buffer.from(await (await sim.call(`/api/view?filename=${uploaded.name as string}&channel=rgb`)).arrayBuffer())
  t.same([...unfilteredRows(colour, 12)[0].subarray(0, 6)], [200, 100, 50, 200, 100, 50], 'rgb drops the alpha')
})

t.test('channel extraction reads PNGs written with any row filter', async t => {
  const sim = await startSim(t)
  const { png, rows } = filteredPng()
  t.match(inspectPng(png), { width: 3, height: 3 })
  const { body } = await upload(sim, png)
  const rgb = await sim.call(`/api/view?filename=${body.name as string}&channel=rgb`)
  t.equal(rgb.status, 200)
  t.same(unfilteredRows(Buffer.from(await rgb.arrayBuffer()), 9).map(row => [...row]), rows, 'Sub, Average and Paeth rows decode to the original pixels')
  const gif = await upload(sim, Buffer.from('GIF89a........'))
  t.equal((await sim.json(`/api/view?filename=${gif.body.name as string}&channel=rgb`)).status, 400, 'channel needs a PNG')
})

t.test('POST /api/upload/image stores by content hash and the file is viewable', async t => {
  const sim = await startSim(t)
  const png = rgbaPng()
  const hash = createHash('sha256').update(png).digest('hex')
  const first = await upload(sim, png, { overwrite: 'true', subfolder: 'masks', type: 'input' })
  t.equal(first.status, 200)
  conforms(t, 'UploadImageResponse', first.body)
  t.same(first.body, { name: `${hash}.png`, subfolder: 'masks', type: 'input' })
  const again = await upload(sim, png, {}, KEY, 'other-name.png')
  t.same(again.body, { name: `${hash}.png`, subfolder: '', type: 'output' }, 'same content, same name; type defaults to output')
  const { response, bytes } = await download(sim, { filename: first.body.name })
  t.equal(response.status, 200)
  t.ok(bytes.equals(png), 'the bytes come back unchanged')
  t.equal((await sim.call(`/api/view?filename=${first.body.name as string}`, { key: OTHER_KEY })).status, 404, 'private to the account')
  await upload(sim, png, {}, OTHER_KEY)
  t.equal((await sim.call(`/api/view?filename=${first.body.name as string}`, { key: OTHER_KEY })).status, 302, 'until that account uploads it too')

  const jpeg = Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), Buffer.alloc(64)])
  const jpegUpload = await upload(sim, jpeg, {}, KEY, 'photo.jpg')
  t.match(jpegUpload.body.name, /^[0-9a-f]{64}\.jpg$/)
  const jpegFile = await download(sim, { filename: jpegUpload.body.name })
  t.equal(jpegFile.response.headers.get('content-type'), 'image/jpeg')
})

t.test('uploads that are not images are refused', async t => {
  const sim = await startSim(t)
  const text = await upload(sim, Buffer.from('hello world'))
  t.equal(text.status, 400)
  conforms(t, 'ErrorResponse', text.body)
  const form = new FormData()
  form.append('subfolder', 'x')
  const noImage = await sim.json('/api/upload/image', { method: 'POST', body: form })
  t.equal(noImage.status, 400)
  t.equal((await sim.json('/api/upload/image', { method: 'POST', json: { image: 'x' } })).status, 400, 'not multipart')
  const huge = Buffer.from(rgbaPng())
  huge.writeUInt32BE(20000, 16) // claims a 20000 px wide image
  t.equal((await upload(sim, huge)).status, 400, 'over 16384 px per edge')
})
