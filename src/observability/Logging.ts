import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import * as FiberRefs from "effect/FiberRefs"
import * as HashMap from "effect/HashMap"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Tracer from "effect/Tracer"
import { AppConfig } from "../Config.js"

const messageText = (message: unknown): string => {
  const parts = Array.isArray(message) ? message : [message]
  return parts.map((part) => (typeof part === "string" ? part : JSON.stringify(part))).join(" ")
}

/**
 * One JSON object per line on stdout: timestamp, level, message, then every log annotation
 * (request id, method, status, ...) at the top level so log tools can index them. Redacted
 * values serialise as "<redacted>"; message contents are never annotated at info level.
 */
export const jsonLineLogger = Logger.make(({ logLevel, message, annotations, cause, date, context }) => {
  const entry: Record<string, unknown> = {
    timestamp: date.toISOString(),
    level: logLevel.label.toLowerCase(),
    message: messageText(message)
  }
  for (const [key, value] of HashMap.toEntries(annotations)) entry[key] = value
  // With tracing on, a log line names its trace, so logs and traces join on the request.
  const span = Context.getOption(FiberRefs.getOrDefault(context, FiberRef.currentContext), Tracer.ParentSpan)
  if (Option.isSome(span) && span.value._tag === "Span") {
    entry["traceId"] = span.value.traceId
    entry["spanId"] = span.value.spanId
  }
  if (!Cause.isEmpty(cause)) entry["error"] = Cause.pretty(cause, { renderErrorCause: true })
  process.stdout.write(`${JSON.stringify(entry)}\n`)
})

/** Replaces Effect's default logger; the level comes from LOG_LEVEL. */
export const loggingLayer = (level: LogLevel.LogLevel) =>
  Layer.merge(Logger.replace(Logger.defaultLogger, jsonLineLogger), Logger.minimumLogLevel(level))

export const loggingFromConfig = Layer.unwrapEffect(Effect.map(AppConfig, (config) => loggingLayer(config.logLevel)))
