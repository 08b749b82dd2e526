import t from 'tap'
import { LOG_LINE_MAX_CHARS, LogRing, toEntry } from '../src/log-ring.js'

const line = (msg: string, extra: Record<string, unknown> = {}, level = 30): string =>
  `${JSON.stringify({ level, time: Date.UTC(2026, 10, 29, 9, 0, 0), pid: 1, hostname: 'h', msg, ...extra })}\n`

t.test('keeps the newest lines up to its capacity, oldest first', async t => {
  const ring = new LogRing(3)
  for (let i = 1; i <= 5; i++) ring.push(line(`m${i}`))
  t.same(ring.entries().map(entry => entry.m), ['[INFO] m3\n', '[INFO] m4\n', '[INFO] m5\n'])
  const half = new LogRing(3)
  half.push(line('only'))
  t.same(half.entries().map(entry => entry.m), ['[INFO] only\n'])
})

t.test('a pino line becomes a local record: ISO time, level tag, message, other fields', async t => {
  t.same(toEntry(line('request completed', { reqId: 'r1', res: { statusCode: 200 } })), {
    t: '2026-11-29T09:00:00.000Z',
    m: '[INFO] request completed {"reqId":"r1","res":{"statusCode":200}}\n'
  })
  t.equal(toEntry(line('boom', {}, 50)).m, '[ERROR] boom\n')
  t.equal(toEntry(line('careful', {}, 40)).m, '[WARNING] careful\n')
  t.equal(toEntry('not json').m, 'not json\n', 'a line that is not JSON is kept as it is')
})

t.test('a very long line is cut, so the ring stays bounded', async t => {
  const ring = new LogRing(2)
  ring.push(line('x'.repeat(LOG_LINE_MAX_CHARS * 4)))
  const [entry] = ring.entries()
  t.ok(entry.m.length <= LOG_LINE_MAX_CHARS + 2, `${entry.m.length} characters`)
})

t.test('tee writes each line on to its target and keeps it', async t => {
  const ring = new LogRing(5)
  const written: string[] = []
  const stream = ring.tee({ write: (text: string) => { written.push(text) } })
  stream.write(line('hello'))
  t.equal(written.length, 1)
  t.equal(ring.entries()[0].m, '[INFO] hello\n')
})
