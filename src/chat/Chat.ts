import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { Instances } from "../cluster/Instances.js"
import { Relay } from "../cluster/Relay.js"
import { AppConfig } from "../Config.js"
import type { ChatMessageFrame, ContinueFrame } from "../domain/ChatProtocol.js"
import { AtCapacity, ChatBusy, MessageTooLarge, ShuttingDown, ValidationError } from "../domain/Errors.js"
import type { MessageId, ProjectId } from "../domain/Ids.js"
import { Lifecycle, pollUntil } from "../Lifecycle.js"
import { continuable, Messages } from "../messages/Messages.js"
import { AnswerRunner } from "./AnswerRunner.js"
import * as Events from "./Events.js"
import { Generation } from "./Generation.js"
import { Rooms, type Subscriber } from "./Rooms.js"
import { Titles } from "./Titles.js"

/** At shutdown, answers stopped get this long to store themselves, then sockets to close: grace + 4 s in all. */
const STOP_GRACE = Duration.seconds(2)
const SOCKET_CLOSE_GRACE = Duration.seconds(2)

/**
 * The chat: stores the user's message, runs Claude's answer (`Answers`) for every
 * connection of the project, and lets connections join, cancel and drain. Answers run in
 * this service's scope, not a connection's: a client that disconnects does not stop its
 * answer, and a client that reconnects catches up with it.
 */
export class Chat extends Effect.Service<Chat>()("Chat", {
  scoped: Effect.gen(function* () {
    const config = yield* AppConfig
    const messages = yield* Messages
    const titles = yield* Titles
    const lifecycle = yield* Lifecycle
    const rooms = yield* Rooms
    const runner = yield* AnswerRunner
    const relay = yield* Relay
    const instances = yield* Instances
    const scope = yield* Effect.scope

    /** Registers a connection for the project's events (catching up a running answer) until the scope closes. */
    const connect = (projectId: ProjectId, subscriber: Subscriber) =>
      Effect.acquireRelease(
        Effect.sync(() => {
          rooms.join(projectId, subscriber)
          relay.catchUp(projectId, subscriber)
        }),
        () => Effect.sync(() => rooms.leave(projectId, subscriber))
      ).pipe(Effect.zipRight(relay.follow(projectId)))

    const validate = (frame: ChatMessageFrame) =>
      frame.content.trim().length === 0
        ? Effect.fail(new ValidationError({ message: "content must not be empty" }))
        : frame.content.length > config.maxMessageChars
        ? Effect.fail(new MessageTooLarge({ limit: config.maxMessageChars, unit: "characters" }))
        : Effect.void

    /**
     * A retried send (same clientMessageId) is acknowledged with what exists for it: the
     * running answer's catch-up, nothing yet when its answer is about to start (its start
     * reaches every connection of the project), or the stored answer; false when none is.
     */
    const acknowledgeAgain = (projectId: ProjectId, reply: Subscriber, userMessageId: MessageId) =>
      Effect.map(messages.answerTo(userMessageId), (answer) => {
        if (Option.isNone(answer)) return false
        const { id, content, codeBlocks, status, stopReason, continuations, usage } = answer.value
        if (status === "streaming") {
          const running = rooms.running(projectId)
          if (running?.messageId === id) for (const json of running.catchUp()) reply.send(json)
          else relay.catchUp(projectId, reply)
          return true
        }
        reply.send(Events.messageStart(id, userMessageId, true))
        reply.send(Events.messageComplete({ messageId: id, fullContent: content, codeBlocks, status, stopReason, continuations, usage }))
        return true
      })

    /**
     * Stores the user message and starts its answer; the project is reserved by the caller.
     * Uninterruptible: a socket closing mid-way leaves nothing half done (a stored question
     * without an answer, or an answer row that nothing generates).
     */
    const start = (projectId: ProjectId, frame: ChatMessageFrame, reply: Subscriber) =>
      Effect.gen(function* () {
        const clientMessageId = frame.clientMessageId ?? null
        const { message: userMessage, answerId, context, namesProject } = yield* messages.insertQuestion(
          projectId,
          frame.content,
          clientMessageId,
          config.contextMessageLimit
        )
        if (Option.isNone(answerId)) return yield* acknowledgeAgain(projectId, reply, userMessage.id).pipe(Effect.as(false))
        const generation = new Generation(answerId.value, userMessage.id, clientMessageId, Option.getOrUndefined(context))
        yield* runner.launch(projectId, generation)
        if (namesProject) {
          // After the first chunk: when many answers start at once, the title requests and their
          // statements would otherwise compete with the starts that users are waiting for.
          const announceTitle = generation.started.pipe(
            Effect.zipRight(titles.forFirstMessage(projectId, frame.content)),
            Effect.tap(Option.map((title) => rooms.broadcast(projectId, Events.projectUpdated(projectId, title))))
          )
          yield* Effect.forkIn(Effect.interruptible(announceTitle), scope)
        }
        return true
      })

    /** MAX_ACTIVE_ANSWERS on this instance: past it a send is refused before anything is stored. */
    const belowCapacity = Effect.suspend(() =>
      rooms.activeCount() >= config.maxActiveAnswers ? Effect.fail(new AtCapacity({ limit: config.maxActiveAnswers })) : Effect.void
    )

    /**
     * Handles a `chat_message`: refuses what cannot be answered now (typed errors for the
     * sender only), stores the user message, then starts the answer in the background.
     */
    const send = (projectId: ProjectId, frame: ChatMessageFrame, reply: Subscriber) =>
      Effect.gen(function* () {
        yield* validate(frame)
        if (yield* lifecycle.isDraining) return yield* new ShuttingDown()
        const clientMessageId = frame.clientMessageId ?? null
        const running = rooms.running(projectId)
        if (running !== undefined && clientMessageId !== null && running.clientMessageId === clientMessageId) {
          for (const json of running.catchUp()) reply.send(json)
          return
        }
        // A retry of the send whose answer is about to start: that start reaches this connection too.
        if (clientMessageId !== null && rooms.isReservedFor(projectId, clientMessageId)) return
        yield* belowCapacity
        if (!rooms.reserve(projectId, clientMessageId)) {
          // A retry of a message answered earlier is acknowledged even while another answer runs.
          const stored = clientMessageId === null ? Option.none() : yield* messages.findUserByClientId(projectId, clientMessageId)
          if (Option.isSome(stored) && (yield* acknowledgeAgain(projectId, reply, stored.value.id))) return
          return yield* new ChatBusy({ messageId: rooms.running(projectId)?.messageId ?? "" })
        }
        yield* runner.owning(projectId, start(projectId, frame, reply))
      })

    /**
     * Handles a `continue`: the project's latest answer, if it ended interrupted, failed,
     * cancelled or at max_tokens, streams on under the same id. Repeated while it runs, it
     * is a catch-up, like a retried `chat_message`.
     */
    const continueAnswer = (projectId: ProjectId, frame: ContinueFrame, reply: Subscriber) =>
      Effect.gen(function* () {
        if (yield* lifecycle.isDraining) return yield* new ShuttingDown()
        const running = rooms.running(projectId)
        if (running?.messageId === frame.messageId) {
          for (const json of running.catchUp()) reply.send(json)
          return
        }
        if (relay.runsElsewhere(projectId) === frame.messageId) return relay.catchUp(projectId, reply)
        yield* belowCapacity
        if (!rooms.reserve(projectId)) return yield* new ChatBusy({ messageId: running?.messageId ?? "" })
        yield* runner.owning(
          projectId,
          Effect.gen(function* () {
            const latest = yield* Effect.flatMap(messages.latestAnswer(projectId), (answer) => continuable(answer, frame.messageId))
            yield* Effect.logInfo("continuing an answer").pipe(Effect.annotateLogs({ messageId: frame.messageId, reason: "requested" }))
            yield* runner.resume(projectId, latest)
            return true
          })
        )
      })

    /** Stops the project's answer (only if it is `messageId`, when given); harmless otherwise. */
    const cancel = (projectId: ProjectId, messageId: MessageId | undefined) =>
      Effect.suspend(() => {
        const generation = rooms.running(projectId)
        if (generation === undefined) return relay.requestCancel(projectId, messageId)
        return messageId === undefined || generation.messageId === messageId ? generation.stop("cancelled") : Effect.void
      })

    /**
     * The project was deleted: on every instance its answer stops (the upstream request is
     * aborted) and is never announced as complete, its connections told PROJECT_NOT_FOUND and closed.
     */
    const projectDeleted = (projectId: ProjectId) => relay.projectDeleted(projectId)

    const awaitIdle = (limit: Duration.DurationInput) => pollUntil(Effect.sync(() => rooms.isIdle()), limit)
    /**
     * Shutdown: lets running answers finish within `grace`, stops the rest as `interrupted`
     * (stored, and announced to clients), then closes every socket with 1001 "going away"
     * after the events queued before it.
     */
    const drain = (grace: Duration.DurationInput) =>
      Effect.gen(function* () {
        if (!(yield* awaitIdle(grace))) {
          const running = rooms.generations()
          // Another live instance goes on with them; alone, they are stored to go on at the next start.
          const reason = (yield* instances.livePeerExists) ? "handedOver" : "interrupted"
          const doing = reason === "handedOver" ? "handing running answers over" : "interrupting running answers"
          yield* Effect.logWarning(`grace period over: ${doing}`).pipe(Effect.annotateLogs("count", running.length))
          yield* Effect.forEach(running, (generation) => generation.stop(reason), { discard: true })
          yield* awaitIdle(STOP_GRACE)
        }
        rooms.closeAll(1001, "going away")
        yield* pollUntil(Effect.sync(() => !rooms.hasSubscribers()), SOCKET_CLOSE_GRACE)
      })

    return { connect, send, continueAnswer, cancel, projectDeleted, drain } as const
  })
}) {}
