import * as Schema from "effect/Schema"
import { CodeBlock } from "./CodeBlock.js"
import { MessageId, ProjectId } from "./Ids.js"
import { TRUSTED } from "./Trusted.js"
import { Usage } from "./Usage.js"

export const Role = Schema.Literal("user", "assistant")
export type Role = typeof Role.Type

/**
 * `streaming` while Claude is answering; the others are final. A partial answer keeps
 * its text under `cancelled`, `error` or `interrupted` (the service stopped mid-answer).
 */
export const MessageStatus = Schema.Literal("complete", "streaming", "cancelled", "error", "interrupted")
export type MessageStatus = typeof MessageStatus.Type

export class Message extends Schema.Class<Message>("Message")({
  id: MessageId,
  role: Role,
  content: Schema.String,
  status: MessageStatus,
  /** Present on assistant messages only, as in the PRD. */
  codeBlocks: Schema.optional(Schema.Array(CodeBlock)),
  /** Assistant messages only: Claude's stop reason (`end_turn`, `max_tokens`, `refusal`, …), null when it did not finish. */
  stopReason: Schema.optional(Schema.NullOr(Schema.String)),
  /** Assistant messages only: extra requests to Claude the answer took. */
  continuations: Schema.optional(Schema.NonNegativeInt),
  /** Assistant messages only: tokens the answer cost; null when it has no usage (stored before usage was kept, or none reported). */
  usage: Schema.optional(Schema.NullOr(Usage)),
  createdAt: Schema.Date
}) {}

/** The columns a `MessageRow` is read from, in one place for every query that reads one. */
export const MESSAGE_ROW_COLUMNS =
  "id, project_id, role, content, status, code_blocks, client_message_id, stop_reason, continuations, " +
  "input_tokens, output_tokens, cache_read_input_tokens, cache_creation_input_tokens, created_at"

/** A `messages` row as PostgreSQL returns it (column names already camelCased by the client). */
export class MessageRow extends Schema.Class<MessageRow>("MessageRow")({
  id: MessageId,
  projectId: ProjectId,
  role: Role,
  content: Schema.String,
  status: MessageStatus,
  codeBlocks: Schema.Array(CodeBlock),
  clientMessageId: Schema.NullOr(Schema.String),
  stopReason: Schema.NullOr(Schema.String),
  continuations: Schema.Int,
  inputTokens: Schema.NullOr(Schema.Int),
  outputTokens: Schema.NullOr(Schema.Int),
  cacheReadInputTokens: Schema.NullOr(Schema.Int),
  cacheCreationInputTokens: Schema.NullOr(Schema.Int),
  createdAt: Schema.DateFromSelf
}) {
  /** The usage columns as one value; null when the answer has none. */
  get usage(): Usage | null {
    return this.inputTokens === null
      ? null
      : {
        inputTokens: this.inputTokens,
        outputTokens: this.outputTokens ?? 0,
        cacheReadInputTokens: this.cacheReadInputTokens ?? 0,
        cacheCreationInputTokens: this.cacheCreationInputTokens ?? 0
      }
  }

  toMessage(): Message {
    return new Message({
      id: this.id,
      role: this.role,
      content: this.content,
      status: this.status,
      ...(this.role === "assistant"
        ? { codeBlocks: this.codeBlocks, stopReason: this.stopReason, continuations: this.continuations, usage: this.usage }
        : {}),
      createdAt: this.createdAt
    }, TRUSTED)
  }
}
