/**
 * /view as local ComfyUI's file server answers it (observed findings 19, 20): headers, ranges,
 * HEAD, conditional requests, previews, annotations, `type`, and the statuses of its refusals.
 */
import t from 'tap'
import { defaultGraph, getJson, runJob, startStack, type Stack } from '../helpers.js'

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])

async function output (stack: Stack): Promise<{ filename: string, bytes: Buffer }> {
  const { entry } = await runJob(stack.url, { prompt: defaultGraph(9, 96, 64) })
  const { filename } = entry.outputs['9'].images[0]
  const bytes = Buffer.from(await (await fetch(`${stack.url}/view?filename=${filename}`)).arrayBuffer())
  return { filename, bytes }
}

function storageRequests (stack: Stack): Array<{ method: string, headers: Record<string, unknown> }> {
  return stack.simulator.app.simulator.requests.filter(request => request.url.startsWith('/storage/'))
}

t.test('a file answer has Content-Disposition, Accept-Ranges, ETag and Last-Modified, and no Cache-Control', async t => {
  const stack = await startStack(t)
  const { filename, bytes } = await output(stack)
  for (const prefix of ['', '/api']) {
    const response = await fetch(`${stack.url}${prefix}/view?filename=${filename}&type=output&subfolder=`)
    t.equal(response.status, 200)
    t.equal(response.headers.get('content-type'), 'image/png')
    t.equal(response.headers.get('content-disposition'), `filename="${filename}"`)
    t.equal(response.headers.get('accept-ranges'), 'bytes')
    t.match(response.headers.get('etag'), /^".+"$/)
    t.ok(Date.parse(response.headers.get('last-modified') ?? '') > 0, 'Last-Modified is a date')
    t.equal(response.headers.get('cache-control'), null, 'local sends no Cache-Control on /view')
    t.same(Buffer.from(await response.arrayBuffer()), bytes)
  }
})

t.test('a Range is forwarded to storage and answered 206 with Content-Range; an impossible one 416', async t => {
  const stack = await startStack(t)
  const { filename, bytes } = await output(stack)
  stack.simulator.app.simulator.requests.length = 0
  const head = await fetch(`${stack.url}/view?filename=${filename}`, { headers: { range: 'bytes=0-7' } })
  t.equal(head.status, 206)
  t.equal(head.headers.get('content-range'), `bytes 0-7/${bytes.length}`)
  t.equal(head.headers.get('content-length'), '8')
  t.same(Buffer.from(await head.arrayBuffer()), PNG_SIGNATURE)
  t.equal(storageRequests(stack)[0].headers.range, 'bytes=0-7', 'storage was asked for the range, not the whole file')
  const tail = await fetch(`${stack.url}/view?filename=${filename}`, { headers: { range: 'bytes=-12' } })
  t.equal(tail.status, 206)
  t.same(Buffer.from(await tail.arrayBuffer()), bytes.subarray(bytes.length - 12), 'the last 12 bytes (IEND)')
  const impossible = await fetch(`${stack.url}/view?filename=${filename}`, { headers: { range: `bytes=${bytes.length + 10}-` } })
  t.equal(impossible.status, 416)
  t.equal(impossible.headers.get('content-range'), `bytes */${bytes.length}`)
})

t.test('HEAD gives the headers without the body, and storage sends none either', async t => {
  const stack = await startStack(t)
  const { filename, bytes } = await output(stack)
  stack.simulator.app.simulator.requests.length = 0
  const response = await fetch(`${stack.url}/view?filename=${filename}`, { method: 'HEAD' })
  t.equal(response.status, 200)
  t.equal(response.headers.get('content-length'), String(bytes.length))
  t.equal(response.headers.get('content-type'), 'image/png')
  t.equal(response.headers.get('accept-ranges'), 'bytes')
  t.equal((await response.arrayBuffer()).byteLength, 0)
  t.same(storageRequests(stack).map(request => request.method), ['HEAD'])
})

t.test('an unchanged file is a 304 for If-None-Match and If-Modified-Since', async t => {
  const stack = await startStack(t)
  const { filename } = await output(stack)
  const first = await fetch(`${stack.url}/view?filename=${filename}`)
  await first.arrayBuffer()
  const etag = first.headers.get('etag')!
  const sameTag = await fetch(`${stack.url}/view?filename=${filename}`, { headers: { 'if-none-match': etag } })
  t.equal(sameTag.status, 304)
  t.equal((await sameTag.arrayBuffer()).byteLength, 0)
  const sameDate = await fetch(`${stack.url}/view?filename=${filename}`, { headers: { 'if-modified-since': first.headers.get('last-modified')! } })
  t.equal(sameDate.status, 304)
  const otherTag = await fetch(`${stack.url}/view?filename=${filename}`, { headers: { 'if-none-match': '"other"' } })
  t.equal(otherTag.status, 200)
  await otherTag.arrayBuffer()
})

t.test('preview=webp;Q and jpeg;Q answer the image in that format', async t => {
  const stack = await startStack(t)
  const { filename } = await output(stack)
  const webp = await fetch(`${stack.url}/view?filename=${filename}&preview=webp;50`)
  t.equal(webp.status, 200)
  t.equal(webp.headers.get('content-type'), 'image/webp')
  t.equal(webp.headers.get('content-disposition'), `filename="${filename}"`)
  const webpBytes = Buffer.from(await webp.arrayBuffer())
  t.equal(webpBytes.toString('latin1', 0, 4), 'RIFF')
  t.equal(webpBytes.toString('latin1', 8, 12), 'WEBP')
  const jpeg = await fetch(`${stack.url}/api/view?filename=${filename}&type=output&preview=jpeg;80`)
  t.equal(jpeg.headers.get('content-type'), 'image/jpeg')
  t.same(Buffer.from(await jpeg.arrayBuffer()).subarray(0, 3), Buffer.from([0xff, 0xd8, 0xff]))
  const small = Buffer.from(await (await fetch(`${stack.url}/view?filename=${filename}&preview=jpeg;5`)).arrayBuffer())
  const large = Buffer.from(await (await fetch(`${stack.url}/view?filename=${filename}&preview=jpeg;100`)).arrayBuffer())
  t.ok(small.length < large.length, `the quality is used (${small.length} < ${large.length} bytes)`)
  const fallback = await fetch(`${stack.url}/view?filename=${filename}&preview=png`)
  t.equal(fallback.headers.get('content-type'), 'image/webp', 'another format is WebP, as local does')
  await fallback.arrayBuffer()
})

t.test('"name [output]" annotations and type are honoured: an output asked as an input is a 404', async t => {
  const stack = await startStack(t)
  const { filename, bytes } = await output(stack)
  const annotated = await fetch(`${stack.url}/view?filename=${encodeURIComponent(`${filename} [output]`)}&type=input`)
  t.equal(annotated.status, 200, 'the annotation wins over type')
  t.equal(annotated.headers.get('content-disposition'), `filename="${filename}"`)
  t.same(Buffer.from(await annotated.arrayBuffer()), bytes)
  t.equal((await getJson(`${stack.url}/view?filename=${filename}&type=input`)).status, 404)
  t.equal((await getJson(`${stack.url}/view?filename=${encodeURIComponent(`${filename} [input]`)}`)).status, 404)
  t.equal((await getJson(`${stack.url}/view?filename=sub/${filename}&subfolder=sub`)).status, 200, 'a path in filename keeps only its last part, as local')
})

t.test('refusals have local\'s statuses, and only a missing file costs a cloud call', async t => {
  const stack = await startStack(t)
  const sim = stack.simulator.app.simulator
  sim.requests.length = 0
  const cases: Array<[string, number]> = [
    ['', 404],
    ['?filename=', 400],
    ['?filename=..%2Fsecret.png', 400],
    ['?filename=a..b.png', 400],
    ['?filename=%2Fetc%2Fpasswd', 400],
    ['?filename=x.png&type=models', 400],
    ['?filename=x.png&subfolder=..%2F..', 403],
    ['?filename=x.png&subfolder=%2Fetc', 403],
    ['?filename=dir%2F', 404]
  ]
  for (const [query, status] of cases) {
    const { status: got, body } = await getJson(`${stack.url}/view${query}`)
    t.equal(got, status, query)
    t.type(body.error.type, 'string', `${query}: a JSON error`)
  }
  t.same(sim.requests, [], 'refused before any cloud call')
  t.equal((await getJson(`${stack.url}/view?filename=nope.png&subfolder=a%2F..%2Fb`)).status, 404, 'a subfolder that stays inside is fine; the file is missing')
})
