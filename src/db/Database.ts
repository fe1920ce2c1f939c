import * as PgClient from "@effect/sql-pg/PgClient"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import * as Str from "effect/String"
import * as path from "node:path"
import { AppConfig } from "../Config.js"
import { startEmbeddedPostgres } from "./EmbeddedPostgres.js"
import { runMigrations } from "./Migrations.js"

/**
 * How long a query may wait for a connection (a free one from the pool, or a new one)
 * before the database counts as unreachable. pg-pool applies it to waiting for a busy
 * pool too, so it must cover bursts (a thousand answers starting at once), not only
 * outages; an unreachable server is usually refused at once anyway, and /health probes
 * with its own shorter limit.
 */
const CONNECT_TIMEOUT = Duration.seconds(5)

const clientOptions = {
  transformResultNames: Str.snakeToCamel,
  transformQueryNames: Str.camelToSnake,
  connectTimeout: CONNECT_TIMEOUT,
  maxConnections: 20,
  idleTimeout: Duration.seconds(30),
  applicationName: "go-chat-backend"
} as const

/**
 * The URL of the service's database (DATABASE_URL or the embedded server's), for the few
 * connections that live outside the pool (the bus). A secret: never logged.
 */
export class DatabaseUrl extends Context.Tag("DatabaseUrl")<DatabaseUrl, Redacted.Redacted<string>>() {}

/** `PgClient` on an already running server at `url`, with migrations applied, and the `DatabaseUrl`. */
const clientOn = (url: Redacted.Redacted<string>) =>
  Layer.effectDiscard(runMigrations).pipe(
    Layer.provideMerge(PgClient.layer({ ...clientOptions, url })),
    Layer.merge(Layer.succeed(DatabaseUrl, url))
  )

/**
 * The database of the service: the server at DATABASE_URL, or, when it is unset (never in
 * production), an embedded PostgreSQL 16 under DATA_DIR, stopped when the layer is released.
 */
export const DatabaseLive =
  Layer.unwrapScoped(
    Effect.gen(function* () {
      const config = yield* AppConfig
      if (Option.isSome(config.databaseUrl)) {
        return clientOn(config.databaseUrl.value)
      }
      const dataDir = path.resolve(config.dataDir, "postgres")
      yield* Effect.logWarning("DATABASE_URL is not set: starting the embedded PostgreSQL").pipe(
        Effect.annotateLogs({ dataDir, port: config.embeddedPostgresPort })
      )
      const embedded = yield* startEmbeddedPostgres({
        dataDir,
        port: config.embeddedPostgresPort,
        database: "gochat"
      })
      return clientOn(embedded.url)
    })
  )
