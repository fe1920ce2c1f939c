import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as Effect from "effect/Effect"
import { Health } from "../health/Health.js"
import { Unhealthy } from "../health/HealthReport.js"
import { Lifecycle } from "../Lifecycle.js"
import { GoChatApi } from "./Api.js"

export const HealthHttpLive = HttpApiBuilder.group(GoChatApi, "health", (handlers) =>
  Effect.gen(function* () {
    const health = yield* Health
    const lifecycle = yield* Lifecycle
    return handlers.handle("health", () =>
      lifecycle.isDraining.pipe(
        Effect.flatMap(health.report),
        Effect.filterOrFail(
          (report) => report.status === "healthy",
          (report) => new Unhealthy({ report })
        )
      )
    )
  })
)
