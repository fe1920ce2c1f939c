import Anthropic from "@anthropic-ai/sdk"
import type { MessageStreamEvent } from "@anthropic-ai/sdk/resources/messages/messages"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import type { EmitOpsPush } from "effect/StreamEmit"
import { AppConfig } from "../Config.js"
import { claudeError, ClaudeError } from "../domain/ClaudeError.js"
import type { ClaudeShape, CompletionEvent, CompletionRequest, Usage } from "./Claude.js"

const TITLE_MAX_TOKENS = 32

/**
 * Deltas waiting for the chat pipeline. It takes them as fast as they come (delivering is
 * synchronous), so a backlog this long means the process is stalled: the answer fails
 * rather than losing text or growing without bound.
 */
const STREAM_BUFFER = 4096

/**
 * Maps whatever the SDK threw to one of the PRD's AI error codes; the raw text goes to
 * `detail` only. An HTTP error status came before the stream started, and the SDK has
 * already retried what was worth retrying (CLAUDE_MAX_RETRIES); an error event or a cut
 * connection mid-stream is `transient`: the answer can be continued.
 */
export const toClaudeError = (error: unknown): ClaudeError => {
  if (error instanceof ClaudeError) return error
  if (error instanceof Anthropic.APIConnectionTimeoutError) return claudeError("AI_TIMEOUT", "request timed out", false)
  if (error instanceof Anthropic.APIConnectionError) return claudeError("AI_ERROR", "could not connect", false)
  if (error instanceof Anthropic.APIError) {
    const detail = `status=${String(error.status)} type=${String(error.type)} request_id=${String(error.requestID)}`
    const midStream = error.status === undefined
    if (error.status === 529 || error.type === "overloaded_error") return claudeError("AI_OVERLOADED", detail, midStream)
    if (error.status === 429 || error.type === "rate_limit_error") return claudeError("AI_RATE_LIMITED", detail, midStream)
    if (error.status === 401 || error.status === 403) return claudeError("AI_AUTH_ERROR", detail, false)
    if (error.status === 408) return claudeError("AI_TIMEOUT", detail, false)
    return claudeError("AI_ERROR", detail, midStream && error.type === "api_error")
  }
  const name = error instanceof Error ? error.name : typeof error
  return claudeError("AI_ERROR", `${name}: connection failed or the stream was cut`, true)
}

/**
 * Turns SDK stream events into text deltas and one closing summary. `message_start` carries
 * the input side of the usage; `message_delta` the output tokens and, when not null, the
 * final input counts (its usage is cumulative).
 */
const completionEvents = () => {
  let usage: Usage = { inputTokens: 0, outputTokens: 0, cacheReadInputTokens: 0, cacheCreationInputTokens: 0 }
  let stopReason = "end_turn"
  return (event: MessageStreamEvent): CompletionEvent | undefined => {
    switch (event.type) {
      case "message_start": {
        const start = event.message.usage
        usage = {
          inputTokens: start.input_tokens,
          outputTokens: start.output_tokens,
          cacheReadInputTokens: start.cache_read_input_tokens ?? 0,
          cacheCreationInputTokens: start.cache_creation_input_tokens ?? 0
        }
        return undefined
      }
      case "content_block_delta":
        return event.delta.type === "text_delta" && event.delta.text.length > 0
          ? { _tag: "TextDelta", text: event.delta.text }
          : undefined
      case "message_delta": {
        const delta = event.usage
        stopReason = event.delta.stop_reason ?? stopReason
        usage = {
          inputTokens: delta.input_tokens ?? usage.inputTokens,
          outputTokens: delta.output_tokens,
          cacheReadInputTokens: delta.cache_read_input_tokens ?? usage.cacheReadInputTokens,
          cacheCreationInputTokens: delta.cache_creation_input_tokens ?? usage.cacheCreationInputTokens
        }
        return undefined
      }
      case "message_stop":
        return { _tag: "Finished", summary: { stopReason, usage } }
      default:
        return undefined
    }
  }
}

/**
 * Claude over `@anthropic-ai/sdk`. The SDK retries 408/409/429/5xx/529 before a stream
 * starts (bounded by CLAUDE_MAX_RETRIES, honouring retry-after) but has no idle timeout
 * once it has started, hence the watchdog between events. Loaded by `ClaudeLive` in the
 * background: this module brings the SDK's ~270 modules with it.
 */
export const makeClaudeSdk = (apiKey: Redacted.Redacted<string>): Effect.Effect<ClaudeShape, never, AppConfig> =>
  Effect.gen(function* () {
    const config = yield* AppConfig
    const idleTimeout = config.claudeIdleTimeout
    const client = new Anthropic({
      apiKey: Redacted.value(apiKey),
      baseURL: config.claudeBaseUrl,
      maxRetries: config.claudeMaxRetries,
      timeout: Duration.toMillis(idleTimeout)
    })

    const messagesOf = (request: CompletionRequest) => request.messages.map((m) => ({ role: m.role, content: m.content }))
    // The top-level (automatic) breakpoint: the system prompt and the whole conversation up
    // to its last block are cached, and the breakpoint moves forward with each turn.
    const cacheControl = config.claudeCacheTtl === "off"
      ? {}
      : { cache_control: { type: "ephemeral", ttl: config.claudeCacheTtl } as const }

    /** Opens the request and pushes its events into `emit`; returns how to abort it. */
    const open = (request: CompletionRequest, emit: EmitOpsPush<ClaudeError, CompletionEvent>) => {
      const messageStream = client.messages.stream({
        model: config.claudeModel,
        max_tokens: config.claudeMaxTokens,
        system: request.system,
        messages: messagesOf(request),
        ...cacheControl
      })
      const toEvent = completionEvents()
      let ended = false
      let finished = false
      const end = (error?: ClaudeError) => {
        if (ended) return
        ended = true
        clearTimeout(watchdog)
        if (error === undefined) emit.end()
        else emit.fail(error)
      }
      const watchdog = setTimeout(() => {
        messageStream.abort()
        end(claudeError("AI_TIMEOUT", `no event for ${Duration.format(idleTimeout)}`))
      }, Duration.toMillis(idleTimeout))
      messageStream.on("streamEvent", (event) => {
        if (ended) return
        watchdog.refresh()
        const completion = toEvent(event)
        if (completion === undefined) return
        if (completion._tag === "Finished") finished = true
        if (!emit.single(completion)) {
          messageStream.abort()
          end(claudeError("AI_ERROR", `more than ${STREAM_BUFFER} deltas waiting: the process is stalled`))
        }
      })
      // done() settles at the end of the stream, and rejects on a mid-stream `event: error`
      // (even one right behind the last deltas) or a cut connection.
      messageStream.done().then(
        () => end(finished ? undefined : claudeError("AI_ERROR", "stream ended before message_stop", true)),
        (error: unknown) => end(toClaudeError(error))
      )
      return {
        abort: () => {
          if (ended) return
          ended = true
          clearTimeout(watchdog)
          messageStream.abort()
        }
      }
    }

    /**
     * The SDK's events pushed into a bounded buffer: no Effect work per delta until the
     * pipeline takes them, in chunks. Acquire opens the request, release aborts it unless it
     * already ended; one watchdog timer per answer, re-armed by every event. The span is
     * made in the stream's scope: `Stream.withSpan` would provide it to every element and
     * double the cost per delta.
     */
    const stream = (request: CompletionRequest) =>
      Stream.asyncPush<CompletionEvent, ClaudeError>(
        (emit) =>
          Effect.zipRight(
            Effect.makeSpanScoped("Claude.stream", { attributes: { model: config.claudeModel } }),
            Effect.acquireRelease(Effect.sync(() => open(request, emit)), (opened) => Effect.sync(opened.abort))
          ),
        { bufferSize: STREAM_BUFFER, strategy: "dropping" }
      )

    const title = Effect.fn("Claude.title", { attributes: { model: config.claudeTitleModel } })(
      function* (request: CompletionRequest) {
        const message = yield* Effect.tryPromise({
          try: (signal) =>
            client.messages.create(
              { model: config.claudeTitleModel, max_tokens: TITLE_MAX_TOKENS, system: request.system, messages: messagesOf(request) },
              { signal, maxRetries: 0 }
            ),
          catch: toClaudeError
        })
        return message.content.flatMap((block) => (block.type === "text" ? [block.text] : [])).join("")
      }
    )

    const countTokens = Effect.fn("Claude.countTokens")((request: CompletionRequest) =>
      Effect.tryPromise({
        try: (signal) =>
          client.messages.countTokens(
            { model: config.claudeModel, system: request.system, messages: messagesOf(request) },
            { signal, maxRetries: 0 }
          ),
        catch: toClaudeError
      }).pipe(Effect.map((count) => count.input_tokens)))

    return { kind: "claude", stream, countTokens, title } as const
  })
