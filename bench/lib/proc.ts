/**
 * Child processes of a benchmark run (every one registered, so every one is stopped, also on
 * errors and SIGINT) and measurements of a process from /proc: CPU time (utime + stime) and
 * resident memory (VmRSS sampled, VmHWM after resetting it through clear_refs).
 */
import { type ChildProcess, spawn, type SpawnOptions } from "node:child_process"
import * as Fs from "node:fs"
import * as http from "node:http"
import * as net from "node:net"
import { setTimeout as sleep } from "node:timers/promises"

// ---------------------------------------------------------------------------------------------
// /proc

const CLOCK_TICKS_PER_SECOND = 100

/** utime + stime of `pid` in milliseconds (10 ms resolution). */
export const cpuTimeMs = (pid: number): number => {
  const stat = Fs.readFileSync(`/proc/${pid}/stat`, "utf8")
  // Fields after the command name, which is in parentheses and may contain spaces.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  // fields[0] is field 3 (state): utime is field 14, stime field 15.
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_SECOND
}

const statusKb = (pid: number, key: string): number => {
  const status = Fs.readFileSync(`/proc/${pid}/status`, "utf8")
  const match = new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)
  return match === null ? Number.NaN : Number(match[1])
}

export const rssMb = (pid: number) => statusKb(pid, "VmRSS") / 1024
export const hwmMb = (pid: number) => statusKb(pid, "VmHWM") / 1024

/** Resets VmHWM to the current RSS (Linux ≥ 4.0); false when not allowed. */
export const resetPeakRss = (pid: number): boolean => {
  try {
    Fs.writeFileSync(`/proc/${pid}/clear_refs`, "5")
    return true
  } catch {
    return false
  }
}

export interface Usage {
  /** CPU time used during the window. */
  readonly cpuMs: number
  /** Highest resident memory during the window. */
  readonly peakRssMb: number
  readonly startRssMb: number
  readonly endRssMb: number
  readonly wallMs: number
}

/** Measures a process over a window: CPU time delta and peak RSS (sampled and VmHWM). */
export class UsageWindow {
  private readonly cpuStart: number
  private readonly startedAt = performance.now()
  private readonly hwmReset: boolean
  private readonly startRss: number
  private peak: number
  private readonly timer: NodeJS.Timeout

  constructor(readonly pid: number, sampleMs = 100) {
    this.hwmReset = resetPeakRss(pid)
    this.cpuStart = cpuTimeMs(pid)
    this.startRss = rssMb(pid)
    this.peak = this.startRss
    this.timer = setInterval(() => {
      try {
        this.peak = Math.max(this.peak, rssMb(pid))
      } catch {
        // The process is gone; stop() reports what was seen.
      }
    }, sampleMs)
  }

  stop(): Usage {
    clearInterval(this.timer)
    const endRss = rssMb(this.pid)
    const hwm = this.hwmReset ? hwmMb(this.pid) : Number.NaN
    return {
      cpuMs: cpuTimeMs(this.pid) - this.cpuStart,
      peakRssMb: Math.max(this.peak, endRss, Number.isFinite(hwm) ? hwm : 0),
      startRssMb: this.startRss,
      endRssMb: endRss,
      wallMs: performance.now() - this.startedAt
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Network helpers

export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = net.createServer()
    server.unref()
    server.on("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })

/** Status of a GET (0 when the connection fails), bounded by `timeoutMs`. */
export const getStatus = (url: string, timeoutMs = 2000): Promise<number> =>
  new Promise((resolve) => {
    const req = http.get(url, { timeout: timeoutMs, agent: false }, (res) => {
      res.resume()
      res.on("end", () => resolve(res.statusCode ?? 0))
      res.on("error", () => resolve(0))
    })
    req.on("timeout", () => req.destroy())
    req.on("error", () => resolve(0))
  })

export const requestJson = <A>(method: string, url: string, body?: unknown, timeoutMs = 10_000): Promise<{ status: number; body: A }> =>
  new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body)
    const req = http.request(
      url,
      {
        method,
        timeout: timeoutMs,
        headers: payload === undefined ? {} : { "content-type": "application/json", "content-length": Buffer.byteLength(payload) }
      },
      (res) => {
        const parts: Array<Buffer> = []
        res.on("data", (part: Buffer) => parts.push(part))
        res.on("end", () => {
          const text = Buffer.concat(parts).toString("utf8")
          try {
            resolve({ status: res.statusCode ?? 0, body: (text === "" ? undefined : JSON.parse(text)) as A })
          } catch (error) {
            reject(new Error(`${method} ${url}: ${res.statusCode} ${text.slice(0, 200)}`, { cause: error }))
          }
        })
        res.on("error", reject)
      }
    )
    req.on("timeout", () => req.destroy(new Error(`${method} ${url} timed out`)))
    req.on("error", reject)
    req.end(payload)
  })

/** Polls `url` until it answers 200; the time of that answer, or an error after `timeoutMs`. */
export const waitFor200 = async (url: string, timeoutMs: number, child?: ChildProcess, intervalMs = 10): Promise<number> => {
  const deadline = performance.now() + timeoutMs
  while (performance.now() < deadline) {
    if (child !== undefined && child.exitCode !== null) throw new Error(`process exited with ${child.exitCode} before ${url} answered`)
    if ((await getStatus(url, 1000)) === 200) return performance.now()
    await sleep(intervalMs)
  }
  throw new Error(`${url} did not answer 200 within ${timeoutMs} ms`)
}

// ---------------------------------------------------------------------------------------------
// Children

const children = new Set<ChildProcess>()

const track = (child: ChildProcess) => {
  children.add(child)
  child.once("exit", () => children.delete(child))
  return child
}

export const spawnTracked = (command: string, args: ReadonlyArray<string>, options: SpawnOptions) =>
  track(spawn(command, args, options))

export interface NodeChildOptions {
  readonly env: NodeJS.ProcessEnv
  /** Where stderr (and stdout, unless `pipeStdout`) go. */
  readonly logFile: string
  /** Keep stdout readable (to read a printed URL); it is drained afterwards. */
  readonly pipeStdout?: boolean
  readonly ipc?: boolean
  /** Raise the open-files limit (`ulimit -n`) of the child to this. */
  readonly nofile?: number
}

/**
 * `node …args` as a tracked child. With `nofile`, it starts through `sh -c 'ulimit -n N && exec node …'`
 * (the same pid, IPC channel included, after the exec).
 */
export const spawnNode = (args: ReadonlyArray<string>, options: NodeChildOptions) => {
  const log = Fs.openSync(options.logFile, "a")
  const stdio: SpawnOptions["stdio"] = ["ignore", options.pipeStdout === true ? "pipe" : log, log, ...(options.ipc === true ? ["ipc" as const] : [])]
  const child = options.nofile === undefined
    ? spawnTracked(process.execPath, args, { env: options.env, stdio })
    : spawnTracked("/bin/sh", ["-c", `ulimit -n ${options.nofile} && exec "$0" "$@"`, process.execPath, ...args], { env: options.env, stdio })
  Fs.closeSync(log)
  return child
}

/** A TypeScript child (through tsx's loader) with an IPC channel: load generators, the fake. */
export const spawnTs = (script: string, args: ReadonlyArray<string>, options: Omit<NodeChildOptions, "ipc">) =>
  spawnNode(["--import", "tsx", script, ...args], { ...options, ipc: true })

/** Soft and hard limits on open files of this process (children inherit them). */
export const openFilesLimit = (): { soft: number; hard: number } => {
  const limits = Fs.readFileSync("/proc/self/limits", "utf8")
  const match = /^Max open files\s+(\S+)\s+(\S+)/m.exec(limits)
  const parse = (value: string | undefined) => (value === undefined || value === "unlimited" ? Number.POSITIVE_INFINITY : Number(value))
  return { soft: parse(match?.[1]), hard: parse(match?.[2]) }
}

/** Waits for the child's exit; SIGTERM, then SIGKILL after `graceMs`. */
export const stopChild = async (child: ChildProcess, graceMs = 10_000): Promise<number | null> => {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
  child.kill("SIGTERM")
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs)
  const code = await exited
  clearTimeout(timer)
  return code
}

export const stopAllChildren = (graceMs = 10_000) => Promise.all([...children].map((child) => stopChild(child, graceMs)))

/** Last resort on process exit: whatever is still running gets SIGKILL (synchronous). */
export const killAllChildrenNow = () => {
  for (const child of children) {
    try {
      child.kill("SIGKILL")
    } catch {
      // already gone
    }
  }
}

/** The first stdout line of `child` that parses as JSON with a `url`. */
export const readUrl = (child: ChildProcess, timeoutMs: number, what: string): Promise<string> =>
  new Promise((resolve, reject) => {
    let buffer = ""
    const timer = setTimeout(() => fail(new Error(`${what} printed no URL within ${timeoutMs} ms`)), timeoutMs)
    const onExit = (code: number | null) => fail(new Error(`${what} exited (${code}) before printing its URL`))
    const onData = (data: Buffer) => {
      buffer += data.toString("utf8")
      let newline: number
      while ((newline = buffer.indexOf("\n")) !== -1) {
        const line = buffer.slice(0, newline)
        buffer = buffer.slice(newline + 1)
        try {
          const parsed = JSON.parse(line) as { url?: unknown }
          if (typeof parsed.url === "string") return done(parsed.url)
        } catch {
          // not the line we want
        }
      }
    }
    const cleanup = () => {
      clearTimeout(timer)
      child.stdout?.off("data", onData)
      child.off("exit", onExit)
      // Keep draining stdout so a chatty child never blocks on a full pipe.
      child.stdout?.resume()
    }
    const done = (url: string) => {
      cleanup()
      resolve(url)
    }
    const fail = (error: Error) => {
      cleanup()
      reject(error)
    }
    child.stdout?.on("data", onData)
    child.once("exit", onExit)
  })

/** The next IPC message of `child` that `accept` takes, bounded by `timeoutMs`. */
export const nextMessage = <A>(child: ChildProcess, accept: (message: unknown) => message is A, timeoutMs: number, what: string): Promise<A> =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(() => finish(new Error(`${what}: no answer within ${timeoutMs} ms`)), timeoutMs)
    const onMessage = (message: unknown) => {
      if (accept(message)) finish(undefined, message)
    }
    const onExit = (code: number | null) => finish(new Error(`${what}: exited (${code})`))
    const finish = (error: Error | undefined, value?: A) => {
      clearTimeout(timer)
      child.off("message", onMessage)
      child.off("exit", onExit)
      if (error !== undefined) reject(error)
      else resolve(value as A)
    }
    child.on("message", onMessage)
    child.once("exit", onExit)
  })
