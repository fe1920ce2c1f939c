import * as Schema from "effect/Schema"

export class HealthReport extends Schema.Class<HealthReport>("HealthReport")({
  status: Schema.Literal("healthy", "unhealthy", "draining"),
  database: Schema.Literal("connected", "disconnected"),
  /** The instances' event bus (LISTEN/NOTIFY connection): `down` while it reconnects. */
  bus: Schema.Literal("up", "down"),
  /** `claude` with an API key, `demo` when the offline demo model answers. */
  model: Schema.Literal("claude", "demo"),
  /** This instance, and how many others it saw alive in the last 3 s (README, "Several instances"). */
  cluster: Schema.Struct({ instanceId: Schema.String, peers: Schema.Int }),
  timestamp: Schema.Date
}) {}

/** The service cannot serve: the body still tells which part is down. */
export class Unhealthy extends Schema.TaggedError<Unhealthy>()("Unhealthy", { report: HealthReport }) {}

export const UnhealthyBody = Schema.transform(HealthReport, Schema.typeSchema(Unhealthy), {
  strict: true,
  decode: (report) => new Unhealthy({ report }),
  encode: (error) => error.report
})
