/**
 * ComfyUI's web UI through the proxy, in headless Chromium (Debian's, driven by playwright-core): a fixture
 * FRONTEND_DIR whose page makes the frontend's start-up requests in the frontend's order, against the
 * simulator, with PROXY_AUTH_TOKEN set so the browser must get in with the `?token=` cookie.
 */
import t from 'tap'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Page } from 'playwright-core'
import { openBrowser } from '../fixtures/browser.js'
import { getJson, startStack } from '../helpers.js'

const FRONTEND_DIR = fileURLToPath(new URL('../fixtures/frontend', import.meta.url))
const TEMPLATES_DIR = fileURLToPath(new URL('../fixtures/templates', import.meta.url))

/**
 * The start-up requests of ComfyUI's web frontend, in its order: user and settings, translations, system
 * stats, saved workflows, extension list and scripts, node definitions, subgraph blueprints, the model
 * library's folders, the WebSocket, features, templates, then the queue and history panels (/api/jobs).
 */
const STARTUP = [
  'GET /api/users',
  'GET /api/settings',
  'GET /api/i18n',
  'GET /api/system_stats',
  'GET /api/userdata?dir=workflows&recurse=true&split=false&full_info=true',
  'GET /api/extensions',
  'GET /api/object_info',
  'GET /api/global_subgraphs',
  'GET /api/experiment/models',
  'WS /ws',
  'GET /api/features',
  'GET /api/workflow_templates',
  'GET /templates/index.json',
  'GET /api/jobs?status=in_progress,pending&limit=200&offset=0',
  'GET /api/jobs?status=completed,failed,cancelled&limit=200&offset=0'
]
/** On the first visit the page then changes a setting, saves a workflow and runs it. */
const FIRST_VISIT = [
  'POST /api/settings/Comfy.Test.Reloaded',
  'POST /api/userdata/workflows%2Ffixture%20workflow.json?overwrite=true&full_info=true',
  'POST /api/prompt'
]
/** After the reload it reopens the saved workflow. */
const RELOADED = ['GET /api/userdata/workflows%2Ffixture%20workflow.json']

interface Startup {
  log: Array<{ method: string, path: string, status: number, type: string | null }>
  done: boolean
  error: string | null
  result: { setting: unknown, workflows: string[], reopened?: unknown, imageType?: string }
}

async function loaded (page: Page): Promise<Startup> {
  await page.waitForFunction('window.__startup?.done === true', undefined, { timeout: 60_000 })
  return await page.evaluate('window.__startup') as Startup
}

t.test('the web UI starts, keeps a setting and a saved workflow over a reload, and runs a job', async t => {
  const token = 'browser-token-0123456789'
  const stack = await startStack(t, { frontendDir: FRONTEND_DIR, templatesDir: TEMPLATES_DIR, proxyAuthToken: token })
  const page = await openBrowser(t)
  const failures: string[] = []
  page.on('response', response => { if (response.status() >= 400) failures.push(`${response.status()} ${response.url()}`) })
  page.on('requestfailed', request => { failures.push(`failed ${request.url()}: ${request.failure()?.errorText ?? ''}`) })
  page.on('pageerror', error => { failures.push(`page error: ${error.message}`) })

  t.equal((await getJson(`${stack.url}/api/settings`)).status, 401, 'without the token the API stays closed')
  await page.goto(`${stack.url}/?token=${token}`)
  t.equal(page.url(), `${stack.url}/`, 'the token left the address bar for an HttpOnly cookie')
  const cookies = await page.context().cookies(stack.url)
  t.equal(cookies.length, 1)
  t.equal(cookies[0].httpOnly, true)
  t.equal(cookies[0].sameSite, 'Strict')
  t.not(cookies[0].value, token, 'the cookie does not hold the token itself')

  const first = await loaded(page)
  t.equal(first.error, null, 'the first visit completed')
  t.same(first.log.map(entry => `${entry.method} ${entry.path}`).slice(0, STARTUP.length + FIRST_VISIT.length), [...STARTUP, ...FIRST_VISIT],
    'the start-up requests, in the frontend\'s order')
  t.equal(first.log.find(entry => entry.path === '/api/extensions')?.type, 'application/json; charset=utf-8')
  t.equal(first.result.setting, null, 'a fresh proxy has no settings')
  t.equal(first.result.imageType, 'image/png', 'the job\'s image came through /api/view')
  t.equal(await page.evaluate('window.__extensionLoaded'), true, 'the listed extension script was imported')
  t.equal(await page.evaluate('window.__coreExtensionLoaded'), undefined, 'core extensions are skipped, as the frontend does')

  await page.reload()
  const second = await loaded(page)
  t.equal(second.error, null, 'the reloaded page completed')
  t.same(second.log.map(entry => `${entry.method} ${entry.path}`), [...STARTUP, ...RELOADED])
  t.same(second.result.setting, { theme: 'dark', at: 1 }, 'the setting written with POST /api/settings/{id} survived the reload')
  t.same(second.result.workflows, ['fixture workflow.json'], 'the saved workflow is listed')
  t.same(second.result.reopened, { last_node_id: 9, nodes: [{ id: 9, type: 'SaveImage' }], links: [], version: 0.4 }, 'and reopens as saved')

  t.same(failures, [], 'no request of the page failed or answered 4xx/5xx')
  const cloudCalls = stack.simulator.app.simulator.requests.map(request => request.url.split('?')[0])
  for (const local of ['/api/users', '/api/settings', '/api/i18n', '/api/extensions', '/api/workflow_templates', '/templates/index.json']) {
    t.notOk(cloudCalls.some(url => url.startsWith(local)), `${local} never reached the cloud`)
  }
  t.notOk(stack.simulator.app.simulator.requests.some(request => request.headers.cookie !== undefined), 'the cookie never reached the cloud')
})
