import { NodeRuntime } from "@effect/platform-node"
import { Cause, Effect, Layer, LogLevel, Option } from "effect"
import { AppLive } from "./App.js"
import { InvalidConfig } from "./Config.js"
import { loggingLayer } from "./observability/Logging.js"

/** Startup and fatal errors as one JSON log line; bad configuration without a stack trace. */
const reportFailure = (cause: Cause.Cause<unknown>) => {
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure) && failure.value instanceof InvalidConfig) return Effect.logError(failure.value.message)
  return Cause.isInterruptedOnly(cause) ? Effect.void : Effect.logError("the service stopped on an error", cause)
}

Layer.launch(AppLive).pipe(
  Effect.tapErrorCause(reportFailure),
  Effect.provide(loggingLayer(LogLevel.Info)),
  NodeRuntime.runMain({ disablePrettyLogger: true, disableErrorReporting: true })
)
