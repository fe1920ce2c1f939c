import type { ContextMessage } from "./Claude.js"

/**
 * Current Claude models refuse an assistant prefill (the conversation must end with a user
 * turn), so an answer is continued with `[…, user: question, assistant: partial answer,
 * user: CONTINUE_INSTRUCTION]` and the new text is appended to the partial one.
 */
export const CONTINUE_INSTRUCTION =
  "Your previous answer was cut off. Continue it exactly where it stopped, even in the middle of a word, " +
  "a line or a code block: do not repeat anything already written, do not add a preface or a summary, " +
  "and do not open a new code block if you stopped inside one."

/** The messages of a request that continues `partial`: never ends with the assistant's turn. */
export const continuationMessages = (context: ReadonlyArray<ContextMessage>, partial: string): ReadonlyArray<ContextMessage> =>
  partial.trim().length === 0
    ? context
    : [...context, { role: "assistant", content: partial }, { role: "user", content: CONTINUE_INSTRUCTION }]

/** The conversation and the partial answer a continuation request goes on from; None for a first request. */
export const continuedFrom = (
  messages: ReadonlyArray<ContextMessage>
): { readonly conversation: ReadonlyArray<ContextMessage>; readonly partial: string } | undefined => {
  const partial = messages.at(-2)
  return messages.at(-1)?.content === CONTINUE_INSTRUCTION && partial?.role === "assistant"
    ? { conversation: messages.slice(0, -2), partial: partial.content }
    : undefined
}
