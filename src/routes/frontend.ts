/**
 * ComfyUI's own web frontend, served from FRONTEND_DIR at `/` as local ComfyUI serves its web root, and
 * the local-only routes it reads at start-up that Comfy Cloud lacks (`/extensions`, `/i18n`,
 * `/workflow_templates`, `/templates/…`). None of them is ever passed through.
 */
import { readdir } from 'node:fs/promises'
import { basename, join, relative, sep } from 'node:path'
import type { FastifyPluginAsync } from 'fastify'
import fastifyStatic from '@fastify/static'
import { sendLocalNotFound } from '../errors.js'

/** Vite's build names its output `assets/<name>-<hash>.<ext>`: such a file never changes. */
const HASHED_ASSET = /-[A-Za-z0-9_-]{8,}\.[a-z0-9]+$/

export function cacheControlFor (filePath: string, root: string): string {
  const path = relative(root, filePath).split(sep).join('/')
  if (path.startsWith('assets/') && HASHED_ASSET.test(basename(path))) return 'public, max-age=31536000, immutable'
  // index.html, extension scripts, locales: the browser revalidates (ETag / Last-Modified) on every load, like local's no-cache.
  return 'no-cache'
}

/** Local's `/extensions`: every `.js` file under the web root's `extensions/` folder, as a root-relative path. */
export async function extensionScripts (frontendDir: string): Promise<string[]> {
  if (frontendDir === '') return []
  const folder = join(frontendDir, 'extensions')
  let files: string[]
  try {
    files = await readdir(folder, { recursive: true })
  } catch {
    return []
  }
  return files
    .map(file => file.split(sep).join('/'))
    .filter(file => file.endsWith('.js'))
    .sort()
    .map(file => `/extensions/${file}`)
}

/** The sentence the proxy's status page (`/` when no frontend is configured, routes/status.ts) shows. */
export const FRONTEND_HINT = 'To use ComfyUI\'s web UI here, set FRONTEND_DIR to a built ComfyUI frontend: the static folder of the ' +
  'comfyui-frontend-package Python package (pip install comfyui-frontend-package), or the dist folder of a ' +
  'Comfy-Org/ComfyUI_frontend release.'

export function escapeHtml (text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
}

/** Local-only routes the frontend reads; registered under both `/` and `/api` (contract §7). */
export const frontendApiRoutes: FastifyPluginAsync = async (fastify) => {
  const { frontendDir } = fastify.config
  fastify.get('/extensions', async () => await extensionScripts(frontendDir))
  // Translations and example workflows of custom nodes: a proxy has no custom nodes.
  fastify.get('/i18n', async () => ({}))
  fastify.get('/workflow_templates', async () => ({}))
}

/**
 * The web root: FRONTEND_DIR's files at `/`, TEMPLATES_DIR at `/templates/` (neither has an `/api` copy, contract §7).
 * Without FRONTEND_DIR, `/` is the proxy's status page (routes/status.ts).
 */
export const frontendFiles: FastifyPluginAsync = async (fastify) => {
  const { frontendDir, templatesDir } = fastify.config
  if (frontendDir !== '') {
    // wildcard: false registers one route per file found at start-up, so every other path still reaches
    // the pass-through routes (which own the `/*` wildcard).
    await fastify.register(fastifyStatic, {
      root: frontendDir,
      wildcard: false,
      cacheControl: false,
      setHeaders: (response, filePath) => { response.setHeader('cache-control', cacheControlFor(filePath, frontendDir)) }
    })
  }
  if (templatesDir !== '') {
    await fastify.register(fastifyStatic, { root: templatesDir, prefix: '/templates/', decorateReply: false, cacheControl: false })
  } else {
    // No templates package: local has no /templates route at all.
    fastify.route({ method: ['DELETE', 'GET', 'HEAD', 'PATCH', 'POST', 'PUT'], url: '/templates/*', handler: async (_request, reply) => await sendLocalNotFound(reply) })
  }
}
