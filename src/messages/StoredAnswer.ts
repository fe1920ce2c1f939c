import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { ValidationError } from "../domain/Errors.js"
import { MessageId, ProjectId } from "../domain/Ids.js"
import { MessageStatus } from "../domain/Message.js"
import type { Usage } from "../domain/Usage.js"

/** A project's latest answer as stored: what `continue` and a restart go on from. */
export const StoredAnswer = Schema.Struct({
  id: MessageId,
  projectId: ProjectId,
  userMessageId: MessageId,
  content: Schema.String,
  status: MessageStatus,
  stopReason: Schema.NullOr(Schema.String),
  continuations: Schema.Int,
  inputTokens: Schema.NullOr(Schema.Int),
  outputTokens: Schema.NullOr(Schema.Int),
  cacheReadInputTokens: Schema.NullOr(Schema.Int),
  cacheCreationInputTokens: Schema.NullOr(Schema.Int)
})
export type StoredAnswer = typeof StoredAnswer.Type

/** An answer that stopped before Claude finished it, so `continue` can go on with it. */
const isContinuable = (answer: StoredAnswer) =>
  answer.status === "interrupted" || answer.status === "error" || answer.status === "cancelled" ||
  (answer.status === "complete" && answer.stopReason === "max_tokens")

/** The project's latest answer when it is `messageId` and can be continued; a validation error otherwise. */
export const continuable = (latest: Option.Option<StoredAnswer>, messageId: MessageId) =>
  Option.isNone(latest) || latest.value.id !== messageId
    ? Effect.fail(new ValidationError({ message: "only the project's latest answer can be continued" }))
    : isContinuable(latest.value)
    ? Effect.succeed(latest.value)
    : Effect.fail(new ValidationError({
      message: "this answer is complete; only an answer that was interrupted, failed, cancelled or stopped at max_tokens can be continued"
    }))

/** The usage stored with an answer, so that a continuation adds to it; null when it has none. */
export const storedUsage = (answer: StoredAnswer): Usage | null =>
  answer.inputTokens === null
    ? null
    : {
      inputTokens: answer.inputTokens,
      outputTokens: answer.outputTokens ?? 0,
      cacheReadInputTokens: answer.cacheReadInputTokens ?? 0,
      cacheCreationInputTokens: answer.cacheCreationInputTokens ?? 0
    }
