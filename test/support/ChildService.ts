/**
 * The service as a real process (`node --import tsx src/main.ts`), with an environment
 * built from scratch (nothing inherited but PATH and HOME), its stdout and stderr recorded.
 * The scope's finalizer stops a process that is still running: SIGTERM first (so an
 * embedded PostgreSQL is stopped too), SIGKILL only if that does not end it.
 */
import { Effect } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import * as Net from "node:net"
import { fileURLToPath } from "node:url"
import { LIVENESS_TIMEOUT_MS } from "./Http.js"

export const PROJECT_ROOT = fileURLToPath(new URL("../..", import.meta.url))

export interface ProcessExit {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

export interface ChildService {
  readonly child: ChildProcess
  readonly port: number
  readonly url: string
  readonly stdout: () => string
  readonly stderr: () => string
  /** Non-empty stdout lines so far. */
  readonly lines: () => ReadonlyArray<string>
  readonly exited: Promise<ProcessExit>
  readonly hasExited: () => boolean
}

/** A port that was free a moment ago on 127.0.0.1. */
export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = Net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })

const launch = async (env: Record<string, string>): Promise<ChildService> => {
  const port = env["PORT"] === undefined ? await freePort() : Number(env["PORT"])
  const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
    cwd: PROJECT_ROOT,
    detached: false,
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
  child.stdout?.setEncoding("utf8").on("data", (text: string) => (stdout += text))
  child.stderr?.setEncoding("utf8").on("data", (text: string) => (stderr += text))
  let hasExited = false
  const exited = new Promise<ProcessExit>((resolve) =>
    child.once("exit", (code, signal) => {
      hasExited = true
      resolve({ code, signal })
    })
  )
  return {
    child,
    port,
    url: `http://127.0.0.1:${port}`,
    stdout: () => stdout,
    stderr: () => stderr,
    lines: () => stdout.split("\n").filter((line) => line.trim() !== ""),
    exited,
    hasExited: () => hasExited
  }
}

const output = (service: ChildService) => `\nstdout:\n${service.stdout()}\nstderr:\n${service.stderr()}`

/** Waits for the exit, failing the test (with the output) if it takes longer than `limitMs`. */
export const awaitExit = (service: ChildService, limitMs = 30_000): Effect.Effect<ProcessExit> =>
  Effect.promise(
    () =>
      new Promise<ProcessExit>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`the service did not exit within ${limitMs} ms${output(service)}`)), limitMs)
        void service.exited.then((exit) => {
          clearTimeout(timer)
          resolve(exit)
        })
      })
  )

/** Starts the service; it is stopped (if still running) when the scope closes. */
export const spawnService = (env: Record<string, string>) =>
  Effect.acquireRelease(Effect.promise(() => launch(env)), (service) =>
    Effect.promise(async () => {
      if (service.hasExited()) return
      service.child.kill("SIGTERM")
      const stopped = await Promise.race([
        service.exited.then(() => true),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 20_000))
      ])
      if (!stopped) {
        service.child.kill("SIGKILL")
        await service.exited
      }
    })
  )

/** Polls `/health` until it answers 200; fails with the output if the process exits or `limitMs` passes. */
export const awaitHealthy = (service: ChildService, limitMs = 30_000): Effect.Effect<void> =>
  Effect.promise(async () => {
    const deadline = Date.now() + limitMs
    for (;;) {
      if (service.hasExited()) throw new Error(`the service exited before it was healthy${output(service)}`)
      try {
        const response = await fetch(`${service.url}/health`, { signal: AbortSignal.timeout(LIVENESS_TIMEOUT_MS) })
        await response.text()
        if (response.status === 200) return
      } catch {
        // Not listening yet.
      }
      if (Date.now() > deadline) throw new Error(`the service was not healthy within ${limitMs} ms${output(service)}`)
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  })

/** Resolves once a stdout line satisfies `predicate`; fails after `limitMs` or if the process exits first. */
export const awaitLine = (service: ChildService, predicate: (line: string) => boolean, limitMs = 20_000) =>
  Effect.promise(async () => {
    const deadline = Date.now() + limitMs
    for (;;) {
      const line = service.lines().find(predicate)
      if (line !== undefined) return line
      if (service.hasExited() || Date.now() > deadline) throw new Error(`no matching log line${output(service)}`)
      await new Promise((resolve) => setTimeout(resolve, 20))
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
