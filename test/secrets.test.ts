import t from 'tap'
import { Readable } from 'node:stream'
import { SecretScrubber } from '../src/secrets.js'

const KEY = 'comfyui-s3cr3t/+key'

t.test('every form of a secret is found: raw, JSON-escaped, percent-encoded in any mix', async t => {
  const scrubber = new SecretScrubber([KEY, 'x"y', ''])
  const partly = `%63${KEY.slice(1, 14)}%2f${KEY.slice(15)}`
  for (const form of [KEY, encodeURIComponent(KEY), partly, 'x\\"y']) {
    t.equal(scrubber.text(`a ${form} b`), 'a [REDACTED] b', form)
    t.equal(scrubber.text(`a ${form} b`, 'mask'), `a ${'*'.repeat(form.length)} b`, `${form} masked in place`)
  }
  t.equal(scrubber.text('comfyui-s3cr3t'), 'comfyui-s3cr3t', 'a prefix is not the secret')
  t.equal(new SecretScrubber(['']).text('nothing'), 'nothing')
})

t.test('a masked stream keeps its length and catches a secret split across chunks', async t => {
  const scrubber = new SecretScrubber([KEY])
  const body = Buffer.from(`{"a":"${KEY}","b":"${encodeURIComponent(KEY)}"}`)
  for (const size of [1, 3, 7, 64]) {
    const chunks: Buffer[] = []
    for (let i = 0; i < body.length; i += size) chunks.push(body.subarray(i, i + size))
    const out: Buffer[] = []
    for await (const chunk of Readable.from(chunks).pipe(scrubber.stream())) out.push(chunk as Buffer)
    const text = Buffer.concat(out).toString()
    t.equal(text.length, body.length, `chunks of ${size}: same length`)
    t.notMatch(text, 's3cr3t', `chunks of ${size}: masked`)
  }
  const binary = Buffer.concat([Buffer.from([0xff, 0x00, 0x89]), Buffer.from(KEY), Buffer.from([0xfe])])
  const masked = scrubber.bytes(binary)
  t.same([...masked.subarray(0, 3), masked.at(-1)], [0xff, 0x00, 0x89, 0xfe], 'other bytes are untouched')
  t.equal(masked.subarray(3, -1).toString(), '*'.repeat(KEY.length))
})
