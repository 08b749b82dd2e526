import t from 'tap'
import { REDACTED, safeUrl, scrubber } from '../src/logger.js'
import { withoutToken } from '../src/auth.js'

const KEY = 'comfyui-s3cr3t/+key"x'

t.test('the scrubber hides a secret raw, JSON-escaped and URL-encoded', async t => {
  const scrub = scrubber([KEY, ''])
  for (const form of [KEY, JSON.stringify(KEY).slice(1, -1), encodeURIComponent(KEY)]) {
    const line = scrub(`{"msg":"before ${form} after"}`)
    t.notMatch(line, form)
    t.match(line, `before ${REDACTED} after`)
  }
  t.equal(scrubber([''])('nothing to hide'), 'nothing to hide')
})

t.test('token query values are hidden in logged URLs and never forwarded', async t => {
  t.equal(safeUrl('/ws?clientId=a&token=abc&x=1'), `/ws?clientId=a&token=${REDACTED}&x=1`)
  t.equal(withoutToken('?token=abc'), '')
  t.equal(withoutToken('?a=1&token=abc&b=2'), '?a=1&b=2')
  t.equal(withoutToken('?a=1'), '?a=1')
})
