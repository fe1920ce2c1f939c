/**
 * The embedded PostgreSQL's process and its lock file (`postmaster.pid`): finding out whether
 * the server a lock names still runs, stopping it safely, and clearing a stale lock after a
 * crash, so that the next start succeeds.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Fs from "node:fs"
import * as Path from "node:path"

export class EmbeddedPostgresError extends Schema.TaggedError<EmbeddedPostgresError>()("EmbeddedPostgresError", {
  message: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {}

export const STOP_TIMEOUT = Duration.seconds(10)
/** After a fast shutdown times out we fall back to an immediate shutdown (crash-safe, WAL replay on next start). */
const IMMEDIATE_STOP_TIMEOUT = Duration.seconds(5)

export const fail = (message: string, cause?: unknown) =>
  new EmbeddedPostgresError(cause === undefined ? { message } : { message, cause })

export const errorText = (error: unknown): string =>
  error instanceof Error ? error.message : error === undefined ? "no error details" : String(error)


const lockFilePath = (dataDir: string) => Path.join(dataDir, "postmaster.pid")

/** The pid on the first line of postmaster.pid; None when there is no lock file. */
export const readLockPid = (dataDir: string): Option.Option<number | "unreadable"> => {
  let content: string
  try {
    content = Fs.readFileSync(lockFilePath(dataDir), "utf8")
  } catch {
    return Option.none()
  }
  const pid = Number.parseInt(content.split("\n")[0] ?? "", 10)
  return Option.some(Number.isInteger(pid) && pid > 0 ? pid : "unreadable")
}

/** Zombies count as dead: they hold no lock and no port, but `kill(pid, 0)` still succeeds on them. */
const isZombie = (pid: number): boolean => {
  try {
    const stat = Fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    // Format: "pid (comm) state ..."; comm may contain spaces or parentheses.
    const state = stat.charAt(stat.lastIndexOf(")") + 2)
    return state === "Z"
  } catch {
    return false
  }
}

export const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
  } catch (error) {
    // EPERM: the process exists but belongs to another user.
    if (!(error instanceof Error && "code" in error && error.code === "EPERM")) return false
  }
  return !isZombie(pid)
}

/** argv of a process (Linux /proc); None where unavailable, e.g. on macOS or for a vanished pid. */
export const commandLine = (pid: number): Option.Option<ReadonlyArray<string>> => {
  try {
    const raw = Fs.readFileSync(`/proc/${pid}/cmdline`, "utf8")
    return raw === "" ? Option.none() : Option.some(raw.split("\0").filter((arg) => arg !== ""))
  } catch {
    return Option.none()
  }
}

/** Whether `argv` is a postmaster started with `-D <dataDir>` (as the package starts it). */
export const isPostmasterFor = (argv: ReadonlyArray<string>, dataDir: string): boolean => {
  const program = argv[0]
  const flag = argv.indexOf("-D")
  const dataArg = flag === -1 ? undefined : argv[flag + 1]
  return program !== undefined && Path.basename(program) === "postgres" &&
    dataArg !== undefined && Path.resolve(dataArg) === dataDir
}

/** Polls until the process is gone; `true` when it exited within `within`. */
const waitForExit = (pid: number, within: Duration.Duration): Effect.Effect<boolean> =>
  Effect.gen(function*() {
    while (isAlive(pid)) yield* Effect.sleep(Duration.millis(50))
    // Interruptible: this runs in finalizers, where only an interruptible wait can time out.
  }).pipe(Effect.interruptible, Effect.timeoutOption(within), Effect.map(Option.isSome))

const signal = (pid: number, name: NodeJS.Signals) =>
  Effect.sync(() => {
    try {
      process.kill(pid, name)
    } catch {
      // Already gone: exactly what we want.
    }
  })

/**
 * Shuts a postmaster down: SIGINT (fast shutdown: clean, aborts sessions),
 * then SIGQUIT (immediate shutdown: crash-safe, recovered by WAL replay).
 * Never SIGKILL: that would orphan backends still attached to shared memory.
 */
export const shutdownPostmaster = (pid: number, dataDir: string): Effect.Effect<void, EmbeddedPostgresError> =>
  Effect.gen(function*() {
    yield* signal(pid, "SIGINT")
    if (yield* waitForExit(pid, STOP_TIMEOUT)) return
    yield* Effect.logWarning(`embedded-postgres: pid ${pid} ignored fast shutdown, sending SIGQUIT`)
    yield* signal(pid, "SIGQUIT")
    if (yield* waitForExit(pid, IMMEDIATE_STOP_TIMEOUT)) return
    return yield* fail(
      `PostgreSQL (pid ${pid}) for ${dataDir} does not shut down; stop it (\`kill -KILL ${pid}\`, ` +
        `then make sure no \`postgres\` process for ${dataDir} remains) and start again`
    )
  })

/**
 * Makes `postmaster.pid` safe to start over. After our process was killed the
 * server may still run (an orphan: it keeps the port and the lock) or be dead
 * with the file left behind; postgres then refuses to start when the pid in
 * the file is still "alive", which includes zombies and recycled pids.
 */
export const clearStaleLock = (dataDir: string): Effect.Effect<void, EmbeddedPostgresError> =>
  Effect.gen(function*() {
    const lock = readLockPid(dataDir)
    if (Option.isNone(lock)) return
    const lockFile = lockFilePath(dataDir)
    const pid = lock.value
    if (pid === "unreadable") {
      return yield* fail(
        `${lockFile} is empty or damaged (PostgreSQL probably crashed while starting). ` +
          `If no PostgreSQL server uses ${dataDir}, delete ${lockFile} and start again`
      )
    }
    if (isAlive(pid)) {
      const argv = commandLine(pid)
      if (Option.isNone(argv) || !isPostmasterFor(argv.value, dataDir)) {
        const what = Option.match(argv, { onNone: () => "an unknown process", onSome: (args) => `\`${args.join(" ")}\`` })
        return yield* fail(
          `${lockFile} names pid ${pid}, which is running but is ${what}, not PostgreSQL for ${dataDir}. ` +
            `If no PostgreSQL server uses ${dataDir} (the pid was reused after a restart), delete ${lockFile} and start again; ` +
            `otherwise stop that server first`
        )
      }
      yield* Effect.logInfo(`embedded-postgres: stopping orphaned PostgreSQL (pid ${pid}) left by a previous run`)
      yield* shutdownPostmaster(pid, dataDir)
    }
    // A clean shutdown removes the file itself; after a crash it is still there.
    if (Fs.existsSync(lockFile)) {
      yield* Effect.logInfo(`embedded-postgres: removing stale ${lockFile} (pid ${pid} is gone)`)
      yield* Effect.try({
        try: () => Fs.rmSync(lockFile, { force: true }),
        catch: (cause) => fail(`Could not delete stale ${lockFile}: ${errorText(cause)}`, cause)
      })
    }
  })
