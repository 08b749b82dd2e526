/**
 * `/api/userdata` (the web UI's saved workflows and other per-user files) and `/api/global_subgraphs`, per
 * account. Shapes follow the spec (`GetUserDataResponseFull`, `UserDataResponse`): lists always carry full
 * file info with `modified` in ms (cloud-api-notes §1.7), errors are text/plain (notes §1.4). The move route
 * is local ComfyUI's (`/userdata/{file}/move/{dest}`), which the web UI uses to rename a workflow.
 */
import { posix } from 'node:path'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'

interface UserFile { bytes: Buffer, modified: number }

export interface UserFileInfo { path: string, size: number, modified: number }

/** Every account's files by path relative to its user folder (`workflows/a.json`). */
export class UserData {
  private readonly accounts = new Map<string, Map<string, UserFile>>()

  files (account: string): Map<string, UserFile> {
    let files = this.accounts.get(account)
    if (files === undefined) {
      files = new Map()
      this.accounts.set(account, files)
    }
    return files
  }

  clear (): void {
    this.accounts.clear()
  }
}

/** A stored path from a request: relative, normalised, inside the user folder; undefined otherwise. */
export function userPath (raw: string): string | undefined {
  if (raw === '' || raw.includes('\0') || raw.includes('\\')) return undefined
  const path = posix.normalize(raw)
  if (path.startsWith('/') || path === '.' || path === '..' || path.startsWith('../') || path.endsWith('/')) return undefined
  return path
}

async function text (reply: FastifyReply, status: number, message: string): Promise<FastifyReply> {
  return await reply.code(status).type('text/plain; charset=utf-8').send(message)
}

const info = (path: string, file: UserFile, relativeTo = ''): UserFileInfo =>
  ({ path: path.slice(relativeTo.length), size: file.bytes.length, modified: file.modified })

/** A write's answer: the file's info with `full_info=true`, else its path as a JSON string. */
async function written (reply: FastifyReply, query: Query, path: string, file: UserFile): Promise<FastifyReply> {
  const body = query.full_info?.toLowerCase() === 'true' ? info(path, file) : path
  return await reply.type('application/json; charset=utf-8').send(JSON.stringify(body))
}

type Query = Record<string, string | undefined>

export function registerUserdataRoutes (app: FastifyInstance, { userData, accountOf }: { userData: UserData, accountOf: (request: FastifyRequest) => string }): void {
  app.register(async instance => {
    // File contents are stored as sent, whatever they are (workflow JSON, user.css, …).
    instance.removeAllContentTypeParsers()
    instance.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => { done(null, body) })

    instance.get('/api/userdata', async (request, reply) => {
      const query = request.query as Query
      if (query.dir === undefined || query.dir === '') return await text(reply, 400, 'Directory not provided')
      const dir = userPath(query.dir.replace(/\/+$/, ''))
      if (dir === undefined) return await text(reply, 403, 'Invalid directory')
      const prefix = `${dir}/`
      const recurse = query.recurse?.toLowerCase() === 'true'
      const listed: UserFileInfo[] = []
      for (const [path, file] of userData.files(accountOf(request))) {
        if (!path.startsWith(prefix) || (!recurse && path.slice(prefix.length).includes('/'))) continue
        listed.push(info(path, file, prefix))
      }
      return listed.sort((a, b) => a.path.localeCompare(b.path))
    })

    instance.get('/api/userdata/:file', async (request, reply) => {
      const path = userPath((request.params as { file: string }).file)
      if (path === undefined) return await text(reply, 403, 'The requested path is not allowed')
      const file = userData.files(accountOf(request)).get(path)
      if (file === undefined) return await text(reply, 404, 'File not found')
      return await reply.type('application/octet-stream').send(file.bytes)
    })

    instance.post('/api/userdata/:file', async (request, reply) => {
      const path = userPath((request.params as { file: string }).file)
      if (path === undefined) return await text(reply, 403, 'The requested path is not allowed')
      const query = request.query as Query
      const files = userData.files(accountOf(request))
      if (query.overwrite === 'false' && files.has(path)) return await text(reply, 409, 'File already exists')
      const file = { bytes: Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0), modified: Date.now() }
      files.set(path, file)
      return await written(reply, query, path, file)
    })

    instance.delete('/api/userdata/:file', async (request, reply) => {
      const path = userPath((request.params as { file: string }).file)
      if (path === undefined) return await text(reply, 403, 'The requested path is not allowed')
      if (!userData.files(accountOf(request)).delete(path)) return await text(reply, 404, 'File not found')
      return await reply.code(204).send()
    })

    instance.post('/api/userdata/:file/move/:dest', async (request, reply) => {
      const params = request.params as { file: string, dest: string }
      const source = userPath(params.file)
      const dest = userPath(params.dest)
      if (source === undefined || dest === undefined) return await text(reply, 403, 'The requested path is not allowed')
      const query = request.query as Query
      const files = userData.files(accountOf(request))
      const file = files.get(source)
      if (file === undefined) return await text(reply, 404, 'File not found')
      if (query.overwrite === 'false' && files.has(dest)) return await text(reply, 409, 'File already exists')
      files.delete(source)
      files.set(dest, file)
      return await written(reply, query, dest, file)
    })
  })

  // Blueprints the cloud offers to every user; the simulator offers none.
  app.get('/api/global_subgraphs', async () => ({}))
  app.get('/api/global_subgraphs/:id', async (request, reply) =>
    await reply.code(404).send({ code: 'NOT_FOUND', message: `Subgraph ${(request.params as { id: string }).id} not found` }))
}
