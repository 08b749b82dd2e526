/**
 * The container files, checked without a Docker engine:
 * - lint: Dockerfile, docker-compose.yml and deploy/kubernetes.yaml follow the image and deployment rules;
 * - rehearsal: the Dockerfile's own steps (parsed from it, so they cannot drift) run in a temporary directory,
 *   one directory per stage, and the runtime stage's CMD must serve /healthz and /readyz, pass the HEALTHCHECK
 *   and exit 0 on SIGTERM.
 */
import t from 'tap'
import { execFile, execFileSync, spawn } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join, posix } from 'node:path'
import { fileURLToPath } from 'node:url'

// Two npm ci runs, each compiling better-sqlite3 from source (its prebuilt binaries are not on the npm registry);
// on a loaded 2-core machine one took over 240 s.
t.setTimeout(900_000)

const root = fileURLToPath(new URL('../..', import.meta.url))
const read = (file: string): string => readFileSync(join(root, file), 'utf8')

// ---------------------------------------------------------------- Dockerfile parsing

interface Instruction { cmd: string, args: string, line: number }
interface Stage { name: string, base: string, instructions: Instruction[] }

/** Instructions with line continuations joined and comment lines (also inside continuations) dropped, split into stages. */
function parseDockerfile (text: string): Stage[] {
  const instructions: Instruction[] = []
  let buffer = ''
  let start = 0
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim()
    if (line.startsWith('#') || (buffer === '' && line === '')) return
    if (buffer === '') start = i + 1
    if (line.endsWith('\\')) { buffer += line.slice(0, -1) + ' '; return }
    buffer += line
    const [, cmd, args] = /^(\S+)\s*([\s\S]*)$/.exec(buffer) ?? []
    instructions.push({ cmd: cmd.toUpperCase(), args: args.trim(), line: start })
    buffer = ''
  })
  const stages: Stage[] = []
  for (const instruction of instructions) {
    if (instruction.cmd === 'FROM') {
      const [, base, name] = /^(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?$/i.exec(instruction.args) ?? []
      stages.push({ name: name ?? '', base: base ?? '', instructions: [] })
    } else if (stages.length > 0) {
      stages[stages.length - 1].instructions.push(instruction)
    } else if (instruction.cmd !== 'ARG') {
      throw new Error(`line ${instruction.line}: ${instruction.cmd} before FROM`)
    }
  }
  return stages
}

/** `--name=value` options at the start of an instruction's arguments, and the rest. */
function flags (args: string): { flags: Record<string, string>, rest: string } {
  const found: Record<string, string> = {}
  let rest = args
  for (let m = /^--([\w-]+)(?:=(\S*))?\s*/.exec(rest); m !== null; m = /^--([\w-]+)(?:=(\S*))?\s*/.exec(rest)) {
    found[m[1]] = m[2] ?? ''
    rest = rest.slice(m[0].length)
  }
  return { flags: found, rest }
}

/** Exec form (a JSON array) as is; shell form as Docker runs it. */
function argv (args: string): { argv: string[], exec: boolean } {
  if (args.startsWith('[')) return { argv: JSON.parse(args) as string[], exec: true }
  return { argv: ['/bin/sh', '-c', args], exec: false }
}

function parseEnv (args: string): Record<string, string> {
  const unquote = (v: string): string => /^(["']).*\1$/.test(v) ? v.slice(1, -1) : v
  if (!/^[\w.-]+=/.test(args)) { // legacy `ENV name value`
    const [, name, value] = /^(\S+)\s+([\s\S]*)$/.exec(args) ?? []
    return { [name]: unquote(value) }
  }
  const env: Record<string, string> = {}
  for (const m of args.matchAll(/([\w.-]+)=("(?:[^"\\]|\\.)*"|'[^']*'|\S*)/g)) env[m[1]] = unquote(m[2])
  return env
}

/** The paths of a VOLUME instruction, JSON or plain form. */
const volumes = (args: string): string[] => args.startsWith('[') ? JSON.parse(args) as string[] : args.split(/\s+/)
const all = (stage: Stage, cmd: string): Instruction[] => stage.instructions.filter(i => i.cmd === cmd)
const last = (stage: Stage, cmd: string): Instruction | undefined => all(stage, cmd).at(-1)
const stageEnv = (stage: Stage): Record<string, string> => Object.assign({}, ...all(stage, 'ENV').map(i => parseEnv(i.args)))

const stages = parseDockerfile(read('Dockerfile'))
const runtime = stages[stages.length - 1]
const byName = new Map(stages.map(s => [s.name, s]))

/** A stage's or an image's `RUN`s, following `FROM <stage>`. */
function runsOf (stage: Stage | undefined): string[] {
  if (stage === undefined) return []
  return [...runsOf(byName.get(stage.base)), ...all(stage, 'RUN').map(i => i.args)]
}

const pruned = /\bnpm\s+(?:ci|install|prune)\b[^&;|]*(?:--omit[= ]dev|--production|--only[= ]prod)/

t.test('Dockerfile: multi-stage, slim Node 22/24, production dependencies, non-root, probed, no secrets', async t => {
  t.ok(stages.length >= 2, 'at least two stages')
  for (const stage of stages) t.match(stage.name, /^[a-z][\w.-]*$/, `stage FROM ${stage.base} is named with AS`)
  t.match(runtime.base, /^node:(?:22|24)(?:\.\d+)*-(?:[a-z]+-)?(?:slim|alpine[\d.]*)(?:@sha256:[0-9a-f]{64})?$/, 'runtime base is node 22/24 slim or alpine')

  const modulesCopy = all(runtime, 'COPY').map(i => flags(i.args)).find(c => c.flags.from !== undefined && /node_modules/.test(c.rest))
  const prunedRuns = modulesCopy === undefined ? runsOf(runtime) : runsOf(byName.get(modulesCopy.flags.from))
  t.ok(prunedRuns.some(run => pruned.test(run)), 'runtime node_modules come from npm ci --omit=dev (or a prune)')

  const user = last(runtime, 'USER')?.args
  t.ok(user !== undefined && !/^(?:root|0)(?::|$)/.test(user), `runtime runs as a non-root USER (${String(user)})`)

  const env = stageEnv(runtime)
  t.equal(env.HOST, '0.0.0.0', 'ENV HOST=0.0.0.0')
  t.equal(env.PORT, '8188', 'ENV PORT=8188')
  t.equal(env.NODE_ENV, 'production', 'ENV NODE_ENV=production')
  t.ok(all(runtime, 'EXPOSE').some(i => i.args.split(/\s+/).includes('8188') || i.args.split(/\s+/).includes('8188/tcp')), 'EXPOSE 8188')

  const healthcheck = last(runtime, 'HEALTHCHECK')
  const probe = argv(flags(healthcheck?.args ?? '').rest.replace(/^CMD\s+/i, ''))
  t.equal(probe.argv[0], 'node', 'HEALTHCHECK runs node (no curl in slim images)')
  t.match(probe.argv.join(' '), /\/healthz/, 'HEALTHCHECK requests /healthz')

  const stateDir = posix.dirname(env.STATE_FILE ?? '/')
  t.match(env.STATE_FILE, /^\/\S+$/, 'ENV STATE_FILE: the file store by default, at an absolute path')
  const volume = all(runtime, 'VOLUME').find(i => volumes(i.args).includes(stateDir))
  t.ok(volume, `its folder ${stateDir} is a VOLUME, so the state outlives the container`)
  const made = all(runtime, 'RUN').find(i => new RegExp(`mkdir\\b[^&;|]*\\s${stateDir}\\b[\\s\\S]*chown\\s+(?:-\\w+\\s+)*${user ?? '?'}(?::\\S+)?\\s+${stateDir}\\b`).test(i.args))
  t.ok(made !== undefined && volume !== undefined && made.line < volume.line, `a RUN creates ${stateDir} for ${String(user)} before the VOLUME (later changes to a volume folder are discarded)`)

  const cmd = argv(last(runtime, 'CMD')?.args ?? '[]')
  t.ok(cmd.exec, 'CMD is in exec form, so SIGTERM reaches node')
  t.same(cmd.argv, ['node', 'dist/server.js'], 'CMD runs node dist/server.js')
  t.equal(all(runtime, 'ENTRYPOINT').length, 0, 'no ENTRYPOINT wraps the CMD')

  const instructions = stages.flatMap(s => s.instructions)
  t.same(instructions.filter(i => i.cmd === 'ADD' && /\b(?:https?|git|ssh):\/\/|git@/.test(i.args)).map(i => i.line), [], 'no ADD of URLs')
  const secretNames = instructions.filter(i => i.cmd === 'ENV' || i.cmd === 'ARG')
    .flatMap(i => i.cmd === 'ENV' ? Object.keys(parseEnv(i.args)) : [i.args.split('=')[0]])
    .filter(name => /KEY|SECRET|TOKEN|PASSWORD|CREDENTIAL/i.test(name) && !/_FILE$/.test(name))
  t.same(secretNames, [], 'no secrets baked in with ENV or ARG')
})

// ---------------------------------------------------------------- .dockerignore and the build context

/** A .dockerignore matcher: the last pattern matching the path or one of its parent directories decides. */
function dockerignore (text: string): (path: string) => boolean {
  const toRegExp = (glob: string): RegExp => new RegExp('^' + glob.split('**/').map(a => a.split('**').map(b => b.split('*').map(c =>
    c.split('?').map(d => d.replace(/[.+^${}()|[\]\\]/g, '\\$&')).join('[^/]')).join('[^/]*')).join('.*')).join('(?:.*/)?') + '$')
  const rules = text.split('\n').map(l => l.trim()).filter(l => l !== '' && !l.startsWith('#')).map(line => {
    const negate = line.startsWith('!')
    return { negate, re: toRegExp(posix.normalize(negate ? line.slice(1).trim() : line).replace(/^\/+|\/+$/g, '')) }
  })
  return path => {
    const prefixes = path.split('/').map((_, i, parts) => parts.slice(0, i + 1).join('/'))
    let excluded = false
    for (const { negate, re } of rules) if (prefixes.some(p => re.test(p))) excluded = !negate
    return excluded
  }
}

const ignored = dockerignore(existsSync(join(root, '.dockerignore')) ? read('.dockerignore') : '')

t.test('.dockerignore keeps local builds, VCS data, tests and secrets out of the context', async t => {
  for (const path of ['node_modules/x/index.js', 'dist/server.js', '.git/HEAD', '.tap/x', 'coverage/x', 'test/x.test.ts', '.env', 'secrets/comfy_cloud_api_key']) {
    t.ok(ignored(path), `ignores ${path}`)
  }
  for (const path of ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'src/server.ts', 'config/schema.json']) {
    t.notOk(ignored(path), `keeps ${path}`)
  }
})

// ---------------------------------------------------------------- docker-compose.yml and deploy/kubernetes.yaml (no YAML parser: line checks)

const yamlLines = (text: string): string[] => text.split('\n').filter(l => !/^\s*#/.test(l))
const indent = (line: string): number => line.search(/\S/)

/** The first line matching `re` (from line `from` on) and the lines indented under it, as text. */
function block (lines: string[], re: RegExp, from = 0): string {
  const i = lines.findIndex((l, j) => j >= from && re.test(l))
  if (i < 0) return ''
  let end = i + 1
  while (end < lines.length && (lines[end].trim() === '' || indent(lines[end]) > indent(lines[i]))) end++
  return lines.slice(i, end).join('\n')
}

t.test('docker-compose.yml: the proxy as a sidecar, its key from a secret file, health-checked and restarted', async t => {
  const lines = yamlLines(read('docker-compose.yml'))
  const services = block(lines, /^services:/).split('\n')
  const proxy = block(services, /^ {2}comfy-compat-proxy:/)
  t.ok(proxy !== '', 'a comfy-compat-proxy service')
  t.match(proxy, /^\s+(?:build|image):/m, 'built from this Dockerfile or an image')
  const keyFile = /COMFY_CLOUD_API_KEY_FILE:\s*["']?\/run\/secrets\/([\w.-]+)/.exec(proxy)?.[1]
  t.ok(keyFile, 'COMFY_CLOUD_API_KEY_FILE names a file under /run/secrets')
  t.match(block(proxy.split('\n'), /^\s+secrets:/), new RegExp(`-\\s+(?:source:\\s*)?${keyFile ?? '?'}\\s*$`, 'm'), 'the service mounts that secret')
  t.match(block(lines, /^secrets:/), new RegExp(`^ {2}${keyFile ?? '?'}:\\s*\\n\\s+file:\\s*\\S+`, 'm'), 'the secret is read from a file')
  t.notMatch(proxy, /COMFY_CLOUD_API_KEY:/, 'no key in the environment')
  t.match(block(proxy.split('\n'), /^\s+healthcheck:/), /test:.*\/healthz/, 'healthcheck on /healthz')
  t.match(proxy, /^\s+restart:\s*(?:always|unless-stopped|on-failure)/m, 'restart policy')
  const apps = services.flatMap((l, i) => /^ {2}[\w.-]+:/.test(l) && !/^ {2}comfy-compat-proxy:/.test(l) ? [block(services, /^/, i)] : [])
  t.ok(apps.some(app => /http:\/\/comfy-compat-proxy:8188|network_mode:\s*["']?service:comfy-compat-proxy/.test(app)),
    'an app service reaches the proxy at http://comfy-compat-proxy:8188 (or shares its network)')
})

t.test('deploy/kubernetes.yaml: the proxy as a sidecar with probes, limits, a non-root read-only container and the key from a Secret file', async t => {
  const documents = read('deploy/kubernetes.yaml').split(/^---\s*$/m)
  const deployment = yamlLines(documents.find(d => /^kind:\s*Deployment\b/m.test(d)) ?? '')
  const secret = documents.find(d => /^kind:\s*Secret\b/m.test(d)) ?? ''
  const containers = block(deployment, /^\s+containers:/).split('\n')
  const proxy = block(containers, /^\s+- name:\s*comfy-compat-proxy\s*$/)
  const proxyLines = proxy.split('\n')
  t.ok(proxy !== '', 'a comfy-compat-proxy container')
  t.ok(containers.filter(l => /^\s+- name:/.test(l)).length >= 2, 'next to an app container')
  t.match(containers.join('\n'), /(?:localhost|127\.0\.0\.1):8188/, 'the app reaches the proxy on localhost:8188')

  t.match(block(proxyLines, /^\s+livenessProbe:/), /\/healthz/, 'liveness probe on /healthz')
  t.match(block(proxyLines, /^\s+readinessProbe:/), /\/readyz/, 'readiness probe on /readyz')
  t.match(block(proxyLines, /^\s+resources:/), /requests:[\s\S]*limits:|limits:[\s\S]*requests:/, 'resource requests and limits')
  const context = block(proxyLines, /^\s+securityContext:/)
  t.match(context, /readOnlyRootFilesystem:\s*true/, 'readOnlyRootFilesystem')
  t.match(deployment.join('\n'), /runAsNonRoot:\s*true/, 'runAsNonRoot')

  const keyFile = /name:\s*COMFY_CLOUD_API_KEY_FILE\s*\n\s*value:\s*["']?(\/\S+?)["']?\s*$/m.exec(proxy)?.[1] ?? ''
  t.ok(keyFile, 'COMFY_CLOUD_API_KEY_FILE is set')
  t.notMatch(proxy, /name:\s*COMFY_CLOUD_API_KEY\s*$/m, 'no key in the environment')
  const mount = /- name:\s*(\S+)\s*\n\s*mountPath:\s*(\S+)/g
  const volume = [...block(proxyLines, /^\s+volumeMounts:/).matchAll(mount)].find(m => m[2] === posix.dirname(keyFile))?.[1]
  t.ok(volume, `a volume is mounted at ${posix.dirname(keyFile)}`)
  const secretName = /secret:\s*\n\s*secretName:\s*(\S+)/.exec(block(deployment, new RegExp(`^\\s+- name:\\s*${volume ?? '?'}\\s*$`), deployment.findIndex(l => /^\s+volumes:/.test(l))))?.[1]
  t.ok(secretName, 'that volume is a Secret')
  t.match(secret, new RegExp(`^\\s+name:\\s*${secretName ?? '?'}\\s*$`, 'm'), 'the Secret stub is included')
  t.match(secret, new RegExp(`^\\s+${posix.basename(keyFile)}:`, 'm'), `the Secret holds the key ${posix.basename(keyFile)}`)
})

// ---------------------------------------------------------------- rehearsal

/** Commands that need root or the image's package manager, or would wipe this machine's npm cache: skipped. */
const cannotRunHere = /\b(?:addgroup|adduser|groupadd|useradd|usermod|chown|apt-get|apk)\b|\bnpm cache clean\b/

interface Result { code: number | null, output: string }

function run (file: string, args: string[], options: { cwd: string, env: NodeJS.ProcessEnv, timeout: number }): Promise<Result> {
  return new Promise(resolve => {
    execFile(file, args, { ...options, maxBuffer: 64 * 1024 * 1024, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null
      resolve({ code, output: `${stdout}${stderr}`.slice(-4000) })
    })
  })
}

/** This environment minus npm's, tap's and the proxy's own variables, so that children behave as in a container. */
function cleanEnv (): NodeJS.ProcessEnv {
  const keep = /^(?:PATH|HOME|TMPDIR|LANG|npm_config_cache|npm_config_registry|(?:https?|no)_proxy)$/i
  return Object.fromEntries(Object.entries(process.env).filter(([name]) => keep.test(name)))
}

async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer().once('error', reject).listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => { resolve(typeof address === 'object' && address !== null ? address.port : 0) })
    })
  })
}

const sleep = async (ms: number): Promise<void> => await new Promise(resolve => setTimeout(resolve, ms))

t.test('rehearsal: the Dockerfile\'s steps, run outside Docker, build an image that serves, probes and stops', async t => {
  const started = Date.now()
  const work = mkdtempSync(join(tmpdir(), 'comfy-compat-proxy-docker-'))
  let child: ReturnType<typeof spawn> | undefined
  t.teardown(() => {
    if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    rmSync(work, { recursive: true, force: true })
  })

  // The build context: what git tracks plus untracked files it does not ignore, minus .dockerignore.
  const context = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: root, encoding: 'utf8' })
    .split('\0').filter(f => f !== '' && !ignored(f) && existsSync(join(root, f)) && statSync(join(root, f)).isFile())

  const stageRoots = new Map<string, string>()
  for (const stage of stages) {
    const fsRoot = join(work, stage.name)
    const base = stageRoots.get(stage.base)
    if (base !== undefined) cpSync(base, fsRoot, { recursive: true })
    else mkdirSync(fsRoot)
    stageRoots.set(stage.name, fsRoot)
    let workdir = '/'
    const env: Record<string, string> = {}
    for (const instruction of stage.instructions) {
      const where = `${stage.name}, line ${instruction.line}: ${instruction.cmd} ${instruction.args}`
      switch (instruction.cmd) {
        case 'WORKDIR':
          workdir = posix.resolve(workdir, instruction.args)
          mkdirSync(join(fsRoot, workdir), { recursive: true })
          break
        case 'ENV':
          Object.assign(env, parseEnv(instruction.args))
          break
        case 'COPY': {
          const { flags: options, rest } = flags(instruction.args)
          const parts = rest.startsWith('[') ? JSON.parse(rest) as string[] : rest.split(/\s+/)
          const sources = parts.slice(0, -1)
          const dest = parts[parts.length - 1]
          const into = dest.endsWith('/') || sources.length > 1
          const target = join(fsRoot, posix.resolve(workdir, dest))
          for (const source of sources) {
            if (options.from !== undefined) {
              const from = stageRoots.get(options.from)
              if (from === undefined) { t.fail(`${where}: no earlier stage ${options.from}`); return }
              const path = join(from, posix.resolve('/', source))
              if (!existsSync(path)) { t.fail(`${where}: ${source} does not exist in stage ${options.from}`); return }
              const file = statSync(path).isFile()
              cpSync(path, file && into ? join(target, posix.basename(source)) : target, { recursive: true })
              continue
            }
            const prefix = posix.normalize(source).replace(/^\.?\/*|\/+$/g, '')
            const file = context.includes(prefix)
            const files = file ? [prefix] : context.filter(f => prefix === '' || f.startsWith(`${prefix}/`))
            if (files.length === 0) { t.fail(`${where}: ${source} is not in the build context`); return }
            for (const f of files) {
              const to = file ? (into ? join(target, posix.basename(f)) : target) : join(target, prefix === '' ? f : f.slice(prefix.length + 1))
              mkdirSync(dirname(to), { recursive: true })
              cpSync(join(root, f), to)
            }
          }
          break
        }
        case 'RUN': {
          if (cannotRunHere.test(instruction.args)) { t.comment(`skipped, cannot run outside Docker: ${where}`); break }
          // Same command (a cache mount is this machine's npm cache); an earlier install's cache makes it faster.
          const command = argv(flags(instruction.args).rest).argv.at(-1)!.replace(/\bnpm ci\b/g, 'npm ci --no-audit --no-fund --prefer-offline')
          const result = await run('bash', ['-c', command], { cwd: join(fsRoot, workdir), env: { ...cleanEnv(), ...env }, timeout: 420_000 })
          if (!t.equal(result.code, 0, where)) { t.comment(result.output); return }
          break
        }
        case 'ARG': case 'LABEL': case 'USER': case 'EXPOSE': case 'HEALTHCHECK': case 'CMD': case 'STOPSIGNAL': case 'VOLUME':
          break // image metadata: checked by the lint test, applied below
        default:
          t.fail(`${where}: the rehearsal does not know this instruction`)
          return
      }
    }
  }
  t.comment(`stages built in ${Math.round((Date.now() - started) / 1000)} s`)

  const app = join(stageRoots.get(runtime.name)!, posix.resolve('/', last(runtime, 'WORKDIR')?.args ?? '/'))
  for (const dev of ['typescript', 'tap', '@types/node']) t.notOk(existsSync(join(app, 'node_modules', dev)), `no dev dependency ${dev} in the runtime`)
  const pkg = JSON.parse(read('package.json')) as { dependencies: Record<string, string> }
  for (const dep of Object.keys(pkg.dependencies)) t.ok(existsSync(join(app, 'node_modules', dep)), `runtime has ${dep}`)
  for (const absent of ['src', 'test']) t.notOk(existsSync(join(app, absent)), `no ${absent}/ in the runtime`)

  // The image as configured by the Dockerfile, on loopback and a free port, with no key and no URL: the built-in simulator.
  // Each VOLUME is a fresh folder of the rehearsal (as Docker mounts one), and the ENV paths into it point there.
  const port = await freePort()
  const mounts = all(runtime, 'VOLUME').flatMap(i => volumes(i.args)).map(path => ({ path, at: join(work, 'volumes', path) }))
  for (const { at } of mounts) mkdirSync(at, { recursive: true })
  const imageEnv: Record<string, string> = Object.fromEntries(Object.entries(stageEnv(runtime)).map(([name, value]) => {
    const mount = mounts.find(({ path }) => value === path || value.startsWith(`${path}/`))
    return [name, mount === undefined ? value : join(mount.at, value.slice(mount.path.length))]
  }))
  const env = { ...cleanEnv(), ...imageEnv, HOST: '127.0.0.1', PORT: String(port) }
  const [command, ...args] = argv(last(runtime, 'CMD')!.args).argv
  let output = ''
  const proxy = spawn(command, args, { cwd: app, env, stdio: ['ignore', 'pipe', 'pipe'] })
  child = proxy
  proxy.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
  proxy.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>(resolve => {
    proxy.once('exit', (code, signal) => { resolve({ code, signal }) })
  })
  const url = `http://127.0.0.1:${port}`

  let health: { status: number, body: unknown } | undefined
  for (const deadline = Date.now() + 30_000; Date.now() < deadline && proxy.exitCode === null; await sleep(200)) {
    try {
      const response = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2_000) })
      health = { status: response.status, body: await response.json() }
      break
    } catch { /* not listening yet */ }
  }
  if (!t.same(health, { status: 200, body: { status: 'ok' } }, 'GET /healthz answers 200 {"status":"ok"} within 30 s')) {
    t.comment(output.slice(-4000))
    return
  }
  const ready = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(10_000) })
  const readiness = await ready.text()
  t.equal(ready.status, 200, `GET /readyz answers 200 (${readiness})`)
  t.match(JSON.parse(readiness), { state: { store: 'file', healthy: true } }, 'the state is in the file store')
  t.equal(readFileSync(imageEnv.STATE_FILE).subarray(0, 16).toString('latin1'), 'SQLite format 3\0', `its database is on the volume (${imageEnv.STATE_FILE})`)

  const probe = argv(flags(last(runtime, 'HEALTHCHECK')!.args).rest.replace(/^CMD\s+/i, '')).argv
  t.equal((await run(probe[0], probe.slice(1), { cwd: app, env, timeout: 10_000 })).code, 0, 'the HEALTHCHECK passes')

  proxy.kill('SIGTERM')
  const exit = await Promise.race([exited, sleep(15_000).then(() => undefined)])
  if (!t.same(exit, { code: 0, signal: null }, 'SIGTERM: exits 0 within 15 s')) t.comment(output.slice(-4000))
  t.not((await run(probe[0], probe.slice(1), { cwd: app, env, timeout: 10_000 })).code, 0, 'the HEALTHCHECK fails once the server is gone')
  t.comment(`rehearsal took ${Math.round((Date.now() - started) / 1000)} s`)
})
