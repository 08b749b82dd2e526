/**
 * A page for people: a browser opening the proxy's address gets its status instead of an error.
 * `GET /proxy/status` is the page (also at `/` while no FRONTEND_DIR is set), `GET /proxy/status.json`
 * what it shows: the quick cloud check (fastify.cloudCheck, shared with /readyz), the cloud budget (CLOUD_MAX_RPS) in use,
 * jobs in flight through this proxy and the
 * latest finished jobs of the account with thumbnails served through /view. No build step: one HTML
 * file with its script inline, which refreshes itself.
 */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import type { JobsList, QueueInfo } from '../cloud/types.js'
import { STATUS_PAGE } from './status-page.js'

const LATEST = 8

interface LatestJob { prompt_id: string, status: string, created: number, image?: { filename: string, subfolder: string, type: string } }

async function latestFinished (fastify: FastifyInstance): Promise<LatestJob[]> {
  const page = await fastify.cache.shared(`status:latest:${LATEST}`, async () => (await fastify.cloud.call<JobsList>({
    method: 'GET',
    path: '/api/jobs',
    query: { status: 'completed,failed,cancelled', sort_by: 'create_time', sort_order: 'desc', limit: LATEST },
    schema: 'JobsListResponse'
  })).body)
  return page.jobs.map(job => {
    const preview = job.preview_output as Record<string, unknown> | undefined
    const image = preview !== undefined && typeof preview.filename === 'string' && (preview.mediaType === undefined || preview.mediaType === 'images')
      ? { filename: preview.filename, subfolder: typeof preview.subfolder === 'string' ? preview.subfolder : '', type: typeof preview.type === 'string' ? preview.type : 'output' }
      : undefined
    return { prompt_id: job.id, status: job.status, created: job.create_time, ...(image === undefined ? {} : { image }) }
  })
}

/** Jobs of the account's queue that were submitted through this proxy. */
async function inFlight (fastify: FastifyInstance): Promise<Array<{ prompt_id: string, state: 'running' | 'pending', client_id?: string }>> {
  // The same read as GET /queue: no extra cloud call while clients poll the queue, none when the tracker knows it is empty.
  const queue = await fastify.jobs.queue()
  const ours = (items: QueueInfo['queue_running'], state: 'running' | 'pending'): Array<{ prompt_id: string, state: 'running' | 'pending', client_id?: string }> =>
    items.map(item => item[1]).filter(id => fastify.submissions.has(id)).map(id => {
      const clientId = fastify.submissions.get(id)?.clientId
      return { prompt_id: id, state, ...(clientId === undefined ? {} : { client_id: clientId }) }
    })
  return [...ours(queue.queue_running, 'running'), ...ours(queue.queue_pending, 'pending')]
}

/** A part of the page that failed says why; the rest of the page still shows. */
async function part<T> (load: () => Promise<T>): Promise<T | { error: string }> {
  try {
    return await load()
  } catch (err) {
    return { error: err instanceof Error ? err.message : 'failed' }
  }
}

const statusRoutes: FastifyPluginAsync = async (fastify) => {
  const page = async (_request: unknown, reply: { type: (t: string) => { send: (b: string) => unknown } }): Promise<unknown> =>
    await reply.type('text/html; charset=utf-8').send(STATUS_PAGE)
  // With FRONTEND_DIR, `/` is the web UI (routes/frontend.ts).
  if (fastify.config.frontendDir === '') fastify.get('/', page)
  fastify.get('/proxy/status', page)

  fastify.get('/proxy/status.json', async () => {
    const [check, jobsInFlight, latest] = await Promise.all([
      fastify.cloudCheck.latest(),
      part(async () => await inFlight(fastify)),
      part(async () => await latestFinished(fastify))
    ])
    return {
      cloud: fastify.cloud.origin,
      check,
      startup_check: fastify.cloudCheck.startup ?? null,
      budget: fastify.cloud.budget.snapshot(),
      in_flight: jobsInFlight,
      latest
    }
  })
}

export default statusRoutes
