/**
 * 403 answers that refuse the whole account rather than one job (drift §1.3). The cloud sends them
 * to any credential, API keys included: an SSO-held organisation, an unverified e-mail address, a
 * workspace the key's user lost, a credential type the route does not take. Read as "job not found",
 * they turn /history/{id} into {} for ever and /queue delete or /interrupt into silent no-ops, so
 * every route answers them as a 502 saying what the account must fix.
 */
import { ProxyError } from '../errors.js'

/** What the account holder must do, by the code of the cloud's ErrorResponse (notes §1.4) or its error.type (notes §1.2). */
const ACCOUNT_FIXES: Record<string, string> = {
  sso_required: 'the account or its workspace belongs to an organisation that requires single sign-on: sign in at https://cloud.comfy.org through your organisation\'s SSO and create the API key there, or use a key of an account outside that organisation',
  FORBIDDEN: 'Comfy Cloud refuses the account itself (for example because its e-mail address is not verified): sign in at https://cloud.comfy.org, verify the e-mail address, then try again',
  workspace_access_denied: 'the API key\'s user has no access to its workspace any more: ask the workspace owner to add the user back, or create a key in a workspace the user belongs to',
  no_workspace_access: 'the API key\'s user has no access to its workspace any more: ask the workspace owner to add the user back, or create a key in a workspace the user belongs to',
  auth_type_not_allowed: 'this route does not accept API keys for the account (a workspace policy or a session-only route): ask the workspace administrator to allow API-key access'
}

export interface AccountRefusal {
  /** the cloud's code, e.g. sso_required */
  code: string
  /** the cloud's own words, when it sent any */
  cloudMessage: string
  /**
   * FORBIDDEN is also what a job of another account may answer on the per-job routes (notes §2.7,
   * "403 Job does not belong to user"); there it means the account only if an account-wide call is refused too.
   */
  ambiguous: boolean
}

function isObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** The account refusal a cloud answer carries, if it is one. */
export function accountRefusal (status: number, body: unknown): AccountRefusal | undefined {
  if (status !== 403 || !isObject(body)) return undefined
  const code = typeof body.code === 'string'
    ? body.code
    // The credential-type refusal has another shape: {error: {type, message}, accepted} (notes §1.2).
    : isObject(body.error) && typeof body.error.type === 'string' ? body.error.type : undefined
  if (code === undefined || ACCOUNT_FIXES[code] === undefined) return undefined
  const message = typeof body.message === 'string' ? body.message : isObject(body.error) && typeof body.error.message === 'string' ? body.error.message : ''
  return { code, cloudMessage: message, ambiguous: code === 'FORBIDDEN' }
}

/** The local answer to an account refusal: 502 in the local envelope, the fix in words. */
export function accountRefusalError (refusal: AccountRefusal, where: string): ProxyError {
  const said = refusal.cloudMessage === '' ? '' : ` (Comfy Cloud said: ${refusal.cloudMessage.slice(0, 200)})`
  return new ProxyError(502, 'cloud_account_refused',
    `Comfy Cloud refused the proxy's account with ${refusal.code}${said}; ${ACCOUNT_FIXES[refusal.code]}`,
    where, { cloud_code: refusal.code })
}

/** The fix for a refusal code, for reports (doctor). */
export function accountFix (code: string): string | undefined {
  return ACCOUNT_FIXES[code]
}
