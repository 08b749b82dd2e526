/**
 * The routes ComfyUI's web frontend needs (issue 15): the web root from FRONTEND_DIR, the local-only routes
 * answered as a fresh single-user local ComfyUI would and never passed through, and local's text 404.
 */
import t from 'tap'
import { fileURLToPath } from 'node:url'
import { getJson, postJson, startStack } from '../helpers.js'

const FRONTEND_DIR = fileURLToPath(new URL('../fixtures/frontend', import.meta.url))
const TEMPLATES_DIR = fileURLToPath(new URL('../fixtures/templates', import.meta.url))
const JSON_TYPE = 'application/json; charset=utf-8'

t.test('local-only routes answer like a fresh local ComfyUI, with and without /api, and never reach the cloud', async t => {
  const stack = await startStack(t)
  const sim = stack.simulator.app.simulator
  for (const prefix of ['', '/api']) {
    sim.requests.length = 0
    const answers: Array<[string, unknown]> = [
      ['/extensions', []],
      ['/users', { storage: 'server', migrated: false }],
      ['/settings', {}],
      ['/settings/Comfy.ColorPalette', null],
      ['/i18n', {}],
      ['/workflow_templates', {}]
    ]
    for (const [path, expected] of answers) {
      const { status, body, headers } = await getJson(`${stack.url}${prefix}${path}`)
      t.equal(status, 200, `${prefix}${path}`)
      t.equal(headers.get('content-type'), JSON_TYPE, `${prefix}${path} is JSON`)
      t.same(body, expected, `${prefix}${path}`)
    }
    t.same(sim.requests, [], `nothing under ${prefix === '' ? '/' : prefix} was passed through`)
  }
})

t.test('settings written one by one or together are kept, and the default user then exists', async t => {
  const stack = await startStack(t)
  const written = await postJson(`${stack.url}/api/settings/Comfy.ColorPalette`, '"dark"')
  t.equal(written.status, 200)
  t.equal(written.text, '', 'an empty 200, as local answers')
  t.equal(written.headers.get('content-type'), 'application/octet-stream')
  t.equal((await getJson(`${stack.url}/settings/Comfy.ColorPalette`)).body, 'dark', 'the same store with and without /api')
  t.equal((await postJson(`${stack.url}/settings`, { 'Comfy.Locale': 'fr', 'Comfy.Sidebar': { size: 3 } })).status, 200)
  t.equal((await postJson(`${stack.url}/api/settings/Comfy.Empty`, 'null')).status, 200, 'null is a value too')
  t.same((await getJson(`${stack.url}/api/settings`)).body,
    { 'Comfy.ColorPalette': 'dark', 'Comfy.Locale': 'fr', 'Comfy.Sidebar': { size: 3 }, 'Comfy.Empty': null }, 'POST /settings merges')
  t.same((await getJson(`${stack.url}/api/users`)).body, { storage: 'server', migrated: true })
  const encoded = await postJson(`${stack.url}/api/settings/${encodeURIComponent('Comfy.Node/Id')}`, '1')
  t.equal(encoded.status, 200)
  t.equal((await getJson(`${stack.url}/api/settings/${encodeURIComponent('Comfy.Node/Id')}`)).body, 1, 'an encoded id is decoded')
  t.same(stack.simulator.app.simulator.requests, [], 'the cloud never saw a setting')
})

t.test('bad settings bodies get a JSON 400 instead of local\'s 500', async t => {
  const stack = await startStack(t)
  for (const [path, body] of [['/api/settings/x', ''], ['/api/settings/x', '{oops'], ['/api/settings', '[1]'], ['/api/settings', '"text"'], ['/api/settings', '']]) {
    const { status, body: answer } = await postJson(`${stack.url}${path}`, body)
    t.equal(status, 400, `${path} ${JSON.stringify(body)}`)
    t.type(answer.error.type, 'string')
  }
  t.same((await getJson(`${stack.url}/api/settings`)).body, {}, 'nothing was stored')
  const users = await postJson(`${stack.url}/api/users`, { username: 'someone' })
  t.equal(users.status, 400)
  t.equal(users.body.error.type, 'single_user')
})

t.test('other methods on the local-only routes are local\'s 405, not a cloud call', async t => {
  const stack = await startStack(t)
  for (const [method, path] of [['PUT', '/api/settings'], ['DELETE', '/settings/x'], ['POST', '/api/extensions'], ['DELETE', '/api/users'], ['POST', '/i18n']]) {
    const response = await fetch(`${stack.url}${path}`, { method })
    t.equal(response.status, 405, `${method} ${path}`)
    t.equal(await response.text(), '405: Method Not Allowed')
    t.match(response.headers.get('content-type'), /^text\/plain/)
  }
  t.same(stack.simulator.app.simulator.requests, [])
})

t.test('unknown routes answer local\'s text 404, whether or not they reached the cloud', async t => {
  const stack = await startStack(t)
  for (const [method, path] of [['GET', '/nope'], ['GET', '/api/nope'], ['POST', '/api/nope/deeper'], ['GET', '/history/a/b'], ['GET', '/history/'], ['GET', '/api/history/'], ['GET', '/templates/index.json'], ['DELETE', '/api/something']]) {
    const response = await fetch(`${stack.url}${path}`, { method })
    t.equal(response.status, 404, `${method} ${path}`)
    t.equal(response.headers.get('content-type'), 'text/plain; charset=utf-8', `${method} ${path}`)
    t.equal(await response.text(), '404: Not Found', `${method} ${path}`)
  }
  t.notOk(stack.simulator.app.simulator.requests.some(request => request.url.startsWith('/api/templates')), 'templates are local-only')
})

t.test('a cloud 404 on a route local has passes as the cloud wrote it', async t => {
  const stack = await startStack(t)
  const missingFile = await fetch(`${stack.url}/api/userdata/${encodeURIComponent('workflows/missing.json')}`)
  t.equal(missingFile.status, 404)
  t.equal(await missingFile.text(), 'File not found')
  const missingJob = await getJson(`${stack.url}/api/jobs/00000000-0000-4000-8000-000000000000`)
  t.equal(missingJob.status, 404)
  t.equal(typeof missingJob.body, 'object', 'the jobs route keeps its JSON error')
})

t.test('a workflow saved through the proxy reopens, with its encoded path intact', async t => {
  const stack = await startStack(t)
  const path = `/api/userdata/${encodeURIComponent('workflows/My flow.json')}`
  const saved = await postJson(`${stack.url}${path}?overwrite=false&full_info=true`, { nodes: [1] })
  t.equal(saved.status, 200)
  t.equal(saved.body.path, 'workflows/My flow.json')
  t.same((await getJson(`${stack.url}${path}`)).body, { nodes: [1] })
  t.same((await getJson(`${stack.url}/userdata?dir=workflows&recurse=true&full_info=true`)).body.map((f: { path: string }) => f.path), ['My flow.json'])
  t.equal((await postJson(`${stack.url}${path}?overwrite=false`, {})).status, 409)
  t.same((await getJson(`${stack.url}/api/global_subgraphs`)).body, {})
})

t.test('FRONTEND_DIR is the web root: types, caching, extensions', async t => {
  const stack = await startStack(t, { frontendDir: FRONTEND_DIR })
  const index = await fetch(`${stack.url}/`)
  t.equal(index.status, 200)
  t.equal(index.headers.get('content-type'), 'text/html; charset=utf-8')
  t.equal(index.headers.get('cache-control'), 'no-cache', 'index.html is revalidated on every load')
  t.match(await index.text(), /index-Bq3fT7xA\.js/)
  t.equal((await fetch(`${stack.url}/index.html`)).headers.get('cache-control'), 'no-cache')

  const script = await fetch(`${stack.url}/assets/index-Bq3fT7xA.js`)
  t.equal(script.status, 200)
  t.match(script.headers.get('content-type'), /^application\/javascript|^text\/javascript/)
  t.equal(script.headers.get('cache-control'), 'public, max-age=31536000, immutable', 'hashed assets are cached for good')
  t.ok(script.headers.get('etag'))
  const style = await fetch(`${stack.url}/assets/index-C8dKp2Lm.css`, { method: 'HEAD' })
  t.match(style.headers.get('content-type'), /^text\/css/)
  t.equal(style.headers.get('cache-control'), 'public, max-age=31536000, immutable')
  const extension = await fetch(`${stack.url}/extensions/example/hello.js`)
  t.equal(extension.status, 200)
  t.equal(extension.headers.get('cache-control'), 'no-cache', 'unhashed scripts are revalidated')

  t.same((await getJson(`${stack.url}/api/extensions`)).body, ['/extensions/core/widgetInputs.js', '/extensions/example/hello.js'],
    'every script under extensions/, as local lists its web root\'s')
  const missing = await fetch(`${stack.url}/assets/missing-AAAAAAAA.js`)
  t.equal(missing.status, 404)
  t.equal(await missing.text(), '404: Not Found')
  t.equal((await getJson(`${stack.url}/object_info`)).status, 200, 'the API next to the web root still reaches the cloud')
})

t.test('without FRONTEND_DIR, / says how to add the web UI', async t => {
  const stack = await startStack(t)
  const page = await fetch(`${stack.url}/`)
  t.equal(page.status, 200)
  t.equal(page.headers.get('content-type'), 'text/html; charset=utf-8')
  t.match(await page.text(), /FRONTEND_DIR.*comfyui-frontend-package/s)
  t.same(stack.simulator.app.simulator.requests, [])
})

t.test('TEMPLATES_DIR is served at /templates/', async t => {
  const stack = await startStack(t, { templatesDir: TEMPLATES_DIR })
  const index = await getJson(`${stack.url}/templates/index.json`)
  t.equal(index.status, 200)
  t.ok(Array.isArray(index.body))
  const missing = await fetch(`${stack.url}/templates/nope.json`)
  t.equal(missing.status, 404)
  t.equal(await missing.text(), '404: Not Found')
})
