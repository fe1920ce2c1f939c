/**
 * The resident memory of another process, from /proc/<pid>/status (Linux), for tests that
 * bound what a client can make the service hold.
 */
import { Effect } from "effect"
import { readFileSync } from "node:fs"

const MIB = 1024 * 1024

/** VmRSS of `pid`, in bytes. */
export const residentBytes = (pid: number): number => {
  const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))
  if (match === null) throw new Error(`no VmRSS for process ${pid}`)
  return Number(match[1]) * 1024
}

export const toMiB = (bytes: number) => Math.round((bytes / MIB) * 10) / 10

/**
 * Samples the RSS of `pid` every `everyMs` while the scope is open; `peak()` is the largest
 * sample so far (RSS between samples can be missed, so callers also sample at their checkpoints).
 */
export const rssSampler = (pid: number, everyMs = 25) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      let peak = residentBytes(pid)
      const sample = () => {
        try {
          peak = Math.max(peak, residentBytes(pid))
        } catch {
          // The process has exited.
        }
      }
      const timer = setInterval(sample, everyMs)
      return {
        peak: () => {
          sample()
          return peak
        },
        timer
      }
    }),
    ({ timer }) => Effect.sync(() => clearInterval(timer))
  )
