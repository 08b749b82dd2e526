/**
 * The status page: static HTML, CSS and a small script, no framework and no build step. It reads
 * /proxy/status.json every 5 s (or every `?refresh=N` seconds). Everything that comes from the cloud is written with textContent,
 * never as HTML. With PROXY_AUTH_TOKEN set, the token the page was opened with (`?token=`) goes on
 * to its own requests and thumbnails.
 */
import { escapeHtml, FRONTEND_HINT } from './frontend.js'

export const STATUS_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>comfy-compat-proxy</title>
<style>
  body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; padding: 0 1rem; color: #1d2330; background: #f7f8fa; }
  h1 { font-size: 1.5rem; margin: 0 0 .25rem; }
  h2 { font-size: 1.1rem; margin: 1.5rem 0 .5rem; }
  .muted { color: #5b6475; }
  .card { background: #fff; border: 1px solid #dde1e8; border-radius: 8px; padding: .75rem 1rem; }
  .ok { color: #17733a; font-weight: 600; }
  .bad { color: #b3261e; font-weight: 600; }
  table { border-collapse: collapse; width: 100%; }
  td, th { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid #eceff3; vertical-align: top; }
  code { font-size: .9em; background: #eef0f4; padding: 0 .25em; border-radius: 3px; }
  .jobs { display: grid; grid-template-columns: repeat(auto-fill, minmax(10rem, 1fr)); gap: .75rem; }
  .job { background: #fff; border: 1px solid #dde1e8; border-radius: 8px; padding: .5rem; font-size: .85rem; overflow-wrap: anywhere; }
  .job img { width: 100%; aspect-ratio: 1; object-fit: contain; background: #eef0f4; border-radius: 4px; display: block; }
  .job .none { width: 100%; aspect-ratio: 1; background: #eef0f4; border-radius: 4px; display: grid; place-items: center; color: #5b6475; }
</style>
</head>
<body>
<h1>comfy-compat-proxy</h1>
<p class="muted">Local ComfyUI API, served from Comfy Cloud at <span id="cloud">…</span>. Point ComfyUI clients at this address.</p>

<h2>Comfy Cloud</h2>
<div class="card">
  <p>Check: <span id="verdict">…</span></p>
  <p class="muted">Latency: <span id="latency">…</span> · checked <span id="checked">…</span> · at startup: <span id="startup">…</span></p>
  <p>Cloud budget: <span id="budget">…</span></p>
  <p class="muted">For the full check of every route, run <code>comfy-compat-proxy doctor</code> (or <code>npm run doctor</code>).</p>
</div>

<h2>Jobs in flight through this proxy</h2>
<div class="card"><table><thead><tr><th>Prompt id</th><th>State</th><th>Client</th></tr></thead><tbody id="inflight"></tbody></table></div>

<h2>Latest finished jobs</h2>
<div id="latest" class="jobs"></div>

<h2>Web UI</h2>
<p class="muted" id="frontend">${escapeHtml(FRONTEND_HINT)} This page then stays at <code>/proxy/status</code>.</p>

<p class="muted">Refreshes every <span id="every">5</span> s (<code>?refresh=N</code> to change) · <span id="updated">loading…</span></p>
<script>
(() => {
  const token = new URLSearchParams(location.search).get('token')
  const withToken = (path) => token === null ? path : path + (path.includes('?') ? '&' : '?') + 'token=' + encodeURIComponent(token)
  const byId = (id) => document.getElementById(id)
  const el = (tag, text, className) => {
    const node = document.createElement(tag)
    if (text !== undefined) node.textContent = text
    if (className !== undefined) node.className = className
    return node
  }
  const when = (iso) => iso ? new Date(iso).toLocaleTimeString() : '–'

  function showCheck (check, startup) {
    const verdict = byId('verdict')
    verdict.textContent = (check.ok ? 'OK: ' : 'FAILED: ') + check.verdict
    verdict.className = check.ok ? 'ok' : 'bad'
    byId('latency').textContent = check.latencyMs == null ? 'unreachable' : check.latencyMs + ' ms'
    byId('checked').textContent = when(check.checkedAt)
    byId('startup').textContent = startup === null ? 'not run (built-in simulator or still running)' : (startup.ok ? 'passed' : 'failed: ' + startup.verdict)
  }

  function showBudget (budget) {
    const parts = [budget.inUse + ' of ' + budget.maxRps + ' calls per second in use', budget.waiting + ' waiting']
    if (budget.pausedForMs > 0) parts.push('reads paused for ' + Math.ceil(budget.pausedForMs / 1000) + ' s (Comfy Cloud asked the proxy to slow down)')
    byId('budget').textContent = parts.join(' · ')
  }

  function showInFlight (jobs) {
    const body = byId('inflight')
    body.replaceChildren()
    if (!Array.isArray(jobs)) { body.append(row([jobs.error], 'bad')); return }
    if (jobs.length === 0) { body.append(row(['none'], 'muted')); return }
    for (const job of jobs) body.append(row([job.prompt_id, job.state, job.client_id ?? '–']))
  }

  function row (cells, className) {
    const tr = el('tr', undefined, className)
    for (const cell of cells) tr.append(el('td', cell))
    if (cells.length === 1) tr.firstChild.colSpan = 3
    return tr
  }

  function showLatest (jobs) {
    const box = byId('latest')
    if (!Array.isArray(jobs)) { box.replaceChildren(el('p', jobs.error, 'bad')); return }
    if (jobs.length === 0) { box.replaceChildren(el('p', 'No finished job yet.', 'muted')); return }
    const cards = jobs.map(job => {
      const card = el('div', undefined, 'job')
      card.dataset.promptId = job.prompt_id
      if (job.image) {
        const img = el('img', undefined, 'thumbnail')
        img.alt = job.image.filename
        img.loading = 'lazy'
        img.src = withToken('/view?' + new URLSearchParams(job.image).toString())
        card.append(img)
      } else {
        card.append(el('div', job.status === 'completed' ? 'no image' : job.status, 'none'))
      }
      card.append(el('div', job.status + ' · ' + new Date(job.created).toLocaleString()))
      card.append(el('div', job.prompt_id, 'muted'))
      return card
    })
    // Unchanged cards are kept, so thumbnails do not flicker on every refresh.
    const current = [...box.querySelectorAll('.job')].map(card => card.dataset.promptId).join()
    if (current !== jobs.map(job => job.prompt_id).join()) box.replaceChildren(...cards)
  }

  async function refresh () {
    try {
      const response = await fetch(withToken('/proxy/status.json'), { headers: { accept: 'application/json' } })
      const status = await response.json()
      if (!response.ok) throw new Error(status.error?.message ?? 'HTTP ' + response.status)
      byId('cloud').textContent = status.cloud
      showCheck(status.check, status.startup_check)
      showBudget(status.budget)
      showInFlight(status.in_flight)
      showLatest(status.latest)
      byId('updated').textContent = 'updated ' + new Date().toLocaleTimeString()
      document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes ?? 0) + 1)
    } catch (error) {
      byId('updated').textContent = 'could not update: ' + error.message
    }
  }
  const seconds = Number(new URLSearchParams(location.search).get('refresh'))
  const every = Number.isFinite(seconds) && seconds >= 1 ? seconds : 5
  byId('every').textContent = String(every)
  refresh()
  setInterval(refresh, every * 1000)
})()
</script>
</body>
</html>
`
