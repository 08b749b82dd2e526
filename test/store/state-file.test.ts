/**
 * STATE_FILE at startup: its folder is created when missing (the Docker image's /data volume, or
 * `STATE_FILE=./state/proxy.db npm start`), and a path the proxy cannot write stops it with one line.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { ConfigError, loadConfig } from '../../src/config.js'
import { startServerProcess } from '../fixtures/server-process.js'

const root = fileURLToPath(new URL('../..', import.meta.url))

function scratch (t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'ccp-state-file-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  return dir
}

t.test('a missing folder of STATE_FILE is created, and the path made absolute', async t => {
  const dir = scratch(t)
  process.chdir(dir)
  t.teardown(() => { process.chdir(root) })
  const config = loadConfig({ STATE_FILE: 'state/nested/proxy.db' })
  t.equal(config.stateFile, join(dir, 'state/nested/proxy.db'))
  t.ok(existsSync(join(dir, 'state/nested')), 'the folder exists')
  t.notOk(existsSync(config.stateFile), 'the database itself is the store\'s to create')
})

t.test('a STATE_FILE the proxy cannot write is a configuration error naming it, on one line', async t => {
  const dir = scratch(t)
  writeFileSync(join(dir, 'a-file'), '')
  mkdirSync(join(dir, 'a-folder'))
  for (const path of [join(dir, 'a-file', 'state.db'), join(dir, 'a-folder')]) {
    const error = (() => { try { loadConfig({ STATE_FILE: path }) } catch (err) { return err } })()
    t.ok(error instanceof ConfigError && error.variable === 'STATE_FILE', `${path}: a configuration error for STATE_FILE`)
    t.match((error as Error).message, /^[^\n]+$/, 'one line…')
    t.ok((error as Error).message.includes(JSON.stringify(path)), '…naming the path')
  }
  t.doesNotThrow(() => loadConfig({ STATE_FILE: join(dir, 'a-file', 'state.db'), REDIS_URL: 'redis://127.0.0.1:1' }),
    'ignored when REDIS_URL is set: Redis wins over the file, so the image\'s default need not be writable in a fleet')
})

t.test('npm start with an unwritable STATE_FILE exits 1 with one clear line and no stack trace', async t => {
  const dir = scratch(t)
  writeFileSync(join(dir, 'a-file'), '')
  const server = startServerProcess(t, { STATE_FILE: join(dir, 'a-file', 'state.db') })
  t.equal(await server.exited, 1)
  t.match(server.output(), /^Invalid configuration: STATE_FILE cannot be written \([A-Z]+ for "[^"]+"\): mount a writable volume there, or leave STATE_FILE empty to keep state in memory\n$/)
})

t.test('npm start with STATE_FILE in a folder that does not exist yet serves and keeps its database there', async t => {
  const dir = scratch(t)
  const file = join(dir, 'volume', 'state.db')
  const server = startServerProcess(t, { STATE_FILE: file })
  const url = await server.listening()
  t.equal((await fetch(`${url}/prompt`)).status, 200)
  t.equal(readFileSync(file).subarray(0, 16).toString('latin1'), 'SQLite format 3\0', 'the database is in the new folder')
  await server.kill()
})
