import { PgClient } from "@effect/sql-pg"
import { SqlClient } from "@effect/sql"
import { Effect, Layer, Redacted } from "effect"
import { randomBytes } from "node:crypto"
import { inject } from "vitest"

/** The server every test talks to: embedded PostgreSQL, or TEST_DATABASE_URL. */
export const serverUrl = (): string => inject("databaseUrl")

const withDatabase = (url: string, database: string) => {
  const parsed = new URL(url)
  parsed.pathname = `/${database}`
  return parsed.toString()
}

const adminClient = (url: string) => PgClient.layer({ url: Redacted.make(url), maxConnections: 1 })

/**
 * A database of its own for one test file (or test), created on the shared server and
 * dropped afterwards, so files run in parallel without seeing each other's rows.
 */
export const freshDatabase = Effect.gen(function* () {
  const base = serverUrl()
  const name = `gochat_t_${randomBytes(6).toString("hex")}`
  const admin = yield* Layer.build(adminClient(base)).pipe(Effect.map((context) => context))
  const sql = yield* Effect.provide(SqlClient.SqlClient, admin)
  // Identifiers cannot be parameters; the name is generated here from hex digits only.
  yield* sql.unsafe(`CREATE DATABASE ${name}`)
  yield* Effect.addFinalizer(() => Effect.ignore(sql.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)))
  return withDatabase(base, name)
})
