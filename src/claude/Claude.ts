import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type * as Stream from "effect/Stream"
import type { ClaudeError } from "../domain/ClaudeError.js"
import type { Usage } from "../domain/Usage.js"

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

/** The PRD's estimate: about four characters per token of English text. */
export const estimateTokens = (text: string): number => Math.ceil(text.length / 4)

export interface ContextMessage {
  readonly role: "user" | "assistant"
  readonly content: string
}

export interface CompletionRequest {
  readonly system: string
  readonly messages: ReadonlyArray<ContextMessage>
}

export type { Usage }

/** Usage of two requests of one answer, added up. */
export const addUsage = (a: Usage | null, b: Usage): Usage =>
  a === null ? b : {
    inputTokens: a.inputTokens + b.inputTokens,
    outputTokens: a.outputTokens + b.outputTokens,
    cacheReadInputTokens: a.cacheReadInputTokens + b.cacheReadInputTokens,
    cacheCreationInputTokens: a.cacheCreationInputTokens + b.cacheCreationInputTokens
  }

/** What Claude said in the end: why it stopped and what it cost. */
export interface CompletionSummary {
  readonly stopReason: string
  readonly usage: Usage
}

/** A stream of text deltas, then exactly one summary. */
export type CompletionEvent =
  | { readonly _tag: "TextDelta"; readonly text: string }
  | { readonly _tag: "Finished"; readonly summary: CompletionSummary }

export interface ClaudeShape {
  /** `claude` for the real API, `demo` for the offline demo model. */
  readonly kind: "claude" | "demo"
  /**
   * Streams an answer: text deltas, then one `Finished`. The upstream request is opened
   * when the stream starts and aborted when it ends early: interrupting the stream is
   * what cancels the request.
   */
  readonly stream: (request: CompletionRequest) => Stream.Stream<CompletionEvent, ClaudeError>
  /** The exact input tokens of an answer request (the Messages API's `count_tokens`). */
  readonly countTokens: (request: CompletionRequest) => Effect.Effect<number, ClaudeError>
  /** A short, non-streamed completion with the title model. */
  readonly title: (request: CompletionRequest) => Effect.Effect<string, ClaudeError>
}

/** The model behind chat: the live Anthropic API or the offline demo (the seam tests swap). */
export class Claude extends Context.Tag("Claude")<Claude, ClaudeShape>() {}
