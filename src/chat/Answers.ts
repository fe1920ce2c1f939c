import * as Cause from "effect/Cause"
import type * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Sink from "effect/Sink"
import * as Stream from "effect/Stream"
import { addUsage, Claude, type CompletionEvent, type CompletionSummary, type ContextMessage, SYSTEM_PROMPT } from "../claude/Claude.js"
import { continuationMessages } from "../claude/Continuation.js"
import { AppConfig } from "../Config.js"
import { claudeError, type ClaudeError } from "../domain/ClaudeError.js"
import { type DatabaseUnavailable, InternalError, ProjectNotFound } from "../domain/Errors.js"
import type { ProjectId } from "../domain/Ids.js"
import { answerOutcome, Messages } from "../messages/Messages.js"
import { AnswerStore } from "./AnswerStore.js"
import { fitContext } from "./Context.js"
import * as Events from "./Events.js"
import type { Generation, StopReason } from "./Generation.js"
import { Rooms } from "./Rooms.js"
import { Seam } from "./Seams.js"

/** How an answer ended, computed once from its pipeline's `Exit`. */
export type EndState =
  | { readonly status: "complete"; readonly summary: CompletionSummary }
  | { readonly status: "error"; readonly error: ClaudeError | DatabaseUnavailable | InternalError }
  | { readonly status: StopReason }

export const endStateOf = (
  exit: Exit.Exit<CompletionSummary, ClaudeError | DatabaseUnavailable>,
  stopReason: StopReason | undefined
): EndState => {
  if (Exit.isSuccess(exit)) return { status: "complete", summary: exit.value }
  const failure = Cause.failureOption(exit.cause)
  if (Option.isSome(failure)) return { status: "error", error: failure.value }
  if (Cause.isInterruptedOnly(exit.cause)) return { status: stopReason ?? "interrupted" }
  return { status: "error", error: new InternalError() }
}

/** A bug inside an answer's pipeline is stored and announced as INTERNAL_ERROR; its cause goes to the log. */
const logDefect = <A, E>(exit: Exit.Exit<A, E>) =>
  Exit.isFailure(exit) && Option.isNone(Cause.failureOption(exit.cause)) && !Cause.isInterruptedOnly(exit.cause)
    ? Effect.logError("unexpected error while generating an answer", exit.cause)
    : Effect.void

/**
 * The Sink end of an answer: each delta is appended to the generation and delivered to
 * every connection of the project in one synchronous step (so a rejoin can neither miss
 * nor repeat it), a chunk of deltas at a time; the result is Claude's closing summary.
 */
const deliverTo = (seam: Seam) =>
  Sink.foldLeftChunks(Option.none<CompletionSummary>(), (summary, events: Chunk.Chunk<CompletionEvent>) => {
    let last = summary
    for (const event of events) {
      if (event._tag === "TextDelta") seam.add(event.text)
      else {
        seam.join()
        last = Option.some(event.summary)
      }
    }
    return last
  })

/** Counts one more request for the answer, and says why: on the log and as an event of the `Chat.generation` span. */
const recordContinuation = (generation: Generation, reason: string, detail?: string) =>
  Effect.gen(function* () {
    generation.continuations++
    const span = yield* Effect.currentSpan.pipe(Effect.option)
    if (Option.isSome(span)) {
      span.value.event("continuation", yield* Clock.currentTimeNanos, { reason, continuations: generation.continuations })
    }
    yield* Effect.logInfo("continuing an answer").pipe(
      Effect.annotateLogs({ reason, continuations: generation.continuations, ...(detail === undefined ? {} : { detail }) })
    )
  })

/** What the user reads when Claude refused: the answer's text, or appended to what it wrote before refusing. */
export const REFUSAL_NOTICE =
  "Claude declined to answer this request. Try asking for it in a different way; this exchange is left out of the conversation Claude sees next."

/** Stop reasons after which the answer is continued with another request (bounded by CLAUDE_MAX_CONTINUATIONS). */
const CONTINUED_AFTER: ReadonlySet<string> = new Set(["max_tokens", "pause_turn"])

/** Pause before a continuation that follows a transient failure: 0.5 s, 1 s, 2 s, … at most 8 s. */
const retryDelay = (attempt: number) => Duration.millis(Math.min(8000, 500 * 2 ** (attempt - 1)))

/**
 * Runs answers: the conversation so far as context, Claude's stream run into the
 * project's sockets, then, whatever the end, the answer stored and announced.
 */
export class Answers extends Effect.Service<Answers>()("Answers", {
  effect: Effect.gen(function* () {
    const config = yield* AppConfig
    const claude = yield* Claude
    const messages = yield* Messages
    const rooms = yield* Rooms
    const store = yield* AnswerStore

    /** One request to Claude, its stream run into the project's sockets. */
    const attempt = (projectId: ProjectId, generation: Generation, context: ReadonlyArray<ContextMessage>) =>
      Effect.gen(function* () {
        const seam = new Seam(
          (text) => {
            if (text.length > 0) rooms.broadcast(projectId, generation.append(text))
          },
          () => generation.text,
          generation.text.trim().length > 0
        )
        // Text held at the seam is delivered however the attempt ends: nothing Claude wrote is dropped.
        const summary = yield* claude.stream({ system: SYSTEM_PROMPT, messages: continuationMessages(context, generation.text) }).pipe(
          Stream.run(deliverTo(seam)),
          Effect.ensuring(Effect.sync(() => seam.join()))
        )
        if (Option.isNone(summary)) return yield* Effect.fail(claudeError("AI_ERROR", "stream ended without a summary", true))
        generation.usage = addUsage(generation.usage, summary.value.usage)
        return summary.value
      })

    /**
     * The whole answer: requests to Claude until it has finished — continued after
     * `max_tokens` (CLAUDE_MAX_CONTINUATIONS) and after transient failures
     * (CLAUDE_STREAM_RETRIES), each time from the text so far, under the same message.
     */
    const pipeline = (projectId: ProjectId, generation: Generation) =>
      Effect.gen(function* () {
        // A new question's statement read its context already. Otherwise (a continuation, a
        // takeover) the user message was stored a while ago: a failure here is more likely a busy
        // pool than an outage, and Claude has not been called yet, so trying again is free.
        const history = generation.history ?? (yield* messages.recent(projectId, config.contextMessageLimit).pipe(
          Effect.retry({ times: 2, schedule: Schedule.exponential("200 millis") })
        ))
        let afterStops = 0
        let afterFailures = 0
        // model_context_window_exceeded: the answer goes on once, from a context cut to half the budget.
        let trimmed = false
        for (;;) {
          const context = yield* fitContext(history, {
            messageLimit: config.contextMessageLimit,
            tokenBudget: trimmed ? Math.floor(config.contextTokenBudget / 2) : config.contextTokenBudget,
            systemPrompt: SYSTEM_PROMPT,
            // The partial answer is sent too: it takes its share of the budget.
            partial: generation.text
          }, claude.countTokens)
          const result = yield* Effect.either(attempt(projectId, generation, context))
          if (Either.isRight(result)) {
            const stopReason = result.right.stopReason
            if (stopReason === "refusal") {
              rooms.broadcast(projectId, generation.append(generation.text.trim().length > 0 ? `\n\n${REFUSAL_NOTICE}` : REFUSAL_NOTICE))
              return result.right
            }
            if (stopReason === "model_context_window_exceeded" && !trimmed) {
              trimmed = true
              yield* recordContinuation(generation, stopReason)
              continue
            }
            if (!CONTINUED_AFTER.has(stopReason) || afterStops >= config.claudeMaxContinuations) return result.right
            afterStops++
            yield* recordContinuation(generation, stopReason)
            continue
          }
          const error = result.left
          if (error._tag !== "ClaudeError" || !error.transient || afterFailures >= config.claudeStreamRetries) return yield* Effect.fail(error)
          afterFailures++
          yield* recordContinuation(generation, error.code, error.detail)
          yield* Effect.sleep(retryDelay(afterFailures))
        }
      })

    /** Stores the end state, then tells every connection; runs even when the pipeline was interrupted. */
    const finish = (projectId: ProjectId, generation: Generation, end: EndState) =>
      Effect.gen(function* () {
        if (end.status === "handedOver") {
          // Its text so far is stored for the instance that takes it over; nobody is told it ended.
          yield* messages.checkpoint([{ id: generation.messageId, content: generation.text }]).pipe(Effect.ignore)
          rooms.release(projectId, generation)
          return yield* Effect.logInfo("answer handed over").pipe(Effect.annotateLogs({ chunks: generation.seq, characters: generation.text.length }))
        }
        const summary = end.status === "complete" ? end.summary : undefined
        const usage = generation.usage
        yield* Effect.annotateCurrentSpan({
          "gen_ai.request.model": claude.kind === "demo" ? "demo" : config.claudeModel,
          "gen_ai.usage.input_tokens": usage?.inputTokens ?? 0,
          "gen_ai.usage.output_tokens": usage?.outputTokens ?? 0,
          "gen_ai.usage.cache_read_input_tokens": usage?.cacheReadInputTokens ?? 0,
          "gen_ai.usage.cache_creation_input_tokens": usage?.cacheCreationInputTokens ?? 0,
          "chat.status": end.status,
          "chat.chunks": generation.seq,
          "chat.continuations": generation.continuations,
          ...(generation.firstChunkAt === undefined
            ? {}
            : { "chat.time_to_first_chunk_ms": Math.round(generation.firstChunkAt - generation.startedAt) })
        })
        if (end.status === "error") {
          yield* Effect.logWarning("answer failed").pipe(
            Effect.annotateLogs({ code: Events.webSocketCode(end.error), detail: end.error._tag === "ClaudeError" ? end.error.detail : end.error.message })
          )
        }
        const outcome = answerOutcome({
          id: generation.messageId,
          content: generation.text,
          status: end.status,
          stopReason: summary?.stopReason ?? null,
          errorCode: end.status === "error" ? Events.webSocketCode(end.error) : end.status === "complete" ? null : end.status.toUpperCase(),
          continuations: generation.continuations,
          usage
        })
        const stored = yield* store.store(outcome)
        rooms.end(
          projectId,
          generation,
          // Nobody is told `complete` about an answer that was not stored: its project is gone.
          !stored
            ? Events.failure(new ProjectNotFound({ projectId }), generation.messageId)
            : end.status === "error"
            ? Events.failure(end.error, generation.messageId)
            : Events.messageComplete({
              messageId: outcome.id,
              fullContent: outcome.content,
              codeBlocks: outcome.codeBlocks,
              status: end.status,
              stopReason: outcome.stopReason,
              continuations: outcome.continuations,
              usage
            })
        )
        yield* Effect.logInfo("answer finished").pipe(
          Effect.annotateLogs({
            status: end.status,
            chunks: generation.seq,
            characters: generation.text.length,
            continuations: generation.continuations,
            stopReason: outcome.stopReason,
            ...(usage === null ? {} : usage)
          })
        )
      })

    /** Runs one answer to its end; cancel and shutdown interrupt it (`Generation.stop`). Never fails. */
    const run = Effect.fn("Chat.generation")(
      function* (projectId: ProjectId, generation: Generation) {
        yield* Effect.annotateCurrentSpan({ projectId, messageId: generation.messageId })
        yield* pipeline(projectId, generation).pipe(
          Effect.onExit((exit) =>
            logDefect(exit).pipe(Effect.zipRight(finish(projectId, generation, endStateOf(exit, generation.stopReason))))
          ),
          Effect.ignore
        )
      },
      (effect, projectId, generation) => Effect.annotateLogs(effect, { projectId, messageId: generation.messageId })
    )

    return { run } as const
  })
}) {}
