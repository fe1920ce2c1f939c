import { HttpServer } from "@effect/platform"
import { PgClient } from "@effect/sql-pg"
import { SqlClient } from "@effect/sql"
import { Clock, ConfigProvider, Context, Effect, Layer, Redacted } from "effect"
import { AppLive } from "../../src/App.js"
import { freshDatabase } from "./TestDatabase.js"

export interface TestApp {
  /** `http://127.0.0.1:<port>` */
  readonly url: string
  /** `ws://127.0.0.1:<port>` */
  readonly wsUrl: string
  readonly databaseUrl: string
  /** A client on the app's database, to check what was stored. */
  readonly sql: SqlClient.SqlClient
}

/**
 * The real service, composed exactly as `main.ts` does, on a fresh database and a random
 * port, configured from `env` alone (never from the test process's environment).
 */
export const startTestApp = (env: Record<string, string> = {}) =>
  Effect.gen(function* () {
    const databaseUrl = env["DATABASE_URL"] ?? (yield* freshDatabase)
    const config = ConfigProvider.fromMap(
      new Map(Object.entries({ HOST: "127.0.0.1", PORT: "0", LOG_LEVEL: "warning", DATABASE_URL: databaseUrl, ...env }))
    )
    // The service runs on the real clock even inside `it.effect`/`it.scoped` (whose TestClock
    // never advances by itself): its timers — heartbeats, checkpoints, shutdown drain — must tick.
    const context = yield* Layer.build(AppLive.pipe(Layer.provide(Layer.setConfigProvider(config)))).pipe(
      Effect.withClock(Clock.make())
    )
    const address = Context.get(context, HttpServer.HttpServer).address
    if (address._tag !== "TcpAddress") return yield* Effect.dieMessage("expected a TCP address")
    const client = yield* Layer.build(PgClient.layer({ url: Redacted.make(databaseUrl), maxConnections: 2 }))
    const sql = Context.get(client, SqlClient.SqlClient)
    return {
      url: `http://127.0.0.1:${address.port}`,
      wsUrl: `ws://127.0.0.1:${address.port}`,
      databaseUrl,
      sql
    } satisfies TestApp
  })
