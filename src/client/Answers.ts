import * as Predicate from "effect/Predicate"
import type { ServerEvent } from "../domain/ChatProtocol.js"

type Event<T extends ServerEvent["type"]> = Extract<ServerEvent, { readonly type: T }>

/** Tokens an answer cost (`usage` of `message_complete`), or null. */
type Usage = Event<"message_complete">["usage"]

/** Where an answer is: streaming, or its final status as stored (or the error that ended it). */
export type AnswerStatus = "streaming" | "complete" | "cancelled" | "error" | "interrupted"

/** One answer as the client has assembled it so far. */
export interface Answer {
  readonly messageId: string
  readonly userMessageId: string
  /** The text so far: each character exactly once, in order, whatever was resent. */
  readonly text: string
  readonly status: AnswerStatus
  /** True once this client joined the answer already running (a reconnect, a second tab). */
  readonly resumed: boolean
  /** `stopReason` of `message_complete` (e.g. `end_turn`, `max_tokens`). */
  readonly stopReason: string | null
  /** The error code that ended the answer, if one did. */
  readonly errorCode: string | null
  /** `continuations` of `message_complete` when the server reports it. */
  readonly continuations: number
  /** `usage` of `message_complete` (tokens the answer cost), null when the server reports none. */
  readonly usage: Usage
  readonly codeBlocks: Event<"message_complete">["codeBlocks"]
}

/** What one server event did to an answer: the answer after it, and the text it added. */
export interface AnswerUpdate {
  readonly answer: Answer
  /** Text appended by this event (never text the client already had). */
  readonly delta: string
}

const continuationsOf = (event: Event<"message_complete">): number => {
  const value: unknown = Reflect.get(event, "continuations")
  return typeof value === "number" ? value : 0
}

/** Servers before usage was reported leave the field out. */
const usageOf = (event: Event<"message_complete">): Usage => (Predicate.isObject(event.usage) ? event.usage : null)

/**
 * Assembles answers by `offset`. A chunk carries the characters from `offset` on: what the
 * client already has is skipped, a chunk past the end (text the client never saw) is held
 * back until a catch-up chunk (offset 0) or `message_complete` fills the gap, and
 * `message_complete`'s `fullContent` is authoritative.
 */
export class AnswerAssembler {
  private readonly answers = new Map<string, Answer>()

  get(messageId: string): Answer | undefined {
    return this.answers.get(messageId)
  }

  /** Ids of the answers still streaming. */
  streaming(): Array<string> {
    return [...this.answers.values()].filter((answer) => answer.status === "streaming").map((answer) => answer.messageId)
  }

  /** Applies one event; `undefined` when the event is not about an answer or added nothing. */
  apply(event: ServerEvent): AnswerUpdate | undefined {
    switch (event.type) {
      case "message_start": {
        const known = this.answers.get(event.messageId)
        const answer: Answer = {
          messageId: event.messageId,
          userMessageId: event.userMessageId,
          text: known?.text ?? "",
          status: "streaming",
          resumed: event.resumed === true || (known?.resumed ?? false),
          stopReason: null,
          errorCode: null,
          continuations: known?.continuations ?? 0,
          usage: known?.usage ?? null,
          codeBlocks: []
        }
        return this.store(answer, "")
      }
      case "message_chunk": {
        const known = this.answers.get(event.messageId)
        if (known === undefined) return undefined
        const have = known.text.length
        const end = event.offset + event.content.length
        if (event.offset > have || end <= have) return undefined
        const delta = event.content.slice(have - event.offset)
        return this.store({ ...known, text: known.text + delta }, delta)
      }
      case "message_complete": {
        const known = this.answers.get(event.messageId)
        const text = known?.text ?? ""
        const delta = event.fullContent.startsWith(text) ? event.fullContent.slice(text.length) : event.fullContent
        return this.store({
          messageId: event.messageId,
          userMessageId: known?.userMessageId ?? "",
          text: event.fullContent,
          status: event.status,
          resumed: known?.resumed ?? false,
          stopReason: event.stopReason,
          errorCode: known?.errorCode ?? null,
          continuations: continuationsOf(event),
          usage: usageOf(event),
          codeBlocks: event.codeBlocks
        }, delta)
      }
      case "error": {
        const known = event.messageId === undefined ? undefined : this.answers.get(event.messageId)
        if (known === undefined) return undefined
        return this.store({ ...known, errorCode: event.code, status: known.status === "streaming" ? "error" : known.status }, "")
      }
      default:
        return undefined
    }
  }

  private store(answer: Answer, delta: string): AnswerUpdate {
    this.answers.set(answer.messageId, answer)
    return { answer, delta }
  }
}

/**
 * Whether the server can continue this answer with a `continue` frame: the project's latest
 * answer, stopped before its end (interrupted, error, cancelled) or cut by the token limit.
 */
export const canContinue = (answer: Pick<Answer, "status" | "stopReason">): boolean =>
  answer.status === "interrupted" || answer.status === "error" || answer.status === "cancelled" ||
  (answer.status === "complete" && answer.stopReason === "max_tokens")
