import * as SqlClient from "@effect/sql/SqlClient"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { Bus } from "../cluster/Bus.js"
import { Instances } from "../cluster/Instances.js"
import { AppConfig } from "../Config.js"
import { HealthReport } from "./HealthReport.js"

/** Well under the 2 s in which /health must answer even when PostgreSQL hangs. */
const DATABASE_PROBE_TIMEOUT = Duration.millis(1500)

export class Health extends Effect.Service<Health>()("Health", {
  effect: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const config = yield* AppConfig
    const bus = yield* Bus
    const instances = yield* Instances
    const model = Option.isSome(config.claudeApiKey) ? "claude" : "demo"

    const databaseReachable = sql`SELECT 1`.pipe(
      Effect.timeout(DATABASE_PROBE_TIMEOUT),
      Effect.as(true),
      Effect.catchAllCause(() => Effect.succeed(false))
    )

    /** Never fails: an unreachable dependency is part of the report, not an error. */
    const report = (draining: boolean) =>
      Effect.map(Effect.all([databaseReachable, bus.status, instances.status]), ([reachable, { connected }, cluster]) =>
        new HealthReport({
          // Without the bus this instance would miss the other instances' events: not fit to serve.
          status: draining ? "draining" : reachable && connected ? "healthy" : "unhealthy",
          database: reachable ? "connected" : "disconnected",
          bus: connected ? "up" : "down",
          cluster: { instanceId: cluster.id, peers: cluster.peers },
          model,
          timestamp: new Date()
        })
      )

    return { report } as const
  })
}) {}
