/**
 * GET /internal/logs and /internal/logs/raw: the proxy's own recent log lines in local ComfyUI's
 * shapes (api_server/routes/internal). Like local, only without the /api prefix (contract §7).
 */
import type { FastifyPluginAsync } from 'fastify'
import type { LogRing } from '../log-ring.js'
import { refuseOtherMethods } from './methods.js'

/** Local reports its terminal's size with the raw entries; the proxy has none, so the usual default. */
const TERMINAL_SIZE = { cols: 80, rows: 24 }

const logRoutes: FastifyPluginAsync<{ ring: LogRing }> = async (fastify, { ring }) => {
  // One JSON string: each record as `time - message`, the message ending with its newline.
  fastify.get('/internal/logs', async (_request, reply) => {
    await reply.type('application/json; charset=utf-8').send(JSON.stringify(ring.entries().map(entry => `${entry.t} - ${entry.m}`).join('')))
  })

  fastify.get('/internal/logs/raw', async () => ({ entries: ring.entries(), size: TERMINAL_SIZE }))

  for (const url of ['/internal/logs', '/internal/logs/raw']) refuseOtherMethods(fastify, url, ['GET'])
}

export default logRoutes
