/**
 * The proxy's recent log lines, for `GET /internal/logs` as local ComfyUI serves its own. A bounded
 * ring fed by a tee on the pino stream: the lines it holds are the written ones, already scrubbed
 * of the key and the token.
 */
import type { DestinationStream } from 'pino'

/** local ComfyUI keeps its last 300 log records by default (app/logger.py `setup_logger(capacity=300)`) */
export const LOG_RING_CAPACITY = 300
/** a longer line is cut, so the ring holds at most capacity × this many characters */
export const LOG_LINE_MAX_CHARS = 8_192

/** One record as local ComfyUI keeps it: `t` the time, `m` the message with its newline. */
export interface LogEntry { t: string, m: string }

/** Fields of a pino line that the message text does not repeat. */
const OMITTED = new Set(['level', 'time', 'pid', 'hostname', 'msg'])
const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARNING', 50: 'ERROR', 60: 'CRITICAL' }

export class LogRing {
  private readonly lines: string[] = []
  private next = 0

  constructor (readonly capacity = LOG_RING_CAPACITY) {}

  push (line: string): void {
    const kept = line.length > LOG_LINE_MAX_CHARS ? `${line.slice(0, LOG_LINE_MAX_CHARS)}…\n` : line
    if (this.lines.length < this.capacity) this.lines.push(kept)
    else this.lines[this.next] = kept
    this.next = (this.next + 1) % this.capacity
  }

  /** The kept lines as local's records, oldest first. */
  entries (): LogEntry[] {
    const ordered = this.lines.length < this.capacity ? this.lines : [...this.lines.slice(this.next), ...this.lines.slice(0, this.next)]
    return ordered.map(toEntry)
  }

  /** A destination that writes each line to `target` and keeps it here. */
  tee (target: DestinationStream): DestinationStream {
    return {
      write: (line: string) => {
        this.push(line)
        return target.write(line)
      }
    }
  }
}

/**
 * A pino JSON line as a local log record: the time as ISO 8601 and the message as
 * `[LEVEL] msg {other fields}`, the level tag local's formatter puts in front (clients such as
 * comfyui-mcp find errors by it).
 */
export function toEntry (line: string): LogEntry {
  let record: Record<string, unknown>
  try {
    record = JSON.parse(line) as Record<string, unknown>
  } catch {
    return { t: new Date().toISOString(), m: line.endsWith('\n') ? line : `${line}\n` }
  }
  const time = typeof record.time === 'number' ? new Date(record.time) : new Date()
  const level = LEVELS[record.level as number] ?? String(record.level)
  const rest = Object.fromEntries(Object.entries(record).filter(([key]) => !OMITTED.has(key)))
  const fields = Object.keys(rest).length > 0 ? ` ${JSON.stringify(rest)}` : ''
  return { t: time.toISOString(), m: `[${level}] ${String(record.msg ?? '')}${fields}\n` }
}
