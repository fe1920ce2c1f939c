import type { CodeBlock } from "../domain/CodeBlock.js"
import type { ServerErrorCode, ServerEvent } from "../domain/ChatProtocol.js"
import type { MessageId, ProjectId } from "../domain/Ids.js"
import type { MessageStatus } from "../domain/Message.js"

/*
 * Server events, encoded once per event (not once per listening connection). The shapes
 * are `ServerEvent` from the protocol schema; the type checker holds each one to it.
 */

const encode = (event: ServerEvent): string => JSON.stringify(event)
const now = () => new Date().toISOString()

export const messageStart = (messageId: MessageId, userMessageId: MessageId, resumed: boolean) =>
  encode({
    type: "message_start",
    messageId,
    userMessageId,
    ...(resumed ? { resumed: true } : {}),
    timestamp: now()
  })

export const messageChunk = (messageId: MessageId, content: string, seq: number, offset: number) =>
  encode({ type: "message_chunk", messageId, content, seq, offset, timestamp: now() })

export const messageComplete = (options: {
  readonly messageId: MessageId
  readonly fullContent: string
  readonly codeBlocks: ReadonlyArray<CodeBlock>
  readonly status: Exclude<MessageStatus, "streaming">
  readonly stopReason: string | null
}) =>
  encode({
    type: "message_complete",
    messageId: options.messageId,
    fullContent: options.fullContent,
    codeBlocks: options.codeBlocks.map((block) => ({ ...block })),
    status: options.status,
    stopReason: options.stopReason,
    timestamp: now()
  })

export const errorEvent = (code: ServerErrorCode, error: string, messageId?: MessageId) =>
  encode({ type: "error", error, code, ...(messageId === undefined ? {} : { messageId }), timestamp: now() })

export const pong = () => encode({ type: "pong", timestamp: now() })

export const projectUpdated = (projectId: ProjectId, title: string) =>
  encode({ type: "project_updated", projectId, title, timestamp: now() })
