import { Cause, Effect, HashMap, Layer, Logger, LogLevel } from "effect"
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
export const jsonLineLogger = Logger.make(({ logLevel, message, annotations, cause, date }) => {
  const entry: Record<string, unknown> = {
    timestamp: date.toISOString(),
    level: logLevel.label.toLowerCase(),
    message: messageText(message)
  }
  for (const [key, value] of HashMap.toEntries(annotations)) entry[key] = value
  if (!Cause.isEmpty(cause)) entry["error"] = Cause.pretty(cause, { renderErrorCause: true })
  process.stdout.write(`${JSON.stringify(entry)}\n`)
})

/** Replaces Effect's default logger; the level comes from LOG_LEVEL. */
export const loggingLayer = (level: LogLevel.LogLevel) =>
  Layer.merge(Logger.replace(Logger.defaultLogger, jsonLineLogger), Logger.minimumLogLevel(level))

export const loggingFromConfig = Layer.unwrapEffect(Effect.map(AppConfig, (config) => loggingLayer(config.logLevel)))
