import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import { AppLive } from "./App.js"
import { InvalidConfig } from "./Config.js"
import { loggingLayer } from "./observability/Logging.js"

/** "SqlError: Failed to connect (connect ECONNREFUSED 127.0.0.1:5432)": an error and what caused it. */
const describeFailure = (error: unknown): string => {
  if (!(error instanceof Error)) return String(error)
  const cause = error.cause instanceof Error ? ` (${error.cause.message})` : ""
  return `${error.name}: ${error.message}${cause}`
}

/**
 * Startup and fatal errors as one JSON log line. An expected failure (bad configuration,
 * an unreachable database) is one clear sentence; only a bug carries its stack trace.
 */
const reportFailure = (cause: Cause.Cause<unknown>) => {
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure)) {
    const error = failure.value
    return Effect.logError(error instanceof InvalidConfig ? error.message : `the service could not start: ${describeFailure(error)}`)
  }
  return Cause.isInterruptedOnly(cause) ? Effect.void : Effect.logError("the service stopped on an unexpected error", cause)
}

Layer.launch(AppLive).pipe(
  Effect.tapErrorCause(reportFailure),
  Effect.provide(loggingLayer(LogLevel.Info)),
  NodeRuntime.runMain({ disablePrettyLogger: true, disableErrorReporting: true })
)
