import * as Schema from "effect/Schema"
import { ClaudeErrorCode } from "./ClaudeError.js"
import { CodeBlock } from "./CodeBlock.js"
import { MessageId, ProjectId } from "./Ids.js"
import { Usage } from "./Usage.js"

/*
 * The WebSocket protocol of /ws/chat: the PRD's messages, plus additive fields and types
 * (a client that knows only the PRD keeps working). The README documents every one.
 */

// ---- client → server -------------------------------------------------------------------

/** PostgreSQL text cannot hold U+0000: refused up front as a validation error, never a failed insert. */
export const TextWithoutNul = Schema.String.pipe(
  Schema.filter((text) => !text.includes("\u0000"), { message: () => "must not contain NUL (U+0000) characters" })
)

export const ChatMessageFrame = Schema.Struct({
  type: Schema.Literal("chat_message"),
  content: TextWithoutNul,
  timestamp: Schema.optional(Schema.String),
  /** The client's own id for this send: a retry with the same id is acknowledged, not repeated. */
  clientMessageId: Schema.optional(TextWithoutNul.pipe(Schema.minLength(1), Schema.maxLength(255)))
})
export type ChatMessageFrame = typeof ChatMessageFrame.Type

export const PingFrame = Schema.Struct({ type: Schema.Literal("ping") })

/** Stops the answer streaming in the project (optionally only if it is `messageId`). */
export const CancelFrame = Schema.Struct({ type: Schema.Literal("cancel"), messageId: Schema.optional(MessageId) })

/**
 * Continues the project's latest answer, `messageId`, when it ended `interrupted`, `error`,
 * `cancelled`, or `complete` at `max_tokens`: it streams on under the same id.
 */
export const ContinueFrame = Schema.Struct({ type: Schema.Literal("continue"), messageId: MessageId })
export type ContinueFrame = typeof ContinueFrame.Type

export const ClientFrame = Schema.Union(ChatMessageFrame, PingFrame, CancelFrame, ContinueFrame)
export type ClientFrame = typeof ClientFrame.Type

export const ClientFrameType = Schema.Literal("chat_message", "ping", "cancel", "continue")

// ---- server → client -------------------------------------------------------------------

export const ServerErrorCode = Schema.Literal(
  "INVALID_MESSAGE",
  "VALIDATION_ERROR",
  "MESSAGE_TOO_LARGE",
  "BUSY",
  "PROJECT_NOT_FOUND",
  "DB_ERROR",
  "SHUTTING_DOWN",
  "INTERNAL_ERROR",
  "AT_CAPACITY",
  "RATE_LIMITED",
  ...ClaudeErrorCode.literals
)
export type ServerErrorCode = typeof ServerErrorCode.Type

export const MessageStartEvent = Schema.Struct({
  type: Schema.Literal("message_start"),
  messageId: MessageId,
  userMessageId: MessageId,
  /** Present (true) when a connection joins an answer already streaming. */
  resumed: Schema.optional(Schema.Boolean),
  timestamp: Schema.String
})

export const MessageChunkEvent = Schema.Struct({
  type: Schema.Literal("message_chunk"),
  messageId: MessageId,
  content: Schema.String,
  /** 1-based position of this chunk within its message. */
  seq: Schema.Int,
  /** Characters (UTF-16 units) of the message before this chunk. */
  offset: Schema.Int,
  timestamp: Schema.String
})

export const MessageCompleteEvent = Schema.Struct({
  type: Schema.Literal("message_complete"),
  messageId: MessageId,
  fullContent: Schema.String,
  codeBlocks: Schema.Array(CodeBlock),
  status: Schema.Literal("complete", "cancelled", "error", "interrupted"),
  stopReason: Schema.NullOr(Schema.String),
  /** Extra requests to Claude this answer took (after max_tokens, transient failures, restarts). */
  continuations: Schema.Int,
  /** Tokens the answer cost, summed over its requests; null when Claude reported none (stopped before any request finished). */
  usage: Schema.NullOr(Usage),
  timestamp: Schema.String
})

export const ErrorEvent = Schema.Struct({
  type: Schema.Literal("error"),
  error: Schema.String,
  code: ServerErrorCode,
  /** The answer the error ended, when it ended one. */
  messageId: Schema.optional(MessageId),
  timestamp: Schema.String
})

export const PongEvent = Schema.Struct({ type: Schema.Literal("pong"), timestamp: Schema.String })

export const ProjectUpdatedEvent = Schema.Struct({
  type: Schema.Literal("project_updated"),
  projectId: ProjectId,
  title: Schema.String,
  timestamp: Schema.String
})

export const ServerEvent = Schema.Union(
  MessageStartEvent,
  MessageChunkEvent,
  MessageCompleteEvent,
  ErrorEvent,
  PongEvent,
  ProjectUpdatedEvent
)
export type ServerEvent = typeof ServerEvent.Encoded
