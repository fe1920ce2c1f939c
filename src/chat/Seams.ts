import type { ContextMessage } from "../claude/Claude.js"

/**
 * Where a continued answer joins the text before it. Current Claude models refuse an
 * assistant prefill (the conversation must end with a user turn), so a continuation is
 * `[…, user: question, assistant: partial answer, user: CONTINUE_INSTRUCTION]` and the new
 * text is appended to the partial one.
 */
export const CONTINUE_INSTRUCTION =
  "Your previous answer was cut off. Continue it exactly where it stopped, even in the middle of a word, " +
  "a line or a code block: do not repeat anything already written, do not add a preface or a summary, " +
  "and do not open a new code block if you stopped inside one."

/** A continuation that repeats the end of the partial answer repeats at least this much before it is trimmed. */
export const MIN_OVERLAP = 20

/** How much of a continuation is collected before deciding how much of it repeats the partial answer. */
export const SEAM_WINDOW = 400

/** The messages of a continuation request: never ends with the assistant's turn. */
export const continuationMessages = (context: ReadonlyArray<ContextMessage>, partial: string): ReadonlyArray<ContextMessage> =>
  partial.trim().length === 0
    ? context
    : [...context, { role: "assistant", content: partial }, { role: "user", content: CONTINUE_INSTRUCTION }]

/**
 * How many leading characters of `next` repeat the end of `previous`: the longest such
 * overlap of at least MIN_OVERLAP characters, or 0 (a short coincidence is not a repeat).
 */
export const overlapLength = (previous: string, next: string): number => {
  for (let length = Math.min(previous.length, next.length); length >= MIN_OVERLAP; length--) {
    if (previous.endsWith(next.slice(0, length))) return length
  }
  return 0
}
