import t from 'tap'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer } from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { defaultGraph, getJson, getRawPath, postJson, runJob, startProxy, startStack } from '../helpers.js'

t.test('the key reaches the cloud only as X-API-Key; client credentials are never forwarded', async t => {
  const stack = await startStack(t)
  const clientHeaders = { authorization: 'Bearer client-secret', 'x-api-key': 'client-key', cookie: 'session=client-cookie' }
  await runJob(stack.url)
  await getJson(`${stack.url}/history`, { headers: clientHeaders })
  await getJson(`${stack.url}/prompt`, { headers: clientHeaders })
  await postJson(`${stack.url}/prompt`, { prompt: defaultGraph() }, clientHeaders)
  await postJson(`${stack.url}/history`, { clear: true }, clientHeaders)
  const requests = stack.simulator.app.simulator.requests
  t.ok(requests.length >= 5)
  for (const request of requests) {
    t.equal(request.headers['x-api-key'], stack.key, `${request.method} ${request.url} carries the server key`)
    t.equal(request.headers.authorization, undefined)
    t.equal(request.headers.cookie, undefined)
    t.notMatch(request.url, stack.key, 'never in a URL')
  }
})

t.test('the key never appears in a response or a log line at any level', async t => {
  const stack = await startStack(t, { cloudRetries: 0 })
  const sim = stack.simulator.app.simulator
  const texts: string[] = []
  const { promptId } = await runJob(stack.url, { prompt: defaultGraph(), extra_data: { api_key_comfy_org: stack.key } })
  texts.push((await getJson(`${stack.url}/history`)).text, (await getJson(`${stack.url}/history/${promptId}`)).text)
  sim.faults.set('*', { status: 500 })
  texts.push((await getJson(`${stack.url}/history`)).text, (await postJson(`${stack.url}/prompt`, { prompt: {} })).text)
  sim.faults.clear()
  texts.push((await getJson(`${stack.url}/nope?token=${stack.key}`)).text)
  t.ok(stack.logs.length > 10, 'trace logging captured')
  for (const text of [...texts, ...stack.logs]) t.notMatch(text, stack.key)
  t.ok(stack.logs.some(line => line.includes('[REDACTED]')), 'scrubbed where it would have appeared')
})

t.test('path parameters are encoded: no id reaches another cloud path', async t => {
  const stack = await startStack(t)
  const sim = stack.simulator.app.simulator
  for (const id of ['../../api/prompt', '..', 'a/b', 'x?status=pending', 'x#y', '%2e%2e']) {
    sim.requests.length = 0
    const { status } = await getRawPath(stack.url, `/history/${encodeURIComponent(id)}`)
    t.equal(status, 200, id)
    const calls = sim.requests.map(r => r.url)
    t.equal(calls.length, 1, id)
    t.match(calls[0], /^\/api\/jobs\/[^/?#]+$/, `${id} -> ${calls[0]}`)
    t.equal(decodeURIComponent(calls[0].slice('/api/jobs/'.length)), id, 'the id arrives intact')
  }
})

t.test('TLS certificates are verified: a self-signed cloud is refused', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'ccp-tls-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
    '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' })
  let reached = 0
  const server = createServer({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) }, (_req, res) => {
    reached++
    res.end('{"exec_info":{"queue_remaining":0}}')
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.close() })
  const proxy = await startProxy(t, { cloudUrl: `https://127.0.0.1:${(server.address() as { port: number }).port}`, apiKey: 'comfyui-secret', cloudRetries: 0 })
  const { status, body } = await getJson(`${proxy.url}/prompt`)
  t.equal(status, 502)
  t.equal(body.error.type, 'cloud_connection_failed')
  t.equal(reached, 0, 'no request (and no key) was sent over the unverified connection')
})
