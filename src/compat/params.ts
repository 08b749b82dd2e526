/**
 * Local ComfyUI parses `max_items` and `offset` with Python's int() (contract §1.1, §1.3).
 * We accept exactly what int() accepts for ASCII input (surrounding whitespace, a sign, digits
 * with single underscores between them) and answer 400 where local ComfyUI crashes with a 500.
 */
const PYTHON_INT = /^\s*[+-]?\d+(?:_\d+)*\s*$/

export function parsePythonInt (value: string): number | undefined {
  if (!PYTHON_INT.test(value)) return undefined
  return Number(value.replace(/_/g, '').trim())
}

/** The first value of a query parameter that may repeat (aiohttp's query.get keeps the first). */
export function firstValue (value: unknown): string | undefined {
  if (Array.isArray(value)) return value.length > 0 ? String(value[0]) : undefined
  return value === undefined ? undefined : String(value)
}

export interface HistoryWindow {
  /** index of the first entry, counted from the oldest (0-based) */
  start: number
  /** how many entries from start */
  count: number
}

/**
 * The slice of a history of `total` entries (oldest first) that local ComfyUI's
 * PromptQueue.get_history returns for `max_items` and `offset` (contract §1.1):
 * an absent or negative offset with max_items set means "the newest max_items";
 * a non-positive max_items still yields one entry when the walk reaches one, because
 * the stop check runs after the first add.
 */
export function historyWindow (maxItems: number | undefined, offset: number | undefined, total: number): HistoryWindow {
  let from = offset ?? -1
  if (from < 0 && maxItems !== undefined) from = total - maxItems
  const start = Math.max(from, 0)
  const available = Math.max(total - start, 0)
  if (maxItems === undefined) return { start, count: available }
  if (maxItems <= 0) return { start, count: Math.min(available, 1) }
  return { start, count: Math.min(available, maxItems) }
}

/** Python truthiness, as local ComfyUI tests `clear` and `prompt_id`: None, False, 0, "", [] and {} are false. */
export function pythonTruthy (value: unknown): boolean {
  if (value === undefined || value === null || value === false || value === 0 || value === '') return false
  if (Array.isArray(value)) return value.length > 0
  if (typeof value === 'object') return Object.keys(value).length > 0
  return true
}

/** Python float() on ASCII input: finite decimals with optional sign, exponent and underscores; booleans are 1 and 0. */
const PYTHON_FLOAT = /^\s*[+-]?(?:\d+(?:_\d+)*(?:\.(?:\d+(?:_\d+)*)?)?|\.\d+(?:_\d+)*)(?:[eE][+-]?\d+(?:_\d+)*)?\s*$/

export function pythonFloat (value: unknown): number | undefined {
  if (typeof value === 'boolean') return value ? 1 : 0
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined
  if (typeof value !== 'string' || !PYTHON_FLOAT.test(value)) return undefined
  const number = Number(value.replace(/_/g, '').trim())
  return Number.isFinite(number) ? number : undefined
}
