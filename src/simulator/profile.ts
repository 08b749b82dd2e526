/**
 * Which cloud the simulator plays: `spec`, the published v1 spec (724cda9), or `current`, the deployed
 * cloud as the drift report describes it (drift §2). This file holds the `current` behaviours that are
 * about the account: the 403 family (drift §1.3), the user's own models in the node catalogue
 * (drift §2.11) and the cross-account 403 on per-job routes (notes §2.7).
 */
import type { NodeInfo } from './catalog.js'

export type SimulatorProfile = 'spec' | 'current'
export const PROFILES: readonly SimulatorProfile[] = ['spec', 'current']

/** 403 codes the deployed cloud sends to any credential, API keys included (drift §1.3). */
export const ACCOUNT_REFUSALS = ['sso_required', 'FORBIDDEN', 'workspace_access_denied', 'auth_type_not_allowed'] as const
export type AccountRefusal = typeof ACCOUNT_REFUSALS[number]

const REFUSAL_MESSAGES: Record<AccountRefusal, string> = {
  sso_required: 'This workspace requires single sign-on',
  FORBIDDEN: 'Email address is not verified',
  workspace_access_denied: 'You do not have access to this workspace',
  auth_type_not_allowed: 'This credential type is not accepted here'
}

/** The body of a refusal: ErrorResponse, or the credential-type shape {error, accepted} (cloud-api-notes §1.2, §1.4). */
export function refusalBody (code: AccountRefusal): Record<string, unknown> {
  if (code === 'auth_type_not_allowed') return { error: { type: code, message: REFUSAL_MESSAGES[code] }, accepted: ['firebase'] }
  return code === 'sso_required'
    ? { code, message: REFUSAL_MESSAGES[code], organization_id: 'org-simulated' }
    : { code, message: REFUSAL_MESSAGES[code] }
}

/** What a job of another account answers on the per-job routes of the current cloud (notes §2.7: "403 Job does not belong to user"). */
export const FOREIGN_JOB_BODY = { code: 'FORBIDDEN', message: 'Job does not belong to user' }

/** Models every simulated account has imported itself (Civitai, Hugging Face), by combo input name. */
export const USER_MODELS: Record<string, string[]> = {
  ckpt_name: ['my-imported-checkpoint.safetensors'],
  lora_name: ['my-imported-lora.safetensors']
}

/** The node catalogue with the account's own models added to the loaders' lists (`include_user_models=true`, drift §2.11). */
export function withUserModels (nodes: Record<string, NodeInfo>): Record<string, NodeInfo> {
  const out = structuredClone(nodes)
  for (const info of Object.values(out)) {
    for (const inputs of [info.input.required, info.input.optional ?? {}]) {
      for (const [name, spec] of Object.entries(inputs)) {
        const extra = USER_MODELS[name]
        if (extra !== undefined && Array.isArray(spec[0])) spec[0] = [...spec[0], ...extra.filter(model => !(spec[0] as string[]).includes(model))]
      }
    }
  }
  return out
}
