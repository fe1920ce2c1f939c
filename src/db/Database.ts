import * as PgClient from "@effect/sql-pg/PgClient"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import * as Str from "effect/String"
import * as path from "node:path"
import { AppConfig } from "../Config.js"
import { startEmbeddedPostgres } from "./EmbeddedPostgres.js"
import { runMigrations } from "./Migrations.js"
import { acquirePool, DatabasePool } from "./Pool.js"

const transforms = {
  transformResultNames: Str.snakeToCamel,
  transformQueryNames: Str.camelToSnake
} as const

const APPLICATION_NAME = "go-chat-backend"

/**
 * The URL of the service's database (DATABASE_URL or the embedded server's), for the few
 * connections that live outside the pool (the bus). A secret: never logged.
 */
export class DatabaseUrl extends Context.Tag("DatabaseUrl")<DatabaseUrl, Redacted.Redacted<string>>() {}

/**
 * `PgClient` on an already running server at `url`, with migrations applied, on a pool the
 * service holds (`DatabasePool`, for the prepared hot reads), and the `DatabaseUrl`.
 */
const clientOn = (url: Redacted.Redacted<string>) =>
  Layer.effectDiscard(runMigrations).pipe(
    Layer.provideMerge(
      Layer.unwrapScoped(
        Effect.map(acquirePool(url, APPLICATION_NAME), (pool) =>
          PgClient.layerFromPool({ ...transforms, applicationName: APPLICATION_NAME, acquire: Effect.succeed(pool) }).pipe(
            Layer.merge(Layer.succeed(DatabasePool, pool))
          ))
      )
    ),
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
