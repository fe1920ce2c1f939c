import Anthropic from "@anthropic-ai/sdk"
import type { MessageStreamEvent } from "@anthropic-ai/sdk/resources/messages/messages"
import { Duration, Effect, Layer, Redacted } from "effect"
import { AppConfig } from "../Config.js"
import {
  Claude,
  claudeError,
  ClaudeError,
  type CompletionEvent,
  type CompletionRequest,
  type CompletionSummary,
  streamFromStreamTo
} from "./Claude.js"

const TITLE_MAX_TOKENS = 32

/** Maps whatever the SDK threw to one of the PRD's AI error codes; the raw text goes to `detail` only. */
export const toClaudeError = (error: unknown): ClaudeError => {
  if (error instanceof ClaudeError) return error
  if (error instanceof Anthropic.APIConnectionTimeoutError) return claudeError("AI_TIMEOUT", "request timed out")
  if (error instanceof Anthropic.APIError) {
    const detail = `status=${String(error.status)} type=${String(error.type)} request_id=${String(error.requestID)}`
    if (error.status === 529 || error.type === "overloaded_error") return claudeError("AI_OVERLOADED", detail)
    if (error.status === 429 || error.type === "rate_limit_error") return claudeError("AI_RATE_LIMITED", detail)
    if (error.status === 401 || error.status === 403) return claudeError("AI_AUTH_ERROR", detail)
    if (error.status === 408) return claudeError("AI_TIMEOUT", detail)
    return claudeError("AI_ERROR", detail)
  }
  const name = error instanceof Error ? error.name : typeof error
  return claudeError("AI_ERROR", `${name}: connection failed or the stream was cut`)
}

/** Turns SDK stream events into text deltas and one closing summary. */
const completionEvents = () => {
  let inputTokens = 0
  let outputTokens = 0
  let stopReason = "end_turn"
  return (event: MessageStreamEvent): ReadonlyArray<CompletionEvent> => {
    switch (event.type) {
      case "message_start":
        inputTokens = event.message.usage.input_tokens
        return []
      case "content_block_delta":
        return event.delta.type === "text_delta" && event.delta.text.length > 0
          ? [{ _tag: "TextDelta", text: event.delta.text }]
          : []
      case "message_delta":
        stopReason = event.delta.stop_reason ?? stopReason
        outputTokens = event.usage.output_tokens
        return []
      case "message_stop":
        return [{ _tag: "Finished", summary: { stopReason, inputTokens, outputTokens } }]
      default:
        return []
    }
  }
}

/**
 * Claude over `@anthropic-ai/sdk`. The SDK retries 408/409/429/5xx/529 before a stream
 * starts (bounded by CLAUDE_MAX_RETRIES, honouring retry-after) but has no idle timeout
 * once it has started, hence the watchdog between events.
 */
export const ClaudeLive = (apiKey: Redacted.Redacted<string>) =>
  Layer.effect(
    Claude,
    Effect.gen(function* () {
      const config = yield* AppConfig
      const idleTimeout = config.claudeIdleTimeout
      const idleMillis = Duration.toMillis(idleTimeout)
      const client = new Anthropic({
        apiKey: Redacted.value(apiKey),
        baseURL: config.claudeBaseUrl,
        maxRetries: config.claudeMaxRetries,
        timeout: Duration.toMillis(idleTimeout)
      })

      const messageParams = (request: CompletionRequest) => ({
        model: config.claudeModel,
        max_tokens: config.claudeMaxTokens,
        system: request.system,
        messages: request.messages.map((m) => ({ role: m.role, content: m.content }))
      })

      const streamTo = (request: CompletionRequest, onText: (text: string) => void) =>
        Effect.async<CompletionSummary, ClaudeError>((resume) => {
          const messageStream = client.messages.stream(messageParams(request))
          const toEvents = completionEvents()
          let summary: CompletionSummary | undefined
          let settled = false
          const settle = (outcome: Effect.Effect<CompletionSummary, ClaudeError>) => {
            if (settled) return
            settled = true
            clearTimeout(watchdog)
            resume(outcome)
          }
          // One timer per answer, re-armed by every event: no event for CLAUDE_IDLE_TIMEOUT_SECONDS fails it.
          const watchdog = setTimeout(() => {
            messageStream.abort()
            settle(Effect.fail(claudeError("AI_TIMEOUT", `no event for ${Duration.format(idleTimeout)}`)))
          }, idleMillis)
          messageStream.on("streamEvent", (event) => {
            watchdog.refresh()
            for (const completion of toEvents(event)) {
              if (completion._tag === "TextDelta") onText(completion.text)
              else summary = completion.summary
            }
          })
          // done() settles on the end of the stream, and rejects on a mid-stream `event: error` or a cut connection.
          messageStream.done().then(
            () =>
              settle(
                summary === undefined
                  ? Effect.fail(claudeError("AI_ERROR", "stream ended before message_stop"))
                  : Effect.succeed(summary)
              ),
            (error: unknown) => settle(Effect.fail(toClaudeError(error)))
          )
          // Interrupted (a cancel, a shutdown): close the upstream HTTP request at once.
          return Effect.sync(() => {
            settled = true
            clearTimeout(watchdog)
            messageStream.abort()
          })
        }).pipe(Effect.withSpan("Claude.stream", { attributes: { model: config.claudeModel } }))

      const title = (request: CompletionRequest) =>
        Effect.tryPromise({
          try: (signal) =>
            client.messages.create(
              {
                model: config.claudeTitleModel,
                max_tokens: TITLE_MAX_TOKENS,
                system: request.system,
                messages: request.messages.map((m) => ({ role: m.role, content: m.content }))
              },
              { signal, maxRetries: 0 }
            ),
          catch: toClaudeError
        }).pipe(
          Effect.map((message) =>
            message.content.flatMap((block) => (block.type === "text" ? [block.text] : [])).join("")
          ),
          Effect.withSpan("Claude.title", { attributes: { model: config.claudeTitleModel } })
        )

      // One implementation of the SDK stream (watchdog, errors, abort); the Stream view wraps it.
      return { kind: "claude", stream: streamFromStreamTo(streamTo), streamTo, title } as const
    })
  )
