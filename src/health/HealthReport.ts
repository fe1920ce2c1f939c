import { Schema } from "effect"

export class HealthReport extends Schema.Class<HealthReport>("HealthReport")({
  status: Schema.Literal("healthy", "unhealthy", "draining"),
  database: Schema.Literal("connected", "disconnected"),
  /** `claude` with an API key, `demo` when the offline demo model answers. */
  model: Schema.Literal("claude", "demo"),
  /** The other instances on this database, and this one's bus connection (README, "Several instances"). */
  cluster: Schema.Struct({
    instanceId: Schema.String,
    peers: Schema.Int,
    bus: Schema.Struct({ connected: Schema.Boolean, listening: Schema.Int, reconnects: Schema.Int })
  }),
  timestamp: Schema.Date
}) {}

/** The service cannot serve: the body still tells which part is down. */
export class Unhealthy extends Schema.TaggedError<Unhealthy>()("Unhealthy", { report: HealthReport }) {}

export const UnhealthyBody = Schema.transform(HealthReport, Schema.typeSchema(Unhealthy), {
  strict: true,
  decode: (report) => new Unhealthy({ report }),
  encode: (error) => error.report
})
