import { Effect, Exit, Option, Queue, Schema, Scope } from "effect"
import * as Events from "../chat/Events.js"
import { Rooms, type Subscriber } from "../chat/Rooms.js"
import type { MessageId, ProjectId } from "../domain/Ids.js"
import { Bus } from "./Bus.js"
import { Instances } from "./Instances.js"

/** At most one notification per project per this many ms: chunks in between travel together. */
const BATCH_MS = 25

/** A project's channel: `project_` and the UUID's hex digits (a valid, unquoted identifier). */
export const projectChannel = (projectId: ProjectId) => `project_${projectId.replaceAll("-", "").toLowerCase()}`

/**
 * A notification on a project's channel: a header line (who sent it, what it is), then for
 * `events` one encoded server event a line (JSON never holds a raw newline).
 */
const Header = Schema.parseJson(Schema.Struct({
  from: Schema.String,
  kind: Schema.Literal("events", "snapshot", "cancel"),
  messageId: Schema.optional(Schema.String)
}))
const decodeHeader = Schema.decodeUnknownOption(Header)

/** The fields of a relayed event that following it needs (the rest is passed on as it is). */
const RelayedEvent = Schema.parseJson(Schema.Struct({
  type: Schema.String,
  messageId: Schema.optional(Schema.String),
  userMessageId: Schema.optional(Schema.String),
  content: Schema.optional(Schema.String),
  offset: Schema.optional(Schema.Number),
  seq: Schema.optional(Schema.Number)
}))
const decodeEvent = Schema.decodeUnknownOption(RelayedEvent)

/** What this instance knows of an answer another instance generates: enough for a catch-up. */
interface Mirror {
  readonly messageId: MessageId
  readonly userMessageId: MessageId
  text: string
  seq: number
}

interface Following {
  count: number
  readonly scope: Scope.CloseableScope
}

/**
 * Live events between instances, over the bus: what a project's answer (generated on one
 * instance) sends reaches the project's sockets on every instance, in order and once.
 * An instance listens to a project's channel only while it has sockets there or generates
 * its answer (`follow`); events are sent to the bus only while another instance is alive,
 * batched per project. A follower keeps a mirror of the running answer for the catch-ups
 * of its own sockets, asks the owner for a snapshot when it starts following, and drops
 * what its mirror already holds (by offset), so nothing is missing or repeated.
 */
export class Relay extends Effect.Service<Relay>()("Relay", {
  scoped: Effect.gen(function* () {
    const bus = yield* Bus
    const rooms = yield* Rooms
    const instances = yield* Instances
    const self = instances.id
    const mirrors = new Map<ProjectId, Mirror>()
    const following = new Map<ProjectId, Following>()
    const pending = new Map<ProjectId, Array<string>>()
    const lastSent = new Map<ProjectId, number>()
    const outbox = yield* Queue.unbounded<readonly [ProjectId, string]>()

    // One fiber publishes, so that notifications leave in the order they were made.
    yield* Queue.take(outbox).pipe(
      Effect.flatMap(([projectId, payload]) => bus.publish(projectChannel(projectId), payload)),
      Effect.catchAll((error) => Effect.logWarning("an event could not be sent to the other instances", error)),
      Effect.forever,
      Effect.forkScoped
    )

    const header = (kind: "events" | "snapshot" | "cancel", messageId?: string) =>
      JSON.stringify(messageId === undefined ? { from: self, kind } : { from: self, kind, messageId })

    const flush = (projectId: ProjectId) => {
      const events = pending.get(projectId)
      if (events === undefined) return
      pending.delete(projectId)
      lastSent.set(projectId, performance.now())
      Queue.unsafeOffer(outbox, [projectId, [header("events"), ...events].join("\n")])
    }

    /** Every event broadcast on this instance goes to the others too, batched per project. */
    rooms.relayTo((projectId, json) => {
      if (!instances.hasPeers()) return
      const events = pending.get(projectId)
      if (events !== undefined) return void events.push(json)
      pending.set(projectId, [json])
      const wait = BATCH_MS - (performance.now() - (lastSent.get(projectId) ?? Number.NEGATIVE_INFINITY))
      if (wait <= 0) queueMicrotask(() => flush(projectId))
      else setTimeout(() => flush(projectId), wait)
    })

    const catchUpOf = (mirror: Mirror): ReadonlyArray<string> => {
      const start = Events.messageStart(mirror.messageId, mirror.userMessageId, true)
      return mirror.text.length === 0 ? [start] : [start, Events.messageChunk(mirror.messageId, mirror.text, mirror.seq, 0)]
    }

    /** One event of another instance's answer: passed to this instance's sockets unless they have it. */
    const receiveEvent = (projectId: ProjectId, json: string) => {
      const event = Option.getOrUndefined(decodeEvent(json))
      if (event === undefined) return
      const mirror = mirrors.get(projectId)
      const messageId = event.messageId as MessageId | undefined
      switch (event.type) {
        case "message_start": {
          if (rooms.running(projectId) !== undefined || mirror?.messageId === messageId || messageId === undefined) return
          mirrors.set(projectId, { messageId, userMessageId: (event.userMessageId ?? "") as MessageId, text: "", seq: 0 })
          return rooms.deliver(projectId, json)
        }
        case "message_chunk": {
          const content = event.content ?? ""
          const offset = event.offset ?? 0
          if (mirror === undefined || mirror.messageId !== messageId) return
          // Already here (a snapshot overtook it), or past a gap: a snapshot will bring it.
          if (offset + content.length <= mirror.text.length || offset > mirror.text.length) return
          mirror.text = mirror.text.slice(0, offset) + content
          mirror.seq = event.seq ?? mirror.seq + 1
          return rooms.deliver(projectId, json)
        }
        case "message_complete":
        case "error": {
          if (mirror !== undefined && mirror.messageId === messageId) mirrors.delete(projectId)
          return rooms.deliver(projectId, json)
        }
        default:
          return rooms.deliver(projectId, json)
      }
    }

    const requestSnapshot = (projectId: ProjectId) =>
      instances.hasPeers() ? Queue.offer(outbox, [projectId, header("snapshot")]) : Effect.void

    const receive = (projectId: ProjectId) => (payload: string) => {
      const newline = payload.indexOf("\n")
      const message = Option.getOrUndefined(decodeHeader(newline < 0 ? payload : payload.slice(0, newline)))
      if (message === undefined || message.from === self) return
      instances.sawPeer()
      const generation = rooms.running(projectId)
      switch (message.kind) {
        case "events":
          for (const json of payload.slice(newline + 1).split("\n")) receiveEvent(projectId, json)
          return
        case "snapshot":
          if (generation === undefined) return
          flush(projectId)
          Queue.unsafeOffer(outbox, [projectId, [header("events"), ...generation.catchUp()].join("\n")])
          return
        case "cancel":
          if (generation !== undefined && (message.messageId === undefined || message.messageId === generation.messageId)) {
            Effect.runFork(generation.stop("cancelled"))
          }
      }
    }

    /**
     * Listens to the project's channel until the scope closes (counted: the last one out
     * stops listening); the first one asks the owner of a running answer for its snapshot.
     */
    const follow = (projectId: ProjectId) =>
      Effect.acquireRelease(
        Effect.gen(function* () {
          const current = following.get(projectId)
          if (current !== undefined) return void current.count++
          const scope = yield* Scope.make()
          following.set(projectId, { count: 1, scope })
          yield* bus.listen(projectChannel(projectId), {
            onMessage: receive(projectId),
            onReconnect: () => {
              mirrors.delete(projectId)
              Effect.runFork(requestSnapshot(projectId))
            }
          }).pipe(Scope.extend(scope), Effect.orDie)
          yield* requestSnapshot(projectId)
        }),
        () =>
          Effect.suspend(() => {
            const current = following.get(projectId)
            if (current === undefined || --current.count > 0) return Effect.void
            following.delete(projectId)
            mirrors.delete(projectId)
            return Scope.close(current.scope, Exit.void)
          })
      )

    return {
      follow,
      /** A connection joining: the catch-up of an answer another instance generates, if any. */
      catchUp: (projectId: ProjectId, subscriber: Subscriber): void => {
        const mirror = mirrors.get(projectId)
        if (mirror !== undefined && rooms.running(projectId) === undefined) for (const json of catchUpOf(mirror)) subscriber.send(json)
      },
      /** The text of `messageId` as relayed to this instance, if it follows it. */
      mirroredText: (projectId: ProjectId, messageId: MessageId): string | undefined => {
        const mirror = mirrors.get(projectId)
        return mirror?.messageId === messageId ? mirror.text : undefined
      },
      /** Whether another instance's answer is known to run in the project. */
      runsElsewhere: (projectId: ProjectId): MessageId | undefined => mirrors.get(projectId)?.messageId,
      /** This instance generates the project's answer now: it forgets its mirror. */
      forget: (projectId: ProjectId): void => void mirrors.delete(projectId),
      /** Asks the instance generating `messageId` (or the project's answer) to stop it. */
      requestCancel: (projectId: ProjectId, messageId: MessageId | undefined) =>
        instances.hasPeers() ? Queue.offer(outbox, [projectId, header("cancel", messageId)]) : Effect.void
    } as const
  })
}) {}
