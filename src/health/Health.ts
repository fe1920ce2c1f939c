import { SqlClient } from "@effect/sql"
import { Duration, Effect, Option } from "effect"
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
    const model = Option.isSome(config.claudeApiKey) ? "claude" : "demo"
    const bus = yield* Bus
    const instances = yield* Instances

    const databaseReachable = sql`SELECT 1`.pipe(
      Effect.timeout(DATABASE_PROBE_TIMEOUT),
      Effect.as(true),
      Effect.catchAllCause(() => Effect.succeed(false))
    )

    /** Never fails: an unreachable dependency is part of the report, not an error. */
    const report = (draining: boolean) =>
      Effect.map(Effect.all([databaseReachable, bus.status, instances.status]), ([reachable, busStatus, cluster]) =>
        new HealthReport({
          cluster: { instanceId: cluster.id, peers: cluster.peers, bus: busStatus },
          status: draining ? "draining" : reachable ? "healthy" : "unhealthy",
          database: reachable ? "connected" : "disconnected",
          model,
          timestamp: new Date()
        })
      )

    return { report } as const
  })
}) {}
