import * as Schema from "effect/Schema"

/** The PRD's codes for Claude failures, as the WebSocket `error` event carries them. */
export const ClaudeErrorCode = Schema.Literal("AI_OVERLOADED", "AI_RATE_LIMITED", "AI_TIMEOUT", "AI_AUTH_ERROR", "AI_ERROR")
export type ClaudeErrorCode = typeof ClaudeErrorCode.Type

/**
 * Claude failed. `message` is written for the user and never carries what the SDK said
 * (which can echo request details); `detail` is for the logs only. `transient` failures
 * (overloaded, a cut connection, a stall, a server error) may succeed when tried again;
 * the others (a refused key, an invalid request) will not.
 */
export class ClaudeError extends Schema.TaggedError<ClaudeError>()("ClaudeError", {
  code: ClaudeErrorCode,
  message: Schema.String,
  detail: Schema.String,
  transient: Schema.Boolean
}) {}

export const claudeErrorMessages: Record<ClaudeErrorCode, string> = {
  AI_OVERLOADED: "Claude is overloaded right now. Please try again in a moment.",
  AI_RATE_LIMITED: "Too many requests to Claude. Please wait a moment and try again.",
  AI_TIMEOUT: "Claude stopped responding. Please try again.",
  AI_AUTH_ERROR: "The service's Claude API key was refused. Please contact the operator.",
  AI_ERROR: "Failed to generate response"
}

/** By code, unless the caller knows better: only a refused key and a generic error are not worth retrying. */
const transientByDefault = (code: ClaudeErrorCode) => code !== "AI_AUTH_ERROR" && code !== "AI_ERROR"

export const claudeError = (code: ClaudeErrorCode, detail: string, transient = transientByDefault(code)) =>
  new ClaudeError({ code, message: claudeErrorMessages[code], detail, transient })
