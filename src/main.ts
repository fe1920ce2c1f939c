import { NodeRuntime } from "@effect/platform-node"
import { Cause, Effect, Layer, LogLevel, Option } from "effect"
import { AppConfig, InvalidConfig } from "./Config.js"
import { DatabaseLive } from "./db/Database.js"
import { Health } from "./health/Health.js"
import { HttpServerLive } from "./http/Server.js"
import { Lifecycle } from "./Lifecycle.js"
import { loggingLayer } from "./observability/Logging.js"
import { Projects } from "./projects/Projects.js"

/**
 * The edge: the only place layers are composed. Infrastructure (config, database) sits
 * below the HTTP server so that on shutdown requests drain before the pool closes.
 */
const ServicesLive = Layer.mergeAll(Projects.Default, Health.Default).pipe(Layer.provideMerge(DatabaseLive))

const MainLive = HttpServerLive.pipe(
  Layer.provide(ServicesLive),
  Layer.provide(Lifecycle.Default),
  Layer.provide(Layer.unwrapEffect(Effect.map(AppConfig, (config) => loggingLayer(config.logLevel)))),
  Layer.provide(AppConfig.layer)
)

/** Startup and fatal errors as one JSON log line; bad configuration without a stack trace. */
const reportFailure = (cause: Cause.Cause<unknown>) => {
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure) && failure.value instanceof InvalidConfig) return Effect.logError(failure.value.message)
  return Cause.isInterruptedOnly(cause) ? Effect.void : Effect.logError("the service stopped on an error", cause)
}

Layer.launch(MainLive).pipe(
  Effect.tapErrorCause(reportFailure),
  Effect.provide(loggingLayer(LogLevel.Info)),
  NodeRuntime.runMain({ disablePrettyLogger: true, disableErrorReporting: true })
)
