import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { type CompletionRequest, type ContextMessage, estimateTokens } from "../claude/Claude.js"
import { continuationMessages } from "../claude/Continuation.js"
import type { ClaudeError } from "../domain/ClaudeError.js"

export { estimateTokens }

const tokensOf = (messages: ReadonlyArray<ContextMessage>) =>
  messages.reduce((sum, message) => sum + estimateTokens(message.content), 0)

export interface StoredTurn {
  readonly role: "user" | "assistant"
  readonly content: string
  /** Claude's stop reason for an answer (`refusal` leaves the turn out of later contexts). */
  readonly stopReason?: string | null
}

/** Answers Claude refused, with the user message each answered: asking again what was refused only invites the same refusal. */
const withoutRefusedTurns = (turns: ReadonlyArray<StoredTurn>): Array<StoredTurn> => {
  const kept: Array<StoredTurn> = []
  for (const turn of turns) {
    if (turn.role === "assistant" && turn.stopReason === "refusal") {
      if (kept.at(-1)?.role === "user") kept.pop()
    } else {
      kept.push(turn)
    }
  }
  return kept
}

export interface ContextOptions {
  /** How many of the latest stored messages to consider (CONTEXT_MESSAGE_LIMIT). */
  readonly messageLimit: number
  /** Tokens the system prompt and messages may take together (CONTEXT_TOKEN_BUDGET). */
  readonly tokenBudget: number
  readonly systemPrompt: string
}

/** Joins consecutive messages of one role: the Messages API wants user and assistant to alternate. */
const mergeSameRole = (turns: ReadonlyArray<StoredTurn>): Array<ContextMessage> => {
  const merged: Array<ContextMessage> = []
  for (const turn of turns) {
    const previous = merged.at(-1)
    if (previous !== undefined && previous.role === turn.role) {
      merged[merged.length - 1] = { role: turn.role, content: `${previous.content}\n\n${turn.content}` }
    } else {
      merged.push({ role: turn.role, content: turn.content })
    }
  }
  return merged
}

/** The conversation must open with the user and, without prefill, end with the user. */
const trimToUserEnds = (messages: Array<ContextMessage>): Array<ContextMessage> => {
  let start = 0
  let end = messages.length
  while (start < end && messages[start]?.role !== "user") start++
  while (end > start && messages[end - 1]?.role !== "user") end--
  return messages.slice(start, end)
}

/**
 * What Claude is sent for the next answer (FR-008): the last `messageLimit` stored messages
 * (the new user message included), without empty ones, same-role neighbours merged,
 * opening and ending with a user message, refused turns left out, and the oldest dropped first while the estimate
 * exceeds the token budget. The newest user message is always kept.
 */
export const buildContext = (
  history: ReadonlyArray<StoredTurn>,
  options: ContextOptions
): ReadonlyArray<ContextMessage> => {
  const recent = withoutRefusedTurns(history.slice(-options.messageLimit)).filter((turn) => turn.content.trim().length > 0)
  const budget = options.tokenBudget - estimateTokens(options.systemPrompt)
  let messages = trimToUserEnds(mergeSameRole(recent))
  while (messages.length > 1 && tokensOf(messages) > budget) {
    messages = trimToUserEnds(messages.slice(1))
  }
  return messages
}

/** From this share of the budget on, the estimate is not trusted: the context is measured exactly. */
export const EXACT_COUNT_FROM = 0.9

/** Exact counts (and re-trims) one answer request may take before it goes with what it has. */
const MAX_COUNTS = 3

/**
 * The context for the next request of an answer that has `partial` text so far: built on
 * the chars/4 estimate, and, when that estimate comes within 10% of the budget, measured
 * with Claude's `count_tokens` and trimmed until the exact count fits (the estimate's
 * budget scaled by how far it was off). A failed count falls back to the estimate.
 */
export const fitContext = (
  history: ReadonlyArray<StoredTurn>,
  options: ContextOptions & { readonly partial: string },
  countTokens: (request: CompletionRequest) => Effect.Effect<number, ClaudeError>
) =>
  Effect.gen(function* () {
    const build = (tokenBudget: number) =>
      buildContext(history, { ...options, tokenBudget: tokenBudget - estimateTokens(options.partial) })
    const requestOf = (context: ReadonlyArray<ContextMessage>): CompletionRequest => ({
      system: options.systemPrompt,
      messages: continuationMessages(context, options.partial)
    })
    let context = build(options.tokenBudget)
    const estimated = (messages: ReadonlyArray<ContextMessage>) =>
      estimateTokens(options.systemPrompt) + tokensOf(requestOf(messages).messages)
    if (estimated(context) < EXACT_COUNT_FROM * options.tokenBudget) return context
    for (let count = 0; count < MAX_COUNTS; count++) {
      const exact = yield* countTokens(requestOf(context)).pipe(
        Effect.tapError((error) =>
          Effect.logWarning("count_tokens failed: the context is sized by the estimate").pipe(Effect.annotateLogs("code", error.code))
        ),
        Effect.option
      )
      if (Option.isNone(exact) || exact.value <= options.tokenBudget || context.length <= 1) return context
      // The estimate's budget scaled by how far the estimate was off, with a 2% margin.
      context = build(Math.floor((estimated(context) * options.tokenBudget * 0.98) / exact.value))
    }
    return context
  })
