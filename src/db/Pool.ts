import { SqlError } from "@effect/sql/SqlError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import Pg from "pg"

/**
 * How long a query may wait for a connection (a free one from the pool, or a new one)
 * before the database counts as unreachable. pg-pool applies it to waiting for a busy
 * pool too, so it must cover bursts (a thousand answers starting at once), not only
 * outages; an unreachable server is usually refused at once anyway, and /health probes
 * with its own shorter limit.
 */
const CONNECT_TIMEOUT = Duration.seconds(5)

const MAX_CONNECTIONS = 20
const IDLE_TIMEOUT = Duration.seconds(30)

/**
 * The service's `pg` pool, which `PgClient` runs on. Held by the service itself (not
 * created inside `PgClient`) so that the hot reads can use named prepared statements,
 * which `@effect/sql-pg` 0.53 does not offer (see `Prepared.ts`).
 */
export class DatabasePool extends Context.Tag("DatabasePool")<DatabasePool, Pg.Pool>() {}

/** A pool on `url`, checked with one `SELECT 1` (as `PgClient.make` does), ended on release. */
export const acquirePool = (url: Redacted.Redacted<string>, applicationName: string) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const pool = new Pg.Pool({
        connectionString: Redacted.value(url),
        connectionTimeoutMillis: Duration.toMillis(CONNECT_TIMEOUT),
        idleTimeoutMillis: Duration.toMillis(IDLE_TIMEOUT),
        max: MAX_CONNECTIONS,
        application_name: applicationName
      })
      // A connection that dies while idle is dropped by the pool; the next query reports it.
      pool.on("error", () => {})
      return pool
    }),
    (pool) => Effect.promise(() => pool.end()).pipe(Effect.interruptible, Effect.timeoutOption(1000))
  ).pipe(
    Effect.tap((pool) =>
      Effect.tryPromise({
        try: () => pool.query("SELECT 1"),
        catch: (cause) => new SqlError({ cause, message: "Failed to connect" })
      }).pipe(
        Effect.timeoutFail({
          duration: CONNECT_TIMEOUT,
          onTimeout: () => new SqlError({ cause: new Error("Connection timed out"), message: "Connection timed out" })
        })
      )
    )
  )
