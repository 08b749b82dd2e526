/**
 * The deployment examples, parsed as YAML: the compose files and Kubernetes manifests configure the
 * proxy only with options it knows and values it accepts, keep the image's state file on a volume
 * (or use Redis), and the Kubernetes gateway wires its replicas, Redis, Secret, Service and probes
 * together. The gateway's own settings then run a real proxy on a real Redis: probes pass, clients
 * naming the Service are served with the token, and nothing else is.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, posix } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { request } from 'undici'
import { parseAllDocuments } from 'yaml'
import { buildApp } from '../../src/app.js'
import { loadConfig, options } from '../../src/config.js'
import { startSimulator } from '../../src/simulator/app.js'
import { startRedis } from '../fixtures/redis.js'
import { testKey, waitFor } from '../helpers.js'

const root = fileURLToPath(new URL('../..', import.meta.url))
const read = (file: string): string => readFileSync(join(root, file), 'utf8')
const knownVariables = new Set(Object.values(options).map(option => option['x-env']))
const IMAGE = /^comfy-compat-proxy(?::|$)/

/** Every document of a YAML file, failing the test on any syntax error or warning. */
function documents (file: string): any[] {
  return parseAllDocuments(read(file)).flatMap(document => {
    if (document.errors.length > 0 || document.warnings.length > 0) throw new Error(`${file}: ${[...document.errors, ...document.warnings].map(e => e.message).join('; ')}`)
    const value = document.toJS()
    return value === null ? [] : [value]
  })
}

/** The image's STATE_FILE, from the Dockerfile's last ENV that sets it. */
const imageStateFile = [...read('Dockerfile').matchAll(/^ENV\s.*\bSTATE_FILE=(\S+)/gm)].at(-1)?.[1] ?? ''

interface ProxyContainer {
  where: string
  env: Record<string, string>
  /** env values taken from a Secret: the Secret stub's value */
  mounts: string[]
  readOnlyRoot: boolean
}

/** A pod template's containers running the proxy image, with their env resolved against the file's Secrets. */
function kubernetesProxies (file: string): ProxyContainer[] {
  const docs = documents(file)
  const secrets = new Map<string, Record<string, string>>(docs.filter(d => d.kind === 'Secret').map(d => [d.metadata.name, d.stringData ?? {}]))
  return docs.filter(d => d.kind === 'Deployment').flatMap(d => (d.spec.template.spec.containers as any[])
    .filter(c => IMAGE.test(c.image))
    .map(c => ({
      where: `${file} ${d.metadata.name}/${c.name}`,
      env: Object.fromEntries((c.env ?? []).map((e: any) => [e.name, e.value ?? secrets.get(e.valueFrom?.secretKeyRef?.name)?.[e.valueFrom?.secretKeyRef?.key]])),
      mounts: (c.volumeMounts ?? []).filter((m: any) => m.readOnly !== true).map((m: any) => m.mountPath),
      readOnlyRoot: c.securityContext?.readOnlyRootFilesystem === true
    })))
}

function composeProxies (file: string): ProxyContainer[] {
  const [compose] = documents(file)
  return Object.entries(compose.services as Record<string, any>).filter(([, s]) => IMAGE.test(s.image ?? '')).map(([name, s]) => ({
    where: `${file} ${name}`,
    env: Array.isArray(s.environment) ? Object.fromEntries(s.environment.map((e: string) => e.split(/=(.*)/s).slice(0, 2))) : { ...s.environment },
    mounts: [...(s.volumes ?? []).map((v: string | { target: string }) => typeof v === 'string' ? v.split(':')[1] : v.target), ...(s.tmpfs ?? [])],
    readOnlyRoot: s.read_only === true
  }))
}

const proxies = [
  ...kubernetesProxies('deploy/kubernetes.yaml'),
  ...kubernetesProxies('deploy/kubernetes-gateway.yaml'),
  ...composeProxies('docker-compose.yml'),
  ...composeProxies('deploy/docker-compose.fleet.yml')
]

t.test('every example sets only options the proxy knows, with values it accepts', async t => {
  t.equal(proxies.length, 4, 'a proxy in each of the four examples')
  const dir = mkdtempSync(join(tmpdir(), 'ccp-deploy-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const keyFile = join(dir, 'key')
  writeFileSync(keyFile, 'comfyui-example-key\n')
  for (const proxy of proxies) {
    t.same(Object.keys(proxy.env).filter(name => !knownVariables.has(name)), [], `${proxy.where}: every variable is in config/schema.json`)
    t.notOk('COMFY_CLOUD_API_KEY' in proxy.env, `${proxy.where}: the key comes from a file, not the environment`)
    // Loaded as the proxy would, with the key file at a path of this machine.
    const env = { ...proxy.env, ...(proxy.env.COMFY_CLOUD_API_KEY_FILE === undefined ? {} : { COMFY_CLOUD_API_KEY_FILE: keyFile }) }
    t.doesNotThrow(() => loadConfig(env), `${proxy.where}: a valid configuration`)
  }
})

t.test('the image\'s state file is on a writable volume wherever the proxy does not use Redis', async t => {
  t.match(imageStateFile, /^\//, `the image sets STATE_FILE (${imageStateFile})`)
  for (const proxy of proxies) {
    if (proxy.env.REDIS_URL !== undefined) continue
    const stateFile = proxy.env.STATE_FILE ?? imageStateFile
    t.ok(proxy.mounts.includes(posix.dirname(stateFile)), `${proxy.where}: ${posix.dirname(stateFile)} is a volume (the root is ${proxy.readOnlyRoot ? 'read-only' : 'writable'})`)
  }
})

const gateway = documents('deploy/kubernetes-gateway.yaml')
const byKind = (kind: string): any[] => gateway.filter(d => d.kind === kind)
const selects = (service: any, deployment: any): boolean =>
  Object.entries(service.spec.selector as Record<string, string>).every(([k, v]) => deployment.spec.template.metadata.labels[k] === v)
const proxyDeployment = byKind('Deployment').find(d => d.spec.template.spec.containers.some((c: any) => IMAGE.test(c.image)))
const proxyContainer = proxyDeployment?.spec.template.spec.containers.find((c: any) => IMAGE.test(c.image))
const [gatewayProxy] = kubernetesProxies('deploy/kubernetes-gateway.yaml')

t.test('deploy/kubernetes-gateway.yaml: replicas on one Redis, the key from a Secret file, a Service in front, probes', async t => {
  t.ok(proxyDeployment?.spec.replicas >= 2, `several proxy replicas (${String(proxyDeployment?.spec.replicas)})`)

  const redisUrl = new URL(gatewayProxy.env.REDIS_URL)
  const redisService = byKind('Service').find(s => s.metadata.name === redisUrl.hostname)
  t.ok(redisService, `REDIS_URL names a Service of the file (${redisUrl.hostname})`)
  t.ok(redisService?.spec.ports.some((p: any) => String(p.port) === (redisUrl.port || '6379')), 'on its port')
  const redis = byKind('Deployment').find(d => redisService !== undefined && selects(redisService, d))
  t.match(redis?.spec.template.spec.containers[0].image, /^redis:/, 'which selects a Redis Deployment')

  const keyFile = gatewayProxy.env.COMFY_CLOUD_API_KEY_FILE
  const mount = proxyContainer.volumeMounts.find((m: any) => m.mountPath === posix.dirname(keyFile))
  const volume = proxyDeployment.spec.template.spec.volumes.find((v: any) => v.name === mount?.name)
  const secret = byKind('Secret').find(s => s.metadata.name === volume?.secret?.secretName)
  t.ok(secret !== undefined && posix.basename(keyFile) in secret.stringData &&
    (volume.secret.items === undefined || volume.secret.items.some((i: any) => i.path === posix.basename(keyFile))),
  `COMFY_CLOUD_API_KEY_FILE (${keyFile}) is a file of the Secret's volume`)
  t.ok(gatewayProxy.env.PROXY_AUTH_TOKEN, 'reachable from the cluster: PROXY_AUTH_TOKEN is set, from the Secret')

  const service = byKind('Service').find(s => selects(s, proxyDeployment))
  t.ok(service, 'a Service selects the proxy replicas')
  const port = proxyContainer.ports.find((p: any) => p.containerPort === 8188)
  t.ok(service?.spec.ports.some((p: any) => p.targetPort === 8188 || (port?.name !== undefined && p.targetPort === port.name)), 'and forwards to port 8188')
  t.equal(proxyContainer.livenessProbe?.httpGet?.path, '/healthz', 'liveness on /healthz')
  t.equal(proxyContainer.readinessProbe?.httpGet?.path, '/readyz', 'readiness on /readyz')
})

t.test('deploy/kubernetes-gateway.yaml\'s settings on a real Redis: probes pass, clients of the Service are served with the token', async t => {
  const redis = await startRedis(t)
  const key = testKey()
  const cloud = await startSimulator({ apiKeys: [key], host: '127.0.0.1', port: 0, stepMs: 1 })
  t.teardown(async () => { await cloud.close() })
  const dir = mkdtempSync(join(tmpdir(), 'ccp-gateway-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  writeFileSync(join(dir, 'key'), key)
  // The manifest's environment, with this machine's key file, simulator and Redis in place of the cluster's.
  const config = loadConfig({ ...gatewayProxy.env, COMFY_CLOUD_API_KEY_FILE: join(dir, 'key'), COMFY_CLOUD_URL: cloud.url, REDIS_URL: redis.url, LOG_LEVEL: 'warn' })
  const app = buildApp(config)
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(async () => { await app.close() })
  const origin = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
  await waitFor(async () => app.store.healthy ? true : undefined, 10_000, 'the proxy on Redis')
  const get = async (path: string, headers: Record<string, string>): Promise<{ status: number, body: any }> => {
    const response = await request(`${origin}${path}`, { headers })
    const text = await response.body.text()
    return { status: response.statusCode, body: text === '' ? undefined : JSON.parse(text) }
  }
  const probeHeaders = (probe: any): Record<string, string> =>
    Object.fromEntries((probe.httpGet.httpHeaders ?? [{ name: 'Host', value: '10.0.0.7:8188' }]).map((h: any) => [h.name.toLowerCase(), h.value]))

  t.same(await get('/healthz', probeHeaders(proxyContainer.livenessProbe)), { status: 200, body: { status: 'ok' } }, 'the liveness probe passes')
  const ready = await get('/readyz', probeHeaders(proxyContainer.readinessProbe))
  t.equal(ready.status, 200, 'the readiness probe passes')
  t.same(ready.body.state, { store: 'redis', healthy: true }, 'on the shared Redis')

  const token = { authorization: `Bearer ${gatewayProxy.env.PROXY_AUTH_TOKEN}` }
  for (const host of gatewayProxy.env.ALLOWED_HOSTS.split(',')) {
    t.equal((await get('/prompt', { host: `${host}:8188`, ...token })).status, 200, `a client naming ${host} with the token is served`)
  }
  t.equal((await get('/prompt', { host: 'comfy-compat-proxy:8188' })).status, 401, 'without the token it is not')
  t.equal((await get('/prompt', { host: 'rebound.example:8188', ...token })).status, 403, 'nor is a Host the gateway does not serve')
})
