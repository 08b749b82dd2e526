/** PROXY_AUTH_TOKEN for browsers: a one-time `?token=` becomes an HttpOnly cookie (issue 15 rule 4). */
import t from 'tap'
import WebSocket from 'ws'
import { cookieValue, tokenCookie } from '../../src/auth.js'
import { getJson, startStack } from '../helpers.js'

const TOKEN = 'browser-secret-token'
const PAGE = { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' }

async function signIn (url: string): Promise<{ response: Response, cookie: string }> {
  const response = await fetch(`${url}/?token=${TOKEN}&keep=1`, { headers: PAGE, redirect: 'manual' })
  const setCookie = response.headers.get('set-cookie') ?? ''
  return { response, cookie: setCookie.split(';')[0] }
}

t.test('a page load with ?token= trades it for an HttpOnly cookie and a clean URL', async t => {
  const stack = await startStack(t, { proxyAuthToken: TOKEN })
  const { response, cookie } = await signIn(stack.url)
  t.equal(response.status, 303)
  t.equal(response.headers.get('location'), '/?keep=1', 'the token left the URL, the rest stayed')
  const setCookie = response.headers.get('set-cookie') ?? ''
  const port = new URL(stack.url).port
  t.match(setCookie, new RegExp(`^comfy_compat_proxy_${port}=`), 'the name carries the port: cookies are per host only')
  t.match(setCookie, /; Path=\/; HttpOnly; SameSite=Strict$/)
  t.notMatch(setCookie, TOKEN, 'the cookie holds an HMAC of the token, not the token')

  t.equal((await getJson(`${stack.url}/api/settings`)).status, 401, 'without it the API stays closed')
  const withCookie = await getJson(`${stack.url}/api/settings`, { headers: { cookie: `other=1; ${cookie}` } })
  t.equal(withCookie.status, 200)
  const page = await fetch(`${stack.url}/`, { headers: { ...PAGE, cookie } })
  t.equal(page.status, 200)

  const socket = new WebSocket(`${stack.url.replace('http', 'ws')}/ws?clientId=c1`, { headers: { cookie } })
  const first = await new Promise<string>((resolve, reject) => {
    socket.once('message', (data: Buffer) => { resolve(data.toString()) })
    socket.once('error', reject)
  })
  t.match(JSON.parse(first), { type: 'status', data: { sid: 'c1' } }, 'the WebSocket gets in with the cookie')
  socket.close()

  const sim = stack.simulator.app.simulator
  sim.requests.length = 0
  t.equal((await getJson(`${stack.url}/api/object_info`, { headers: { cookie } })).status, 200)
  t.equal(sim.requests[0].headers.cookie, undefined, 'the cookie is never forwarded')
  for (const line of stack.logs) t.notMatch(line, TOKEN)
})

t.test('only the right cookie, for this port, lets a browser in', async t => {
  const stack = await startStack(t, { proxyAuthToken: TOKEN })
  const port = new URL(stack.url).port
  const wrongToken = tokenCookie('another-token', `127.0.0.1:${port}`)
  const otherPort = tokenCookie(TOKEN, '127.0.0.1:1')
  for (const cookie of [`${wrongToken.name}=${wrongToken.value}`, `${otherPort.name}=${otherPort.value}`, `comfy_compat_proxy_${port}=${TOKEN}`, `comfy_compat_proxy_${port}=`]) {
    t.equal((await getJson(`${stack.url}/api/settings`, { headers: { cookie } })).status, 401, cookie)
  }
  const right = tokenCookie(TOKEN, `127.0.0.1:${port}`)
  t.equal((await getJson(`${stack.url}/api/settings`, { headers: { cookie: `${right.name}=${right.value}` } })).status, 200)
})

t.test('API clients using ?token= are answered, not redirected; a wrong token gets no cookie', async t => {
  const stack = await startStack(t, { proxyAuthToken: TOKEN })
  const api = await fetch(`${stack.url}/api/settings?token=${TOKEN}`, { redirect: 'manual' })
  t.equal(api.status, 200)
  t.equal(api.headers.get('set-cookie'), null)
  const bearer = await fetch(`${stack.url}/?token=${TOKEN}`, { headers: { ...PAGE, authorization: `Bearer ${TOKEN}` }, redirect: 'manual' })
  t.equal(bearer.status, 200, 'a header-authenticated page load is served as it is')
  const wrong = await fetch(`${stack.url}/?token=wrong`, { headers: PAGE, redirect: 'manual' })
  t.equal(wrong.status, 401)
  t.equal(wrong.headers.get('set-cookie'), null)
  t.match(((await wrong.json()) as { error: { message: string } }).error.message, /\?token=/, 'the refusal says how a browser gets in')
})

t.test('cookieValue reads one cookie out of a Cookie header', async t => {
  t.equal(cookieValue('a=1; b=2', 'b'), '2')
  t.equal(cookieValue('a=1;b=x=y', 'b'), 'x=y')
  t.equal(cookieValue('ab=1', 'a'), undefined)
  t.equal(cookieValue(undefined, 'a'), undefined)
})
