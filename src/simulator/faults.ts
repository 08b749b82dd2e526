/**
 * Fault injection. A fault is registered for `'<METHOD> <route url>'` (e.g. `'GET /api/jobs/:job_id'`) or
 * for `'*'`; a route's own fault wins over `'*'`. The `/__simulator/*` control routes are never faulted, so
 * a `'*'` fault can always be cleared over HTTP.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { badRequest, codeFor } from './errors.js'
import { isPlainObject } from './nodes.js'

export interface Fault {
  latencyMs?: number
  errorRate?: number
  status?: number
  /** the JSON body sent with `status` instead of the generic {code, message} (e.g. a 402 plan refusal) */
  body?: unknown
  retryAfter?: number
  reset?: boolean
  malformed?: boolean
  drift?: { rename?: Record<string, string>, remove?: string[] }
  times?: number
}

interface Entry { fault: Fault, remaining: number }

export class FaultRegistry {
  private readonly entries = new Map<string, Entry>()

  set (route: string, fault: Fault): void {
    this.entries.set(route, { fault: structuredClone(fault), remaining: fault.times ?? Infinity })
  }

  clear (route?: string): void {
    if (route === undefined) this.entries.clear()
    else this.entries.delete(route)
  }

  /** The fault for this request, if any; counts it against `times`. */
  take (routeKey: string): Fault | undefined {
    const key = this.entries.has(routeKey) ? routeKey : '*'
    const entry = this.entries.get(key)
    if (entry === undefined) return undefined
    if (--entry.remaining <= 0) this.entries.delete(key)
    return entry.fault
  }
}

/** Checks a fault received over HTTP (`PUT /__simulator/faults`). */
export function parseFault (value: unknown): Fault {
  if (!isPlainObject(value)) throw badRequest('fault must be an object')
  const known = ['latencyMs', 'errorRate', 'status', 'body', 'retryAfter', 'reset', 'malformed', 'drift', 'times']
  const unknown = Object.keys(value).filter(key => !known.includes(key))
  if (unknown.length > 0) throw badRequest(`unknown fault fields: ${unknown.join(', ')}`)
  const number = (key: string, min: number, max = Infinity): void => {
    const v = value[key]
    if (v !== undefined && (typeof v !== 'number' || !(v >= min && v <= max))) throw badRequest(`fault.${key} must be a number in [${min}, ${max}]`)
  }
  number('latencyMs', 0, 600000)
  number('errorRate', 0, 1)
  number('status', 100, 599)
  number('retryAfter', 0)
  number('times', 1)
  for (const key of ['reset', 'malformed']) {
    if (value[key] !== undefined && typeof value[key] !== 'boolean') throw badRequest(`fault.${key} must be a boolean`)
  }
  const drift = value.drift
  if (drift !== undefined) {
    if (!isPlainObject(drift)) throw badRequest('fault.drift must be an object')
    if (drift.rename !== undefined && (!isPlainObject(drift.rename) || !Object.values(drift.rename).every(v => typeof v === 'string'))) {
      throw badRequest('fault.drift.rename must map key names to key names')
    }
    if (drift.remove !== undefined && (!Array.isArray(drift.remove) || !drift.remove.every(v => typeof v === 'string'))) {
      throw badRequest('fault.drift.remove must be a list of key names')
    }
  }
  return value as Fault
}

function applyDrift (body: Record<string, unknown>, drift: NonNullable<Fault['drift']>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(body)) {
    if (drift.remove?.includes(key) === true) continue
    out[drift.rename?.[key] ?? key] = value
  }
  return out
}

/**
 * Adds the hooks. `latencyMs` always applies; `errorRate` (default 1) is the chance that the failing part
 * (status, reset, malformed or drift) fires on a matching request.
 */
export function installFaultHooks (app: FastifyInstance, registry: FaultRegistry): void {
  const bodyFaults = new WeakMap<FastifyRequest, Fault>()

  app.addHook('onRequest', async (request, reply) => {
    const url = request.routeOptions.url
    if (url === undefined || url.startsWith('/__simulator')) return
    const fault = registry.take(`${request.method} ${url}`)
    if (fault === undefined) return
    if (fault.latencyMs !== undefined && fault.latencyMs > 0) await sleep(fault.latencyMs)
    if (Math.random() >= (fault.errorRate ?? 1)) return
    if (fault.reset === true) {
      reply.hijack()
      request.raw.socket.destroy()
      return
    }
    if (fault.status !== undefined) {
      if (fault.retryAfter !== undefined) reply.header('retry-after', String(fault.retryAfter))
      return reply.code(fault.status).send(fault.body ?? { code: codeFor(fault.status), message: `Simulated fault: ${request.method} ${url} answered ${fault.status}` })
    }
    if (fault.malformed === true || fault.drift !== undefined) bodyFaults.set(request, fault)
  })

  app.addHook('onSend', async (request, reply, payload) => {
    const fault = bodyFaults.get(request)
    if (fault === undefined || reply.statusCode !== 200 || typeof payload !== 'string') return payload
    if (!String(reply.getHeader('content-type')).includes('application/json')) return payload
    // Any strict prefix of a JSON object or array is unparseable.
    if (fault.malformed === true) return payload.slice(0, Math.max(1, Math.floor(payload.length / 2)))
    const drift = fault.drift!
    const body = JSON.parse(payload) as unknown
    if (!isPlainObject(body)) return payload
    const drifted = applyDrift(body, drift)
    if (request.routeOptions.url === '/api/jobs' && Array.isArray(drifted.jobs)) {
      drifted.jobs = drifted.jobs.map(job => isPlainObject(job) ? applyDrift(job, drift) : job)
    }
    return JSON.stringify(drifted)
  })
}
