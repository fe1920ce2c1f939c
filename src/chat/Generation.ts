import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import type { MessageId } from "../domain/Ids.js"
import type { Usage } from "../domain/Usage.js"
import type { Turn } from "../messages/InsertQuestions.js"
import { type StoredAnswer, storedUsage } from "../messages/StoredAnswer.js"
import * as Events from "./Events.js"

/**
 * Why an answer was stopped before Claude finished it: by its user, by a shutdown, or to go
 * on on another instance (a shutdown with a live peer; this instance lost its ownership lock).
 */
export type StopReason = "cancelled" | "interrupted" | "handedOver"

/**
 * One answer being generated. Its text, `seq` and `offset` change only in `append`, which
 * also builds the chunk event: the state a rejoining client catches up from and the
 * chunks everyone else receives cannot disagree.
 */
export class Generation {
  text = ""
  /** Chunks sent so far; the next chunk's `seq` is one more. */
  seq = 0
  /** `performance.now()` when the answer started, and when its first chunk arrived. */
  readonly startedAt = performance.now()
  firstChunkAt: number | undefined = undefined
  /** Set when the answer is stopped early; the pipeline's end state reads it. */
  stopReason: StopReason | undefined = undefined
  /** Extra requests to Claude this answer has taken (stored with it). */
  continuations = 0
  /** Tokens its requests cost so far (summed over continuations); null until Claude reports any. */
  usage: Usage | null = null
  private fiber: Fiber.RuntimeFiber<unknown, unknown> | undefined = undefined
  private readonly firstChunk = Deferred.unsafeMake<void>(FiberId.none)

  constructor(
    readonly messageId: MessageId,
    readonly userMessageId: MessageId,
    readonly clientMessageId: string | null,
    /** The conversation up to the question, when storing the question read it; read at the start otherwise. */
    readonly history?: ReadonlyArray<Turn>
  ) {}

  /**
   * An answer that goes on from stored text (continued on request, or after a restart):
   * the stored text counts as its first chunk, and this run is one more continuation.
   */
  static resumed(answer: StoredAnswer) {
    const generation = new Generation(answer.id, answer.userMessageId, null)
    generation.usage = storedUsage(answer)
    generation.text = answer.content
    generation.seq = answer.content.length > 0 ? 1 : 0
    generation.continuations = answer.continuations + 1
    return generation
  }

  /** Whether it goes on from text clients may already have: they are told `resumed` with the text so far. */
  get isResumed(): boolean {
    return this.seq > 0 && this.firstChunkAt === undefined
  }

  /** Adds Claude's next text and returns the encoded chunk event for it. */
  append(text: string): string {
    const offset = this.text.length
    if (this.firstChunkAt === undefined) {
      this.firstChunkAt = performance.now()
      Deferred.unsafeDone(this.firstChunk, Exit.void)
    }
    this.text += text
    this.seq += 1
    return Events.messageChunk(this.messageId, text, this.seq, offset)
  }

  /** What a connection joining now has missed: a start and (once text exists) one catch-up chunk. */
  catchUp(): ReadonlyArray<string> {
    const start = Events.messageStart(this.messageId, this.userMessageId, true)
    return this.text.length === 0 ? [start] : [start, Events.messageChunk(this.messageId, this.text, this.seq, 0)]
  }

  /**
   * Waits for the first chunk, or for the answer's end if none comes: for work that belongs
   * beside the answer but must not slow its start (the title request).
   */
  get started(): Effect.Effect<void> {
    return Effect.suspend(() =>
      this.fiber === undefined
        ? Deferred.await(this.firstChunk)
        : Effect.raceFirst(Deferred.await(this.firstChunk), Effect.asVoid(Fiber.await(this.fiber)))
    )
  }

  /** The fiber running the answer's pipeline; a stop that came first takes effect now. */
  attach(fiber: Fiber.RuntimeFiber<unknown, unknown>): Effect.Effect<void> {
    return Effect.suspend(() => {
      this.fiber = fiber
      return this.stopReason === undefined ? Effect.void : Fiber.interruptFork(fiber)
    })
  }

  /** Interrupts the pipeline (which aborts the upstream request); the first reason given wins. */
  stop(reason: StopReason): Effect.Effect<void> {
    return Effect.suspend(() => {
      this.stopReason ??= reason
      return this.fiber === undefined ? Effect.void : Fiber.interruptFork(this.fiber)
    })
  }
}
