import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import * as Schedule from "effect/Schedule"
import { AppConfig } from "../Config.js"
import type { DatabaseUnavailable } from "../domain/Errors.js"
import { pollUntil } from "../Lifecycle.js"
import { type AnswerOutcome, Messages } from "../messages/Messages.js"
import type { Generation } from "./Generation.js"
import { Rooms } from "./Rooms.js"

/** At shutdown, how long stores still retrying (the database away) get before they are given up, logged. */
const FINAL_WRITE_GRACE = Duration.seconds(5)

/** Storing a finished answer is retried while the database is away (with backoff, capped). */
const storeRetry = Schedule.exponential("200 millis").pipe(
  Schedule.union(Schedule.spaced("5 seconds")),
  Schedule.whileInput((error: DatabaseUnavailable) => error._tag === "DatabaseUnavailable")
)

/**
 * Where answers are kept while and after they stream: every CHECKPOINT_INTERVAL_MS the
 * text of each streaming answer that grew is written (all in one statement), and a
 * finished answer is stored at once or, while the database is away, retried in the
 * background. At startup, answers a shutdown stored `interrupted` a moment ago are found
 * (`resumableAtStartup`); answers left `streaming` are `AnswerRunner`'s (taken over).
 */
export class AnswerStore extends Effect.Service<AnswerStore>()("AnswerStore", {
  scoped: Effect.gen(function* () {
    const config = yield* AppConfig
    const messages = yield* Messages
    const rooms = yield* Rooms

    // Continuations a restart may add: a crash loop must not continue one answer forever.
    const resumeBound = config.claudeMaxContinuations + config.claudeStreamRetries + 1
    const resumable = yield* messages.recoverAtStartup(config.resumeInterruptedWithin, resumeBound)

    // Made before the finalizer that waits for it: at shutdown, retries get their last chance.
    const pendingStores = yield* FiberSet.make()
    yield* Effect.addFinalizer(() => pollUntil(Effect.map(FiberSet.size(pendingStores), (n) => n === 0), FINAL_WRITE_GRACE))

    const checkpointed = new WeakMap<Generation, number>()
    const checkpoint = Effect.suspend(() => {
      const due = rooms.generations().filter((generation) => generation.text.length !== (checkpointed.get(generation) ?? 0))
      if (due.length === 0) return Effect.void
      for (const generation of due) checkpointed.set(generation, generation.text.length)
      return messages.checkpoint(due.map((generation) => ({ id: generation.messageId, content: generation.text }))).pipe(
        Effect.catchAll(() =>
          Effect.sync(() => due.forEach((generation) => checkpointed.delete(generation))).pipe(
            Effect.zipRight(Effect.logWarning("checkpoint skipped: database unavailable"))
          )
        )
      )
    })
    yield* checkpoint.pipe(
      Effect.repeat(Schedule.spaced(config.checkpointInterval)),
      Effect.delay(config.checkpointInterval),
      Effect.forkScoped
    )

    const retryInBackground = (outcome: AnswerOutcome) =>
      messages.finish(outcome).pipe(
        Effect.tapError(() =>
          Effect.logError("could not store an answer; retrying until the database is back").pipe(
            Effect.annotateLogs({ messageId: outcome.id, status: outcome.status })
          )
        ),
        Effect.retry(storeRetry),
        Effect.tap(() => Effect.logInfo("answer stored after retrying").pipe(Effect.annotateLogs("messageId", outcome.id))),
        Effect.catchAll(() => Effect.void),
        Effect.onInterrupt(() =>
          Effect.logError("service stopped before the database came back: answer not stored").pipe(
            Effect.annotateLogs({ messageId: outcome.id, status: outcome.status })
          )
        )
      )

    /**
     * Stores an answer's end state. One attempt first, so that normally the answer is stored
     * before clients hear it is done; then retries in the background. Never fails; false only
     * when the answer no longer exists (its project was deleted).
     */
    const store = (outcome: AnswerOutcome) =>
      messages.finish(outcome).pipe(
        // Called from an answer's exit handler, which is uninterruptible; forked fibers inherit
        // that, and shutdown must be able to interrupt the retries.
        Effect.catchAll(() => FiberSet.run(pendingStores, Effect.interruptible(retryInBackground(outcome))).pipe(Effect.as(true)))
      )

    return {
      store,
      /** Answers a crash or a shutdown cut a moment ago, for the chat to continue now. */
      resumableAtStartup: resumable,
      /** How many continuations an answer may have taken and still be continued after a crash. */
      resumeBound
    } as const
  })
}) {}
