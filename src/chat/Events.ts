import type { CodeBlock } from "../domain/CodeBlock.js"
import type { ServerErrorCode, ServerEvent } from "../domain/ChatProtocol.js"
import type { ClaudeError } from "../domain/ClaudeError.js"
import {
  type AtCapacity,
  type ChatBusy,
  DatabaseUnavailable,
  type InternalError,
  type InvalidMessage,
  type MessageTooLarge,
  type ProjectNotFound,
  type ShuttingDown,
  type ValidationError
} from "../domain/Errors.js"
import type { MessageId, ProjectId } from "../domain/Ids.js"
import type { MessageStatus } from "../domain/Message.js"
import type { Usage } from "../domain/Usage.js"

/*
 * Server events, encoded once per event (not once per listening connection). The shapes
 * are `ServerEvent` from the protocol schema; the type checker holds each one to it.
 */

/** Close code for the sockets of a deleted project (the application range, like HTTP 404). */
export const PROJECT_GONE = 4404

const encode = (event: ServerEvent): string => JSON.stringify(event)

let formattedAt = -1
let formatted = ""
/** The time as ISO 8601, formatted once per millisecond: a busy process sends thousands of chunks a second. */
const now = () => {
  const millis = Date.now()
  if (millis !== formattedAt) {
    formattedAt = millis
    formatted = new Date(millis).toISOString()
  }
  return formatted
}

export const messageStart = (messageId: MessageId, userMessageId: MessageId, resumed: boolean) =>
  encode({
    type: "message_start",
    messageId,
    userMessageId,
    ...(resumed ? { resumed: true } : {}),
    timestamp: now()
  })

/**
 * The hottest event, written out by hand (the same JSON as `encode` gives, in the same key
 * order; test/events.test.ts decodes it with the protocol schema): one string build per
 * chunk instead of an object and a generic stringify.
 */
export const messageChunk = (messageId: MessageId, content: string, seq: number, offset: number): string =>
  `{"type":"message_chunk","messageId":${JSON.stringify(messageId)},"content":${JSON.stringify(content)},"seq":${seq},"offset":${offset},"timestamp":"${now()}"}`

export const messageComplete = (options: {
  readonly messageId: MessageId
  readonly fullContent: string
  readonly codeBlocks: ReadonlyArray<CodeBlock>
  readonly status: Exclude<MessageStatus, "streaming">
  readonly stopReason: string | null
  readonly continuations: number
  readonly usage: Usage | null
}) =>
  encode({
    type: "message_complete",
    messageId: options.messageId,
    fullContent: options.fullContent,
    codeBlocks: options.codeBlocks.map((block) => ({ ...block })),
    status: options.status,
    stopReason: options.stopReason,
    continuations: options.continuations,
    usage: options.usage === null ? null : { ...options.usage },
    timestamp: now()
  })

export const errorEvent = (code: ServerErrorCode, error: string, messageId?: MessageId) =>
  encode({ type: "error", error, code, ...(messageId === undefined ? {} : { messageId }), timestamp: now() })

/** Every typed failure a chat client can be told about. */
export type ChatFailure =
  | AtCapacity
  | ValidationError
  | MessageTooLarge
  | InvalidMessage
  | ShuttingDown
  | ChatBusy
  | ProjectNotFound
  | DatabaseUnavailable
  | ClaudeError
  | InternalError

/** The code a failure has on this socket: each error's own, but the database being away is DB_ERROR here. */
export const webSocketCode = (error: ChatFailure): ServerErrorCode =>
  error._tag === "DatabaseUnavailable" ? DatabaseUnavailable.webSocketCode : error.code

/** The `error` event for a typed failure (of the answer `messageId`, when it ended one). */
export const failure = (error: ChatFailure, messageId?: MessageId) => errorEvent(webSocketCode(error), error.message, messageId)

export const pong = () => encode({ type: "pong", timestamp: now() })

export const projectUpdated = (projectId: ProjectId, title: string) =>
  encode({ type: "project_updated", projectId, title, timestamp: now() })
