/**
 * The real service as its own process (`node --import tsx src/main.ts`), for what only a
 * process can show: SIGKILL mid-answer and a restart, SIGTERM and the exit code. Started
 * with an explicit environment (nothing inherited but PATH and HOME), on 127.0.0.1 and a
 * free port; killed with SIGKILL by the scope's finalizer if it is still running.
 */
import { Effect } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import * as Net from "node:net"
import { fileURLToPath } from "node:url"

const ROOT = fileURLToPath(new URL("../..", import.meta.url))

export interface Exit {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

export interface ServiceProcess {
  readonly port: number
  readonly url: string
  readonly wsUrl: string
  readonly child: ChildProcess
  readonly stdout: () => string
  readonly stderr: () => string
  /** Parsed JSON log lines from stdout (lines that are not JSON are skipped). */
  readonly logs: () => ReadonlyArray<Record<string, unknown>>
  readonly exited: Promise<Exit>
  readonly hasExited: () => boolean
  readonly signal: (signal: NodeJS.Signals) => void
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

const startProcess = async (env: Record<string, string>): Promise<ServiceProcess> => {
  const port = Number(env["PORT"] ?? (await freePort()))
  const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
    cwd: ROOT,
    env: {
      PATH: process.env["PATH"] ?? "/usr/bin:/bin",
      HOME: process.env["HOME"] ?? "/tmp",
      NODE_ENV: "development",
      HOST: "127.0.0.1",
      LOG_LEVEL: "info",
      ...env,
      PORT: String(port)
    },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let stdout = ""
  let stderr = ""
  child.stdout?.setEncoding("utf8").on("data", (text: string) => (stdout += text))
  child.stderr?.setEncoding("utf8").on("data", (text: string) => (stderr += text))
  let exitedFlag = false
  const exited = new Promise<Exit>((resolve) =>
    child.once("exit", (code, signal) => {
      exitedFlag = true
      resolve({ code, signal })
    })
  )
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}`,
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    logs: () =>
      stdout.split("\n").flatMap((line) => {
        try {
          const parsed: unknown = JSON.parse(line)
          return typeof parsed === "object" && parsed !== null ? [parsed as Record<string, unknown>] : []
        } catch {
          return []
        }
      }),
    exited,
    hasExited: () => exitedFlag,
    signal: (signal) => {
      if (!exitedFlag) child.kill(signal)
    }
  }
}

/** Polls `/health` until it answers 200; fails with the process output if it exits or never gets there. */
const awaitHealthy = async (service: ServiceProcess, timeoutMs: number): Promise<void> => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (service.hasExited()) {
      throw new Error(`the service exited before it was healthy\nstdout:\n${service.stdout()}\nstderr:\n${service.stderr()}`)
    }
    try {
      const response = await fetch(`${service.url}/health`, { signal: AbortSignal.timeout(2_000) })
      await response.text()
      if (response.status === 200) return
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      throw new Error(`the service was not healthy within ${timeoutMs} ms\nstdout:\n${service.stdout()}\nstderr:\n${service.stderr()}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

/**
 * Starts the service and waits until it is healthy. The finalizer SIGKILLs it if it is
 * still running and waits for the exit, so no process outlives the test.
 */
export const spawnService = (env: Record<string, string>, readyTimeoutMs = 60_000) =>
  Effect.acquireRelease(
    Effect.promise(() => startProcess(env)),
    (service) =>
      Effect.promise(async () => {
        if (!service.hasExited()) {
          service.child.kill("SIGKILL")
          await service.exited
        }
      })
  ).pipe(Effect.tap((service) => Effect.promise(() => awaitHealthy(service, readyTimeoutMs))))

/** Waits for the process to exit (liveness bound only). */
export const awaitExit = (service: ServiceProcess, timeoutMs = 30_000) =>
  Effect.promise(
    () =>
      new Promise<Exit>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`the service did not exit within ${timeoutMs} ms\nstdout:\n${service.stdout()}`)),
          timeoutMs
        )
        void service.exited.then((exit) => {
          clearTimeout(timer)
          resolve(exit)
        })
      })
  )
