/**
 * The real service as its own process, for what only a process can show: its stdout, exit
 * codes, SIGTERM and SIGKILL, the embedded PostgreSQL, the production build.
 *
 * Started from the TypeScript source (`node --import tsx src/main.ts`) or from the compiled
 * build (`node dist/main.js`, after `npm run build`), with an environment built from scratch
 * (nothing inherited but PATH and HOME), on 127.0.0.1 and a free port unless `PORT` is given;
 * stdout and stderr are recorded. The scope's finalizer stops a process that is still
 * running: with SIGKILL, or (`stop: "terminate"`) with SIGTERM first, so that an embedded
 * PostgreSQL is stopped too, and SIGKILL only if that does not end it.
 */
import { Effect } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import * as Net from "node:net"
import { fileURLToPath } from "node:url"
import { freePort } from "./FreePort.js"

export const PROJECT_ROOT = fileURLToPath(new URL("../..", import.meta.url))

export interface ProcessExit {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

export interface ServiceProcess {
  readonly child: ChildProcess
  readonly port: number
  /** `http://127.0.0.1:<port>` */
  readonly url: string
  /** `ws://127.0.0.1:<port>` */
  readonly wsUrl: string
  readonly stdout: () => string
  readonly stderr: () => string
  /** stdout and stderr together, in the order they arrived. */
  readonly output: () => string
  /** Non-empty stdout lines so far. */
  readonly lines: () => ReadonlyArray<string>
  /** stdout lines that parse as JSON objects (other lines are skipped). */
  readonly logs: () => ReadonlyArray<Record<string, unknown>>
  readonly exited: Promise<ProcessExit>
  readonly hasExited: () => boolean
  /** Sends `signal` unless the process has already exited. */
  readonly signal: (signal: NodeJS.Signals) => void
}

export interface SpawnOptions {
  /** `source` (the default): `node --import tsx src/main.ts`; `compiled`: `node dist/main.js`. */
  readonly entry?: "source" | "compiled"
  /** How the scope's finalizer stops a process still running: `kill` (the default) or `terminate`. */
  readonly stop?: "kill" | "terminate"
}

const ENTRY_ARGS = {
  source: ["--import", "tsx", "src/main.ts"],
  compiled: ["dist/main.js"]
} as const

/** How long `stop: "terminate"` waits after SIGTERM before it sends SIGKILL. */
const TERMINATE_GRACE_MS = 20_000

/** Bound of one `/health` poll; `awaitHealthy` polls again until its own limit. */
const HEALTH_PROBE_TIMEOUT_MS = 2_000

const asLogObject = (line: string): ReadonlyArray<Record<string, unknown>> => {
  try {
    const parsed: unknown = JSON.parse(line)
    return typeof parsed === "object" && parsed !== null && !Array.isArray(parsed) ? [parsed as Record<string, unknown>] : []
  } catch {
    return []
  }
}

const launch = async (env: Record<string, string>, entry: "source" | "compiled"): Promise<ServiceProcess> => {
  const port = env["PORT"] === undefined ? await freePort() : Number(env["PORT"])
  const child = spawn(process.execPath, ENTRY_ARGS[entry], {
    cwd: PROJECT_ROOT,
    env: {
      PATH: process.env["PATH"] ?? "/usr/local/bin:/usr/bin:/bin",
      HOME: process.env["HOME"] ?? "/tmp",
      HOST: "127.0.0.1",
      ...env,
      PORT: String(port)
    },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let stdout = ""
  let stderr = ""
  let output = ""
  child.stdout?.setEncoding("utf8").on("data", (text: string) => {
    stdout += text
    output += text
  })
  child.stderr?.setEncoding("utf8").on("data", (text: string) => {
    stderr += text
    output += text
  })
  let hasExited = false
  const exited = new Promise<ProcessExit>((resolve) =>
    child.once("exit", (code, signal) => {
      hasExited = true
      resolve({ code, signal })
    })
  )
  const lines = () => stdout.split("\n").filter((line) => line.trim() !== "")
  return {
    child,
    port,
    url: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}`,
    stdout: () => stdout,
    stderr: () => stderr,
    output: () => output,
    lines,
    logs: () => lines().flatMap(asLogObject),
    exited,
    hasExited: () => hasExited,
    signal: (signal) => {
      if (!hasExited) child.kill(signal)
    }
  }
}

const describeOutput = (service: ServiceProcess) => `\nstdout:\n${service.stdout()}\nstderr:\n${service.stderr()}`

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Whether the process exits within `limitMs`. */
const exitsWithin = (service: ServiceProcess, limitMs: number): Promise<boolean> =>
  new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), limitMs)
    void service.exited.then(() => {
      clearTimeout(timer)
      resolve(true)
    })
  })

const stop = async (service: ServiceProcess, how: "kill" | "terminate"): Promise<void> => {
  if (service.hasExited()) return
  if (how === "terminate") {
    service.signal("SIGTERM")
    if (await exitsWithin(service, TERMINATE_GRACE_MS)) return
  }
  service.signal("SIGKILL")
  await service.exited
}

/**
 * The process's output through `console`, so that it belongs to the running test: with
 * Vitest's `silent: "passed-only"` it is printed only when that test fails.
 */
const logOutput = (service: ServiceProcess): void => {
  const exit = service.hasExited() ? "" : " (still running)"
  console.log(`--- service process on port ${service.port}${exit}: stdout and stderr ---\n${service.output()}--- end of service output ---`)
}

/**
 * Starts the service without waiting for it; it is stopped (if still running) when the scope
 * closes, and its output is logged then (shown only if the test failed).
 */
export const spawnService = (env: Record<string, string>, options: SpawnOptions = {}) =>
  Effect.acquireRelease(
    Effect.promise(() => launch(env, options.entry ?? "source")),
    (service) => Effect.promise(() => stop(service, options.stop ?? "kill")).pipe(Effect.ensuring(Effect.sync(() => logOutput(service))))
  )

/**
 * Polls `/health` until it answers 200 and returns that answer's body (parsed JSON); fails
 * with the process output if the process exits first or `limitMs` passes.
 */
export const awaitHealthy = (service: ServiceProcess, limitMs = 30_000): Effect.Effect<unknown> =>
  Effect.promise(async () => {
    const deadline = Date.now() + limitMs
    for (;;) {
      if (service.hasExited()) throw new Error(`the service exited before it was healthy${describeOutput(service)}`)
      let answer: { readonly status: number; readonly text: string } | undefined
      try {
        const response = await fetch(`${service.url}/health`, { signal: AbortSignal.timeout(HEALTH_PROBE_TIMEOUT_MS) })
        answer = { status: response.status, text: await response.text() }
      } catch {
        // Not listening yet.
      }
      if (answer?.status === 200) return JSON.parse(answer.text) as unknown
      if (Date.now() > deadline) throw new Error(`the service was not healthy within ${limitMs} ms${describeOutput(service)}`)
      await sleep(100)
    }
  })

/** `spawnService`, then `awaitHealthy` (within `readyTimeoutMs`). */
export const spawnHealthyService = (env: Record<string, string>, options: SpawnOptions & { readonly readyTimeoutMs?: number } = {}) =>
  Effect.tap(spawnService(env, options), (service) => awaitHealthy(service, options.readyTimeoutMs ?? 60_000))

/** Waits for the exit, failing the test (with the output) if it takes longer than `limitMs`. */
export const awaitExit = (service: ServiceProcess, limitMs = 60_000): Effect.Effect<ProcessExit> =>
  Effect.promise(async () => {
    if (!(await exitsWithin(service, limitMs))) throw new Error(`the service did not exit within ${limitMs} ms${describeOutput(service)}`)
    return service.exited
  })

/** Resolves once a stdout line satisfies `predicate`; fails after `limitMs` or if the process exits first. */
export const awaitLine = (service: ServiceProcess, predicate: (line: string) => boolean, limitMs = 30_000) =>
  Effect.promise(async () => {
    const deadline = Date.now() + limitMs
    for (;;) {
      const line = service.lines().find(predicate)
      if (line !== undefined) return line
      if (service.hasExited() || Date.now() > deadline) throw new Error(`no matching log line${describeOutput(service)}`)
      await sleep(20)
    }
  })

/** Whether a new TCP connection to `port` on 127.0.0.1 is refused. */
export const connectionRefused = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = Net.connect(port, "127.0.0.1")
    socket.once("connect", () => {
      socket.destroy()
      resolve(false)
    })
    socket.once("error", (error: NodeJS.ErrnoException) => resolve(error.code === "ECONNREFUSED"))
  })
