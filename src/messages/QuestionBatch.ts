import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type { ProjectId } from "../domain/Ids.js"

/** A first send's question, to be stored with its answer row. */
export interface Question {
  readonly projectId: ProjectId
  readonly content: string
  readonly clientMessageId: string | null
  /** CONTEXT_MESSAGE_LIMIT: the turns read for its answer, the question included. */
  readonly contextLimit: number
}

/** Rows per statement: a burst is a few statements, none of them long. */
const MAX_BATCH = 250

interface Waiting<Row> {
  readonly question: Question
  readonly done: Deferred.Deferred<Option.Option<Row>>
}

/**
 * First sends wait here and go to PostgreSQL together: one statement for all that came while
 * the last one ran. When a thousand answers start at once, a statement each queued them on
 * the pool, which hands a connection on once per turn of a busy event loop: the last waited
 * past the pool's limit. A question gets none (and is stored on its own, which says exactly
 * why not) when the batch did not store it: a retried send, or any failure of the batch (a
 * deleted project, a project busy on another instance).
 */
export const makeQuestionBatch = <Row>(
  insertAll: (questions: ReadonlyArray<Question>) => Effect.Effect<ReadonlyMap<ProjectId, Row>, unknown>,
  scope: Scope.Scope
) => {
  const waiting = new Map<ProjectId, Waiting<Row>>()
  let flushing = false

  const flushOnce = Effect.gen(function* () {
    const batch: Array<Waiting<Row>> = []
    for (const [projectId, entry] of waiting) {
      if (batch.length === MAX_BATCH) break
      batch.push(entry)
      waiting.delete(projectId)
    }
    const stored = yield* Effect.either(insertAll(batch.map((entry) => entry.question)))
    for (const { done, question } of batch) {
      const row = Either.isRight(stored) ? Option.fromNullable(stored.right.get(question.projectId)) : Option.none()
      Deferred.unsafeDone(done, Exit.succeed(row))
    }
  }).pipe(Effect.uninterruptible)

  const flush = Effect.whileLoop({ while: () => waiting.size > 0, body: () => flushOnce, step: () => {} }).pipe(
    // Ended (or interrupted: the service is stopping): whoever still waits stores its question alone.
    Effect.ensuring(Effect.sync(() => {
      flushing = false
      for (const { done } of waiting.values()) Deferred.unsafeDone(done, Exit.succeed(Option.none()))
      waiting.clear()
    }))
  )

  /** The question's row (with its answer's), or none: store it alone. */
  return (question: Question): Effect.Effect<Option.Option<Row>> =>
    Effect.suspend(() => {
      // One start per project at a time reaches here; a second is left to the single path.
      if (waiting.has(question.projectId)) return Effect.succeed(Option.none())
      const done = Deferred.unsafeMake<Option.Option<Row>>(FiberId.none)
      waiting.set(question.projectId, { question, done })
      if (flushing) return Deferred.await(done)
      flushing = true
      return Effect.zipRight(Effect.forkIn(flush, scope), Deferred.await(done))
    })
}
