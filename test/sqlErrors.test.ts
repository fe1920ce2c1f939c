/**
 * Which database failures the chat may send again (`neverSent`): told apart on the errors
 * `pg` and `pg-pool` really raise, against the test PostgreSQL.
 */
import { SqlError } from "@effect/sql/SqlError"
import pg from "pg"
import { describe, expect, it } from "vitest"
import { isConnectionFailure, neverSent } from "../src/db/SqlErrors.js"
import { freePort } from "./support/FreePort.js"
import { serverUrl } from "./support/TestDatabase.js"

/** The failure of `run`, as `@effect/sql-pg` wraps it. */
const failureOf = async (run: () => Promise<unknown>): Promise<SqlError> => {
  try {
    await run()
  } catch (cause) {
    return new SqlError({ cause, message: "test" })
  }
  throw new Error("expected the statement to fail")
}

describe("database failures that cannot have run the statement", () => {
  it("a pool wait that passes its limit (every connection busy): never sent, and counted as unavailable", async () => {
    const pool = new pg.Pool({ connectionString: serverUrl(), max: 1, connectionTimeoutMillis: 100 })
    const held = await pool.connect()
    try {
      const error = await failureOf(() => pool.query("SELECT 1"))
      expect(neverSent(error)).toBe(true)
      expect(isConnectionFailure(error)).toBe(true)
    } finally {
      held.release()
      await pool.end()
    }
  })

  it("a refused connection: never sent", async () => {
    const pool = new pg.Pool({ connectionString: `postgres://root@127.0.0.1:${await freePort()}/test`, max: 1 })
    try {
      const error = await failureOf(() => pool.query("SELECT 1"))
      expect(neverSent(error)).toBe(true)
    } finally {
      await pool.end()
    }
  })

  it("a statement the server refused, or a connection lost while it ran: may have run, so not sent again", async () => {
    const pool = new pg.Pool({ connectionString: serverUrl(), max: 2 })
    try {
      const refused = await failureOf(() => pool.query("SELEC 1"))
      expect(neverSent(refused)).toBe(false)
      expect(isConnectionFailure(refused)).toBe(false)

      const running = await pool.connect()
      running.on("error", () => {})
      const pid = (await running.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]?.pid
      const cut = failureOf(() => running.query("SELECT pg_sleep(30)"))
      // The sleep is sent before the other connection ends its backend.
      for (;;) {
        const { rows } = await pool.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = $1 AND query LIKE 'SELECT pg_sleep%'",
          [pid]
        )
        if (rows[0]?.n === 1) break
      }
      await pool.query("SELECT pg_terminate_backend($1)", [pid])
      const lost = await cut
      running.release(true)
      expect(isConnectionFailure(lost)).toBe(true)
      expect(neverSent(lost)).toBe(false)
    } finally {
      await pool.end()
    }
  })
})
