/**
 * Does the cloud still answer as the proxy expects? The quick check (the key is accepted and one
 * list validates) runs at startup and behind /readyz; `fieldDiff` names the fields an answer has that
 * the proxy's schemas do not know, and the required ones it lacks, for `comfy-compat-proxy doctor`.
 */
import type { LocalError } from '../errors.js'
import { ProxyError } from '../errors.js'
import type { CloudClient } from './client.js'
import { cloudSchema, type CloudSchemaName } from './schemas.js'

export interface QuickCheck {
  ok: boolean
  /** one sentence: what works, or what is wrong and how to fix it */
  verdict: string
  /** the slower of the two calls, in ms (undefined when the cloud could not be reached) */
  latencyMs: number | undefined
  checkedAt: string
  error?: LocalError
}

/** GET /api/prompt (the key is accepted) and GET /api/jobs?limit=1 (a list validates against the proxy's schema). */
export async function quickCheck (cloud: CloudClient): Promise<QuickCheck> {
  const checkedAt = new Date().toISOString()
  let latencyMs: number | undefined
  const timed = async (run: () => Promise<unknown>): Promise<void> => {
    const started = performance.now()
    await run()
    latencyMs = Math.max(latencyMs ?? 0, Math.round(performance.now() - started))
  }
  try {
    await timed(async () => await cloud.call({ method: 'GET', path: '/api/prompt', schema: 'PromptInfo' }))
    await timed(async () => await cloud.call({ method: 'GET', path: '/api/jobs', query: { limit: 1 }, schema: 'JobsListResponse' }))
    return { ok: true, verdict: 'Comfy Cloud accepts the key and answers as the proxy expects', latencyMs, checkedAt }
  } catch (err) {
    const failure = err instanceof ProxyError ? err : new ProxyError(502, 'check_failed', 'The cloud check failed unexpectedly')
    return { ok: false, verdict: `${failure.message}. Run comfy-compat-proxy doctor for the full check`, latencyMs, checkedAt, error: failure.toLocal() }
  }
}

/**
 * The quick check as the proxy's routes see it: the startup verdict, and the latest one, shared by
 * /readyz and the status page and kept for `ttlMs` whatever its outcome (failures too), so that
 * probes cannot multiply cloud calls.
 */
export class CloudCheck {
  startup: QuickCheck | undefined
  private probe: { expires: number, check: Promise<QuickCheck> } | undefined

  constructor (private readonly cloud: CloudClient, private readonly ttlMs = 5_000) {}

  async latest (): Promise<QuickCheck> {
    if (this.probe !== undefined && this.probe.expires > Date.now()) return await this.probe.check
    const current = { expires: Number.POSITIVE_INFINITY, check: quickCheck(this.cloud) }
    this.probe = current
    const check = await current.check
    current.expires = Date.now() + this.ttlMs
    return check
  }
}

interface Schema {
  $ref?: string
  properties?: Record<string, Schema>
  required?: string[]
  items?: Schema | Schema[]
  additionalProperties?: Schema | boolean
}

function isObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function resolve (schema: Schema): Schema {
  return schema.$ref === undefined ? schema : (cloudSchema(schema.$ref) as Schema | undefined) ?? {}
}

/**
 * Fields of an answer that the schema does not list (`unknown`: the cloud moved ahead, harmless unless
 * a known field was renamed) and required fields it lacks (`missing`). Paths read `jobs[].status`;
 * `*` stands for any key of a map (object_info's node names).
 */
export function fieldDiff (name: CloudSchemaName, body: unknown): { unknown: string[], missing: string[] } {
  const unknown = new Set<string>()
  const missing = new Set<string>()
  const walk = (schema: Schema, value: unknown, path: string, depth: number): void => {
    schema = resolve(schema)
    if (depth > 3) return
    if (Array.isArray(value)) {
      const items = schema.items
      if (items !== undefined && !Array.isArray(items)) for (const item of value) walk(items, item, `${path}[]`, depth + 1)
      return
    }
    if (!isObject(value)) return
    const prefix = path === '' ? '' : `${path}.`
    for (const key of schema.required ?? []) if (!(key in value)) missing.add(`${prefix}${key}`)
    const extra = typeof schema.additionalProperties === 'object' ? schema.additionalProperties : undefined
    for (const [key, child] of Object.entries(value)) {
      const known = schema.properties?.[key]
      if (known !== undefined) walk(known, child, `${prefix}${key}`, depth + 1)
      else if (extra !== undefined) walk(extra, child, `${prefix}*`, depth + 1)
      else if (schema.properties !== undefined) unknown.add(`${prefix}${key}`)
    }
  }
  walk({ $ref: name }, body, '', 0)
  return { unknown: [...unknown].sort(), missing: [...missing].sort() }
}
