import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import { ChatBusy } from "../domain/Errors.js"
import { Ownership } from "../cluster/Ownership.js"
import { Relay } from "../cluster/Relay.js"
import { AppConfig } from "../Config.js"
import type { ProjectId } from "../domain/Ids.js"
import { Lifecycle } from "../Lifecycle.js"
import { answerOutcome, Messages, type StoredAnswer } from "../messages/Messages.js"
import { storedUsage } from "../messages/StoredAnswer.js"
import { Answers } from "./Answers.js"
import { AnswerStore } from "./AnswerStore.js"
import * as Events from "./Events.js"
import { Generation } from "./Generation.js"
import { Rooms } from "./Rooms.js"

/** How often an instance looks for answers whose instance is gone. */
const SCAN_EVERY = Duration.seconds(1)

/**
 * Starts answers on this instance and keeps them going when an instance goes away. An
 * answer runs while this instance owns its project (`Ownership`); the project is given up
 * when the answer is stored or handed over. Every second the streaming answers no live instance
 * owns are taken over: continued from the most complete text known (what the bus brought,
 * or the last checkpoint) under the same message id.
 */
export class AnswerRunner extends Effect.Service<AnswerRunner>()("AnswerRunner", {
  scoped: Effect.gen(function* () {
    const config = yield* AppConfig
    const messages = yield* Messages
    const rooms = yield* Rooms
    const answers = yield* Answers
    const store = yield* AnswerStore
    const ownership = yield* Ownership
    const relay = yield* Relay
    const lifecycle = yield* Lifecycle
    const scope = yield* Effect.scope

    /** Runs the generation in the background; the caller has reserved and claimed the project. */
    const launch = (projectId: ProjectId, generation: Generation) =>
      Effect.gen(function* () {
        relay.forget(projectId)
        rooms.begin(projectId, generation)
        const run = answers.run(projectId, generation).pipe(Effect.ensuring(ownership.release(projectId)))
        // Forked fibers inherit uninterruptibility: the answer itself must stay cancellable.
        yield* generation.attach(yield* Effect.forkIn(Effect.interruptible(run), scope))
      })

    /** Goes on with a stored answer under its own id (from `content`, when more is known than was stored). */
    const resume = (projectId: ProjectId, answer: StoredAnswer) =>
      Effect.gen(function* () {
        if (answer.status !== "streaming") yield* messages.reopen(answer.id)
        yield* launch(projectId, Generation.resumed(answer))
      })

    /** The longer of two texts when one extends the other; the stored one otherwise. */
    const mostComplete = (stored: string, relayed: string | undefined) =>
      relayed !== undefined && relayed.length > stored.length && relayed.startsWith(stored) ? relayed : stored

    /** The project's streaming answer, now that this instance holds its lock: its owner is gone. */
    const takeOver = (projectId: ProjectId, atStartup: boolean) =>
      Effect.gen(function* () {
        const row = yield* messages.streamingIn(projectId, Duration.toSeconds(config.resumeInterruptedWithin), store.resumeBound)
        if (Option.isNone(row)) return false
        const answer = row.value
        if (!answer.resumable) {
          const outcome = answerOutcome({ ...answer, status: "interrupted", stopReason: null, errorCode: "INTERRUPTED", usage: storedUsage(answer) })
          yield* store.store(outcome)
          rooms.broadcast(projectId, Events.messageComplete({ ...outcome, messageId: outcome.id, fullContent: outcome.content, status: "interrupted" }))
          tooOld++
          return false
        }
        const content = mostComplete(answer.content, relay.mirroredText(projectId, answer.id))
        yield* Effect.logWarning(atStartup ? "continuing an answer interrupted by a restart" : "taking over an answer of an instance that stopped")
          .pipe(Effect.annotateLogs({ messageId: answer.id, projectId, characters: content.length }))
        yield* resume(projectId, { ...answer, content })
        return true
      })

    const unreserve = (projectId: ProjectId) => Effect.sync(() => rooms.unreserve(projectId))

    /**
     * Runs `use` on a project this instance has reserved and claimed. The reservation ends with
     * `use` (an answer it started holds the project itself; a send answered already must not keep
     * the same send on another connection waiting while the claim is given back); the claim is
     * given up after, unless `use` started an answer.
     */
    const whileClaimed = <E>(projectId: ProjectId, use: Effect.Effect<boolean, E>) =>
      Effect.onExit(Effect.ensuring(use, unreserve(projectId)), (exit) =>
        Exit.isSuccess(exit) && exit.value ? Effect.void : ownership.release(projectId))

    /**
     * Claims the project the caller reserved and runs `use` (see `whileClaimed`); BUSY when
     * another instance owns it. The reservation ends in any case.
     */
    const owning = <E>(projectId: ProjectId, use: Effect.Effect<boolean, E>) =>
      ownership.claim(projectId).pipe(
        Effect.onExit((exit) => (Exit.isSuccess(exit) && exit.value ? Effect.void : unreserve(projectId))),
        Effect.flatMap((claimed): Effect.Effect<boolean, E | ChatBusy> =>
          claimed ? whileClaimed(projectId, use) : Effect.fail(new ChatBusy({ messageId: relay.runsElsewhere(projectId) ?? "" }))
        ),
        Effect.uninterruptible,
        Effect.asVoid
      )

    /** `owning` for the instance's own work (startup, takeovers): a busy or failing project is skipped. */
    const withProject = (projectId: ProjectId, use: Effect.Effect<boolean, unknown>) =>
      rooms.reserve(projectId) ? Effect.ignore(owning(projectId, use)) : Effect.void

    // Answers a deploy stored `interrupted` a moment ago go on now, before any client asks.
    for (const answer of store.resumableAtStartup) {
      yield* withProject(
        answer.projectId,
        Effect.gen(function* () {
          yield* Effect.logWarning("continuing an answer interrupted by a restart").pipe(Effect.annotateLogs({ messageId: answer.id }))
          if (!(yield* messages.reopen(answer.id))) return false
          yield* launch(answer.projectId, Generation.resumed(answer))
          return true
        })
      )
    }

    // Streaming answers nobody owns: their instance died, or stopped and handed them over.
    // One without a mirror here waits a scan, so that an instance that followed it (and
    // knows its latest text) gets it first.
    let seenOnce = new Set<ProjectId>()
    /** Answers of the current scan stored `interrupted` instead (too old, or continued too often). */
    let tooOld = 0
    let firstScan = true
    const scan = Effect.gen(function* () {
      if (yield* lifecycle.isDraining) return
      const atStartup = firstScan
      firstScan = false
      const projects = yield* messages.streamingProjects()
      const waiting = new Set<ProjectId>()
      const candidates = projects.filter((projectId) => {
        if (rooms.running(projectId) !== undefined || ownership.holds(projectId)) return false
        if (atStartup || relay.runsElsewhere(projectId) !== undefined || seenOnce.has(projectId)) return true
        waiting.add(projectId)
        return false
      })
      seenOnce = waiting
      tooOld = 0
      for (const projectId of yield* ownership.claimAll(candidates)) {
        if (!rooms.reserve(projectId)) yield* ownership.release(projectId)
        else yield* whileClaimed(projectId, takeOver(projectId, atStartup)).pipe(Effect.uninterruptible, Effect.ignore)
      }
      if (tooOld > 0) {
        yield* Effect.logWarning(`answers left streaming by ${atStartup ? "a crash" : "a stopped instance"} were marked interrupted`)
          .pipe(Effect.annotateLogs("count", tooOld))
      }
    })
    // The first scan before the service serves: what a crash left streaming goes on before any client asks.
    yield* scan.pipe(Effect.catchAll(() => Effect.void))
    yield* scan.pipe(
      Effect.catchAll(() => Effect.void),
      Effect.repeat(Schedule.spaced(SCAN_EVERY)),
      Effect.delay(SCAN_EVERY),
      Effect.forkScoped
    )

    // Another instance took the answer over while this one's lock connection was down: it stops here, unstored.
    ownership.onLost((projectId) => {
      const generation = rooms.running(projectId)
      if (generation !== undefined) Effect.runFork(generation.stop("handedOver"))
    })

    return { launch, resume, owning } as const
  })
}) {}
