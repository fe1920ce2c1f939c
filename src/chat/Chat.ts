import { Deferred, Duration, Effect, Exit, FiberSet, Option, Schedule } from "effect"
import { Claude, type ClaudeError, type CompletionSummary, SYSTEM_PROMPT } from "../claude/Claude.js"
import { AppConfig } from "../Config.js"
import type { ChatMessageFrame, ServerErrorCode } from "../domain/ChatProtocol.js"
import {
  ChatBusy,
  type DatabaseUnavailable,
  MessageTooLarge,
  ShuttingDown,
  ValidationError
} from "../domain/Errors.js"
import type { MessageId, ProjectId } from "../domain/Ids.js"
import { Lifecycle, pollUntil } from "../Lifecycle.js"
import { type AnswerOutcome, answerOutcome, Messages } from "../messages/Messages.js"
import { buildContext } from "./Context.js"
import * as Events from "./Events.js"
import { type Generation, Rooms, type Subscriber } from "./Rooms.js"
import { Titles } from "./Titles.js"

/** Why an answer stopped before Claude finished it. */
type StopReason = "cancelled" | "interrupted"

type Outcome =
  | { readonly _tag: "Finished"; readonly summary: CompletionSummary }
  | { readonly _tag: "Failed"; readonly code: ServerErrorCode; readonly message: string; readonly detail: string }
  | { readonly _tag: "Stopped"; readonly reason: StopReason }

const failedBy = (error: ClaudeError | DatabaseUnavailable): Outcome =>
  error._tag === "ClaudeError"
    ? { _tag: "Failed", code: error.code, message: error.message, detail: error.detail }
    : { _tag: "Failed", code: "DB_ERROR", message: "database unavailable", detail: "could not read the conversation" }

/** How long answers stopped at shutdown get to store themselves before sockets close. */
const FINAL_WRITE_GRACE = Duration.seconds(5)

/** How long sockets get to flush their last events and close frame at shutdown. */
const SOCKET_CLOSE_GRACE = Duration.seconds(2)

/** Storing a finished answer is retried while the database is away (with backoff, capped). */
const storeRetry = Schedule.exponential("200 millis").pipe(
  Schedule.union(Schedule.spaced("5 seconds")),
  Schedule.whileInput((error: DatabaseUnavailable) => error._tag === "DatabaseUnavailable")
)

const isBlank = (text: string) => text.trim().length === 0

/**
 * The chat orchestration: stores the user's message, streams Claude's answer to every
 * connection of the project, and stores the answer as it goes. Answers run in this
 * service's scope, not a connection's: a client that disconnects does not stop its
 * answer, and a client that reconnects catches up with it.
 */
export class Chat extends Effect.Service<Chat>()("Chat", {
  scoped: Effect.gen(function* () {
    const config = yield* AppConfig
    const claude = yield* Claude
    const messages = yield* Messages
    const titles = yield* Titles
    const lifecycle = yield* Lifecycle
    const rooms = new Rooms()
    const scope = yield* Effect.scope
    // Stores retrying while the database is away. The set is made before the finalizer that
    // waits for it, so at shutdown they get their last chance before being interrupted.
    const pendingStores = yield* FiberSet.make()
    yield* Effect.addFinalizer(() => pollUntil(Effect.map(FiberSet.size(pendingStores), (n) => n === 0), FINAL_WRITE_GRACE))

    const recovered = yield* messages.recoverInterrupted
    if (recovered > 0) yield* Effect.logWarning("answers left streaming by a crash were marked interrupted").pipe(Effect.annotateLogs("count", recovered))

    /** Sends what a connection joining mid-answer has missed: a start and one catch-up chunk. */
    const catchUp = (subscriber: Subscriber, generation: Generation) => {
      subscriber.send(Events.messageStart(generation.messageId, generation.userMessageId, true))
      if (generation.text.length > 0) {
        subscriber.send(Events.messageChunk(generation.messageId, generation.text, generation.seq, 0))
      }
    }

    /** Registers a connection for the project's events until the scope closes. */
    const connect = (projectId: ProjectId, subscriber: Subscriber) =>
      Effect.acquireRelease(
        Effect.sync(() => {
          const room = rooms.room(projectId)
          room.subscribers.add(subscriber)
          if (room.generation !== undefined) catchUp(subscriber, room.generation)
        }),
        () =>
          Effect.sync(() => {
            rooms.room(projectId).subscribers.delete(subscriber)
            rooms.release(projectId)
          })
      )

    const validate = (frame: ChatMessageFrame) =>
      isBlank(frame.content)
        ? Effect.fail(new ValidationError({ message: "content must not be empty" }))
        : frame.content.length > config.maxMessageChars
        ? Effect.fail(new MessageTooLarge({ limit: config.maxMessageChars, unit: "characters" }))
        : Effect.void

    /** Stores an answer's end state, retrying while the database is away; never fails. */
    const store = (outcome: AnswerOutcome) => {
      return messages.finish(outcome).pipe(
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
    }

    /**
     * Every CHECKPOINT_INTERVAL_MS, the text of each streaming answer that grew since its last
     * checkpoint is written, all in one statement.
     */
    const checkpointed = new WeakMap<Generation, number>()
    yield* Effect.suspend(() => {
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
    }).pipe(Effect.repeat(Schedule.spaced(config.checkpointInterval)), Effect.delay(config.checkpointInterval), Effect.forkScoped)

    const streamAnswer = (projectId: ProjectId, generation: Generation) =>
      Effect.gen(function* () {
        // The user message was stored a moment ago: a failure here is more likely a busy pool
        // than an outage, and Claude has not been called yet, so trying again is free.
        const history = yield* messages.recent(projectId, config.contextMessageLimit).pipe(
          Effect.retry({ times: 2, schedule: Schedule.exponential("200 millis") })
        )
        const context = buildContext(history, {
          messageLimit: config.contextMessageLimit,
          tokenBudget: config.contextTokenBudget,
          systemPrompt: SYSTEM_PROMPT
        })
        return yield* claude.streamTo({ system: SYSTEM_PROMPT, messages: context }, (text) => {
          const offset = generation.text.length
          generation.firstChunkAt ??= performance.now()
          generation.text += text
          generation.seq += 1
          rooms.broadcast(projectId, Events.messageChunk(generation.messageId, text, generation.seq, offset))
        })
      })

    /** Runs one answer to its end, whatever the end is, and always stores it. */
    const runGeneration = (projectId: ProjectId, generation: Generation, stopped: Deferred.Deferred<StopReason>) =>
      Effect.gen(function* () {
        const outcome: Outcome = yield* streamAnswer(projectId, generation).pipe(
          Effect.map((summary): Outcome => ({ _tag: "Finished", summary })),
          Effect.catchAll((error) => Effect.succeed(failedBy(error))),
          // The loser is interrupted: a cancel aborts the upstream request at once.
          Effect.raceFirst(Effect.map(Deferred.await(stopped), (reason): Outcome => ({ _tag: "Stopped", reason })))
        )
        yield* finish(projectId, generation, outcome)
      }).pipe(
        Effect.withSpan("Chat.generation", { attributes: { projectId, messageId: generation.messageId } }),
        Effect.annotateLogs({ projectId, messageId: generation.messageId })
      )

    const finish = (projectId: ProjectId, generation: Generation, outcome: Outcome) =>
      Effect.gen(function* () {
        const [status, stopReason, errorCode] = outcome._tag === "Finished"
          ? ["complete" as const, outcome.summary.stopReason, null]
          : outcome._tag === "Failed"
          ? ["error" as const, null, outcome.code]
          : [outcome.reason, null, outcome.reason.toUpperCase()]
        const summary = outcome._tag === "Finished" ? outcome.summary : undefined
        yield* Effect.annotateCurrentSpan({
          "gen_ai.request.model": claude.kind === "demo" ? "demo" : config.claudeModel,
          "gen_ai.usage.input_tokens": summary?.inputTokens ?? 0,
          "gen_ai.usage.output_tokens": summary?.outputTokens ?? 0,
          "chat.status": status,
          "chat.chunks": generation.seq,
          ...(generation.firstChunkAt === undefined
            ? {}
            : { "chat.time_to_first_chunk_ms": Math.round(generation.firstChunkAt - generation.startedAt) })
        })
        if (outcome._tag === "Failed") {
          yield* Effect.logWarning("answer failed").pipe(
            Effect.annotateLogs({ code: outcome.code, detail: outcome.detail })
          )
        }
        // One attempt first, so that in the normal case the answer is stored before clients hear it is done.
        const answer = answerOutcome({ id: generation.messageId, content: generation.text, status, stopReason, errorCode })
        const storedFirstTime = yield* messages.finish(answer).pipe(Effect.as(true), Effect.orElseSucceed(() => false))
        if (!storedFirstTime) yield* FiberSet.run(pendingStores, store(answer))
        const room = rooms.room(projectId)
        room.generation = undefined
        rooms.broadcast(
          projectId,
          outcome._tag === "Failed"
            ? Events.errorEvent(outcome.code, outcome.message, generation.messageId)
            : Events.messageComplete({
              messageId: generation.messageId,
              fullContent: generation.text,
              codeBlocks: answer.codeBlocks,
              status,
              stopReason
            })
        )
        rooms.release(projectId)
        yield* Effect.logInfo("answer finished").pipe(
          Effect.annotateLogs({ status, chunks: generation.seq, characters: generation.text.length })
        )
      })

    /** A retried send (same clientMessageId) is acknowledged with what exists for it. */
    const acknowledgeAgain = (reply: Subscriber, userMessageId: MessageId) =>
      messages.answerTo(userMessageId).pipe(
        Effect.map(
          Option.match({
            onNone: () => false,
            onSome: (answer) => {
              reply.send(Events.messageStart(answer.id, userMessageId, true))
              reply.send(
                Events.messageComplete({
                  messageId: answer.id,
                  fullContent: answer.content,
                  codeBlocks: answer.codeBlocks,
                  status: answer.status === "streaming" ? "interrupted" : answer.status,
                  stopReason: answer.stopReason
                })
              )
              return true
            }
          })
        )
      )

    /**
     * Handles a `chat_message`: refuses what cannot be answered now (typed errors for the
     * sender only), stores the user message, then starts the answer in the background.
     */
    const send = (projectId: ProjectId, frame: ChatMessageFrame, reply: Subscriber) =>
      Effect.gen(function* () {
        yield* validate(frame)
        if (yield* lifecycle.isDraining) return yield* new ShuttingDown()
        const room = rooms.room(projectId)
        const clientMessageId = frame.clientMessageId ?? null
        const running = room.generation
        if (running !== undefined && clientMessageId !== null && running.clientMessageId === clientMessageId) {
          return catchUp(reply, running)
        }
        if (running !== undefined || room.reserved) {
          // A retry of a message answered earlier is acknowledged even while another answer runs.
          const stored = clientMessageId === null ? Option.none() : yield* messages.findUserByClientId(projectId, clientMessageId)
          if (Option.isSome(stored) && (yield* acknowledgeAgain(reply, stored.value.id))) return
          return yield* new ChatBusy({ messageId: running?.messageId ?? "" })
        }
        room.reserved = true
        yield* Effect.gen(function* () {
          const { message: userMessage, created } = yield* messages.insertUser(projectId, frame.content, clientMessageId)
          if (!created && (yield* acknowledgeAgain(reply, userMessage.id))) return
          const messageId = yield* messages.insertAssistant(projectId)
          const stopped = yield* Deferred.make<StopReason>()
          const generation: Generation = {
            messageId,
            userMessageId: userMessage.id,
            clientMessageId,
            text: "",
            seq: 0,
            startedAt: performance.now(),
            firstChunkAt: undefined,
            stop: (reason) => Deferred.unsafeDone(stopped, Exit.succeed(reason))
          }
          room.generation = generation
          rooms.broadcast(projectId, Events.messageStart(messageId, userMessage.id, false))
          yield* Effect.forkIn(runGeneration(projectId, generation, stopped), scope)
          if (created) {
            const announceTitle = titles.forFirstMessage(projectId, frame.content).pipe(
              Effect.tap(Option.map((title) => rooms.broadcast(projectId, Events.projectUpdated(projectId, title))))
            )
            yield* Effect.forkIn(announceTitle, scope)
          }
        }).pipe(
          Effect.ensuring(
            Effect.sync(() => {
              room.reserved = false
              rooms.release(projectId)
            })
          )
        )
      })

    /** Stops the project's answer (only if it is `messageId`, when given); harmless otherwise. */
    const cancel = (projectId: ProjectId, messageId: MessageId | undefined) =>
      Effect.sync(() => {
        const generation = rooms.room(projectId).generation
        if (generation !== undefined && (messageId === undefined || generation.messageId === messageId)) {
          generation.stop("cancelled")
        }
        rooms.release(projectId)
      })

    /**
     * Shutdown: lets running answers finish within `grace`, stops the rest as
     * `interrupted` (stored, and announced to clients), then closes every socket with
     * 1001 "going away" after the events queued before it.
     */
    const drain = (grace: Duration.DurationInput) =>
      Effect.gen(function* () {
        const idle = yield* awaitIdle(grace)
        if (!idle) {
          const running = rooms.generations()
          yield* Effect.logWarning("grace period over: interrupting running answers").pipe(
            Effect.annotateLogs("count", running.length)
          )
          for (const generation of running) generation.stop("interrupted")
          yield* awaitIdle(FINAL_WRITE_GRACE)
        }
        rooms.closeAll(1001, "going away")
        // Let each connection's writer send what it has queued, then the close frame.
        yield* pollUntil(Effect.sync(() => !rooms.hasSubscribers()), SOCKET_CLOSE_GRACE)
      })

    const awaitIdle = (limit: Duration.DurationInput) => pollUntil(Effect.sync(() => rooms.isIdle()), limit)

    return { connect, send, cancel, drain, isIdle: Effect.sync(() => rooms.isIdle()) } as const
  })
}) {}
