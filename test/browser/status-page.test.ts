/**
 * The status page at `/` in a real browser (Debian's chromium driven by playwright-core), with
 * PROXY_AUTH_TOKEN set: the cloud check, a job in flight, then the same job among the latest finished
 * ones with its thumbnail loaded through /view, all without reloading the page. The screenshot goes to
 * test/artifacts/ (git-ignored).
 */
import t from 'tap'
import { mkdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { openBrowser } from '../fixtures/browser.js'
import { defaultGraph, getJson, startStack, waitFor } from '../helpers.js'

const ARTIFACTS = fileURLToPath(new URL('../artifacts/', import.meta.url))

t.test('the status page shows the check, jobs in flight and the latest jobs with thumbnails, refreshing itself', async t => {
  const token = 'status-page-token-0123456789'
  const auth = { authorization: `Bearer ${token}` }
  const stack = await startStack(t, { proxyAuthToken: token }, { stepMs: 40 })
  const submit = async (steps: number): Promise<string> => {
    const response = await fetch(`${stack.url}/prompt`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ prompt: defaultGraph(steps, 96, 96, steps), client_id: 'status-test' }) })
    return ((await response.json()) as { prompt_id: string }).prompt_id
  }
  const finished = async (id: string): Promise<void> => {
    await waitFor(async () => (await getJson(`${stack.url}/history/${id}`, { headers: auth })).body?.[id], 20_000, `job ${id}`)
  }
  await finished(await submit(2))
  t.equal((await getJson(`${stack.url}/proxy/status.json`)).status, 401, 'the status needs the token too')

  const page = await openBrowser(t, { viewport: { width: 1100, height: 900 } })
  const failures: string[] = []
  page.on('pageerror', error => { failures.push(`page error: ${error.message}`) })
  page.on('response', response => { if (response.status() >= 400) failures.push(`${response.status()} ${response.url()}`) })

  const opened = await page.goto(`${stack.url}/?token=${token}&refresh=1`)
  t.equal(opened?.headers()['content-type'], 'text/html; charset=utf-8')
  await page.waitForFunction('document.querySelector("#verdict").textContent.startsWith("OK")', undefined, { timeout: 20_000 })
  t.match(await page.textContent('#verdict'), /OK: Comfy Cloud accepts the key/)
  t.match(await page.textContent('#latency'), /^\d+ ms$/)
  t.match(await page.textContent('#budget'), /^\d+ of \d+ calls per second in use · \d+ waiting/, 'the cloud budget in use')
  t.match(await page.textContent('#frontend'), /FRONTEND_DIR/, 'the page says how to add the web UI')
  await page.waitForFunction('[...document.querySelectorAll("img.thumbnail")].some(img => img.complete && img.naturalWidth === 96)', undefined, { timeout: 20_000 })

  const slow = await submit(100)
  await page.waitForFunction(`document.querySelector("#inflight").textContent.includes(${JSON.stringify(slow)})`, undefined, { timeout: 20_000 })
  t.match(await page.textContent('#inflight'), /status-test/, 'the job in flight, with its client')
  await finished(slow)
  await page.waitForFunction(`[...document.querySelectorAll(".job")].some(card => card.dataset.promptId === ${JSON.stringify(slow)} && card.querySelector("img.thumbnail")?.naturalWidth === 96)`, undefined, { timeout: 20_000 })
  t.equal(await page.locator('.job').count(), 2, 'both finished jobs, the new one added without a reload')
  t.ok(Number(await page.evaluate('document.body.dataset.refreshes')) > 1, 'the page refreshed itself')
  t.same(failures, [], 'no failed request or script error')

  mkdirSync(ARTIFACTS, { recursive: true })
  const screenshot = join(ARTIFACTS, 'status-page.png')
  await page.screenshot({ path: screenshot, fullPage: true })
  t.ok(statSync(screenshot).size > 1000, `screenshot saved to ${screenshot}`)
})
