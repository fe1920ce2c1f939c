import { type ContextMessage, estimateTokens } from "../claude/Claude.js"

export { estimateTokens }

const tokensOf = (messages: ReadonlyArray<ContextMessage>) =>
  messages.reduce((sum, message) => sum + estimateTokens(message.content), 0)

export interface StoredTurn {
  readonly role: "user" | "assistant"
  readonly content: string
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
 * opening and ending with a user message, and the oldest dropped first while the estimate
 * exceeds the token budget. The newest user message is always kept.
 */
export const buildContext = (
  history: ReadonlyArray<StoredTurn>,
  options: ContextOptions
): ReadonlyArray<ContextMessage> => {
  const recent = history.slice(-options.messageLimit).filter((turn) => turn.content.trim().length > 0)
  const budget = options.tokenBudget - estimateTokens(options.systemPrompt)
  let messages = trimToUserEnds(mergeSameRole(recent))
  while (messages.length > 1 && tokensOf(messages) > budget) {
    messages = trimToUserEnds(messages.slice(1))
  }
  return messages
}
