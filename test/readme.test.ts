import t from 'tap'
import { readFileSync } from 'node:fs'
import { options } from '../src/config.js'

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')

t.test('the README documents every option of config/schema.json with its default', async t => {
  for (const option of Object.values(options)) {
    const row = readme.split('\n').find(line => line.startsWith(`| \`${option['x-env']}\` |`))
    t.ok(row, `${option['x-env']} has a row`)
    const shown = option.default === '' ? '(empty)' : `\`${String(option.default)}\``
    t.match(row ?? '', shown, `${option['x-env']} shows its default ${shown}`)
  }
})

t.test('the README gives the two set-up commands', async t => {
  t.match(readme, /npm start/)
  t.match(readme, /npm ci && npm test|npm test/)
})
