import * as NodeContext from "@effect/platform-node/NodeContext"
import * as FileSystem from "@effect/platform/FileSystem"
import * as PgMigrator from "@effect/sql-pg/PgMigrator"
import * as SqlClient from "@effect/sql/SqlClient"
import type * as Migrator from "@effect/sql/Migrator"
import * as Effect from "effect/Effect"
import { fileURLToPath } from "node:url"

/** `sql/` at the project root: the same place from `src/db` (tsx) and `dist/db` (node). */
export const migrationsDirectory = fileURLToPath(new URL("../../sql/", import.meta.url))

const MIGRATION_FILE = /^(\d+)_([\w-]+)\.sql$/

/** Arbitrary constant: serialises migrations of instances that start together. */
const MIGRATION_LOCK_KEY = 720_114_002

/**
 * The @effect/sql migrator only loads .ts/.js modules; this loader turns each numbered
 * plain `.sql` file into a migration that runs the file as one multi-statement query.
 */
export const sqlFileLoader = (directory: string): Migrator.Loader<FileSystem.FileSystem> =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const files = yield* fs.readDirectory(directory)
    return files.flatMap((file): ReadonlyArray<Migrator.ResolvedMigration> => {
      const match = MIGRATION_FILE.exec(file)
      if (match === null) return []
      const [, id = "", name = ""] = match
      const migration = Effect.gen(function* () {
        const text = yield* fs.readFileString(`${directory}/${file}`)
        const sql = yield* SqlClient.SqlClient
        yield* sql.unsafe(text)
      })
      return [[Number(id), name, Effect.succeed(migration)]]
    })
    // A missing or unreadable sql/ folder is a broken install, not a runtime condition.
  }).pipe(Effect.orDie)

/**
 * Applies pending migrations. A session advisory lock, held on a connection of its own
 * (the migrator needs the pool), makes a second instance starting at the same time wait,
 * then find nothing to do.
 */
export const runMigrations = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const lock = yield* sql.reserve
  yield* Effect.acquireRelease(
    lock.executeRaw("SELECT pg_advisory_lock($1)", [MIGRATION_LOCK_KEY]),
    () => Effect.ignore(lock.executeRaw("SELECT pg_advisory_unlock($1)", [MIGRATION_LOCK_KEY]))
  )
  const applied = yield* PgMigrator.run({ loader: sqlFileLoader(migrationsDirectory) })
  if (applied.length > 0) {
    yield* Effect.logInfo("database migrations applied").pipe(
      Effect.annotateLogs("migrations", applied.map(([id, name]) => `${id}_${name}`).join(","))
    )
  }
}).pipe(Effect.scoped, Effect.provide(NodeContext.layer))
