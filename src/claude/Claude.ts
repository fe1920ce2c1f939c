import { Context, Effect, Schema, Stream } from "effect"

/** The PRD's system prompt, verbatim. */
export const SYSTEM_PROMPT = `You are Go Chat, an AI assistant that helps users build applications by writing code.

When the user describes what they want to build:
1. Understand their requirements
2. Ask clarifying questions if needed (but try to infer reasonable defaults)
3. Generate complete, working code
4. Explain what the code does in simple terms

Always format code in markdown code blocks with the language specified:
\`\`\`python
# your code here
\`\`\`

Keep explanations brief and non-technical. The user may not be a developer.
Focus on creating working, practical solutions.`

export interface ContextMessage {
  readonly role: "user" | "assistant"
  readonly content: string
}

export interface CompletionRequest {
  readonly system: string
  readonly messages: ReadonlyArray<ContextMessage>
}

/** What Claude said in the end: why it stopped and what it cost. */
export interface CompletionSummary {
  readonly stopReason: string
  readonly inputTokens: number
  readonly outputTokens: number
}

/** A stream of text deltas, then exactly one summary. */
export type CompletionEvent =
  | { readonly _tag: "TextDelta"; readonly text: string }
  | { readonly _tag: "Finished"; readonly summary: CompletionSummary }

export const ClaudeErrorCode = Schema.Literal("AI_OVERLOADED", "AI_RATE_LIMITED", "AI_TIMEOUT", "AI_AUTH_ERROR", "AI_ERROR")
export type ClaudeErrorCode = typeof ClaudeErrorCode.Type

/**
 * Claude failed. `message` is written for the user and never carries what the SDK said
 * (which can echo request details); `detail` is for the logs only.
 */
export class ClaudeError extends Schema.TaggedError<ClaudeError>()("ClaudeError", {
  code: ClaudeErrorCode,
  message: Schema.String,
  detail: Schema.String
}) {}

export const claudeErrorMessages: Record<ClaudeErrorCode, string> = {
  AI_OVERLOADED: "Claude is overloaded right now. Please try again in a moment.",
  AI_RATE_LIMITED: "Too many requests to Claude. Please wait a moment and try again.",
  AI_TIMEOUT: "Claude stopped responding. Please try again.",
  AI_AUTH_ERROR: "The service's Claude API key was refused. Please contact the operator.",
  AI_ERROR: "Failed to generate response"
}

export const claudeError = (code: ClaudeErrorCode, detail: string) =>
  new ClaudeError({ code, message: claudeErrorMessages[code], detail })

export interface ClaudeShape {
  /** `claude` for the real API, `demo` for the offline demo model. */
  readonly kind: "claude" | "demo"
  /** Streams an answer; interrupting the stream aborts the upstream request at once. */
  readonly stream: (request: CompletionRequest) => Stream.Stream<CompletionEvent, ClaudeError>
  /**
   * The same answer pushed to `onText` delta by delta, ending with its summary. The chat
   * path uses this one: a Stream element per delta cost four times the CPU per chunk
   * (BENCHMARKS.md). Interrupting it aborts the upstream request at once.
   */
  readonly streamTo: (
    request: CompletionRequest,
    onText: (text: string) => void
  ) => Effect.Effect<CompletionSummary, ClaudeError>
  /** A short, non-streamed completion with the title model. */
  readonly title: (request: CompletionRequest) => Effect.Effect<string, ClaudeError>
}

/** The model behind chat: the live Anthropic API or the offline demo (the seam tests swap). */
export class Claude extends Context.Tag("Claude")<Claude, ClaudeShape>() {}

/** `streamTo` over a `stream`, for models whose deltas are few (the demo model). */
export const streamToFromStream =
  (stream: ClaudeShape["stream"]): ClaudeShape["streamTo"] => (request, onText) =>
    stream(request).pipe(
      Stream.runFold(undefined as CompletionSummary | undefined, (summary, event) => {
        if (event._tag === "Finished") return event.summary
        onText(event.text)
        return summary
      }),
      Effect.flatMap((summary) =>
        summary === undefined ? Effect.fail(claudeError("AI_ERROR", "stream ended without a summary")) : Effect.succeed(summary)
      )
    )

/**
 * `stream` over a `streamTo`: the deltas as a Stream, then the summary. Ending the Stream
 * early (interruption, `take`) interrupts `streamTo`, which aborts the upstream request.
 */
export const streamFromStreamTo =
  (streamTo: ClaudeShape["streamTo"]): ClaudeShape["stream"] => (request) =>
    Stream.asyncScoped<CompletionEvent, ClaudeError>((emit) =>
      streamTo(request, (text) => void emit.single({ _tag: "TextDelta", text })).pipe(
        Effect.matchCause({
          onSuccess: (summary) => {
            void emit.single({ _tag: "Finished", summary })
            void emit.end()
          },
          onFailure: (cause) => void emit.halt(cause)
        }),
        Effect.forkScoped
      )
    )
