/**
 * How much of the machine other processes used while a case ran (Linux /proc): busy CPU of the whole
 * machine minus the CPU of the harness and its servers, in cores. Elsewhere the figure is NaN.
 */
import { readFileSync } from 'node:fs'

const TICKS_PER_SECOND = 100

function machineBusyTicks (): number {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number)
  // user nice system idle iowait irq softirq steal …: busy is everything but idle and iowait
  return fields.reduce((sum, value, i) => i === 3 || i === 4 ? sum : sum + value, 0)
}

function processTicks (pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return Number(fields[11]) + Number(fields[12])
}

export interface CpuSnapshot { at: number, busy: number, ours: number }

export function cpuSnapshot (pids: Array<number | undefined>): CpuSnapshot | undefined {
  try {
    let ours = 0
    for (const pid of pids) {
      if (pid === undefined) continue
      try { ours += processTicks(pid) } catch {}
    }
    return { at: performance.now(), busy: machineBusyTicks(), ours }
  } catch {
    return undefined
  }
}

/** Cores used by other processes between two snapshots. */
export function otherCores (before: CpuSnapshot | undefined, after: CpuSnapshot | undefined): number {
  if (before === undefined || after === undefined) return Number.NaN
  const seconds = (after.at - before.at) / 1000
  if (seconds <= 0) return Number.NaN
  return Math.max(0, (after.busy - before.busy) - (after.ours - before.ours)) / TICKS_PER_SECOND / seconds
}
