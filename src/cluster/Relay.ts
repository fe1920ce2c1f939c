import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Events from "../chat/Events.js"
import { Rooms, type Subscriber } from "../chat/Rooms.js"
import { ProjectNotFound } from "../domain/Errors.js"
import type { MessageId, ProjectId } from "../domain/Ids.js"
import { Bus } from "./Bus.js"
import { FORGET_FOLLOWER_MS, Followers, UNSURE_OF_FOLLOWERS_MS } from "./Followers.js"
import { Instances } from "./Instances.js"

/** At most one notification (per ~7 KB of events) per this many ms: events in between travel together. */
const BATCH_MS = 25
/** A notification's payload stays well under PostgreSQL's 8,000 bytes. */
const PAYLOAD_BYTES = 7_000

/** The one channel every instance listens to. */
const CHANNEL = "chat_events"

/**
 * A notification: a header line (who sent it), then one line per item, `<projectId> <kind>
 * <body>`: `e` an encoded server event (JSON never holds a raw newline), `s` the sender
 * follows the project now and asks for the snapshot of its running answer, `f` it follows the
 * project (said again for an instance that may not know it), `u` it no longer follows it,
 * `h` a new (or reconnected) instance asks everyone to say what they follow, `c` a request to
 * cancel the project's answer (body: its id or empty), `d` the project was deleted.
 */
const Header = Schema.parseJson(Schema.Struct({ from: Schema.String }))
const decodeHeader = Schema.decodeUnknownOption(Header)
const PROJECT_ID_LENGTH = 36
/** The project field of a line about no project (`h`). */
const NO_PROJECT = "00000000-0000-0000-0000-000000000000" as ProjectId

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

/**
 * Live events between instances, over the bus: what a project's answer (generated on one
 * instance) sends reaches the project's sockets on every instance, in order and once. Every
 * instance listens to one channel; a project's events are sent to it only while another
 * instance follows the project (has sockets on it; each says so with `s`/`f` and `u`), batched
 * (one notification per BATCH_MS, split at PAYLOAD_BYTES), and a receiver skips the projects
 * it has no sockets on before parsing anything. A follower keeps a mirror
 * of the running answer for the catch-ups of its own sockets, asks the owner for a snapshot
 * when its first socket joins, and drops what its mirror already holds (by offset), so that
 * nothing is missing or repeated.
 */
export class Relay extends Effect.Service<Relay>()("Relay", {
  scoped: Effect.gen(function* () {
    const bus = yield* Bus
    const rooms = yield* Rooms
    const instances = yield* Instances
    const self = instances.id
    const header = JSON.stringify({ from: self })
    const mirrors = new Map<ProjectId, Mirror>()
    /** Projects this instance has sockets on (how many), whose events it wants. */
    const following = new Map<ProjectId, number>()
    /** The other instances following each project: only those projects' events go to the bus. */
    const followers = new Followers()
    let pending: Array<string> = []
    let flushAt: ReturnType<typeof setTimeout> | undefined
    let lastSent = Number.NEGATIVE_INFINITY
    const outbox = yield* Queue.unbounded<string>()

    // One fiber publishes, so that notifications leave in the order they were made.
    yield* Queue.take(outbox).pipe(
      Effect.flatMap((payload) => bus.publish(CHANNEL, payload)),
      Effect.catchAll((error) => Effect.logWarning("events could not be sent to the other instances", error)),
      Effect.forever,
      Effect.forkScoped
    )

    /** Sends what is pending, in notifications of at most PAYLOAD_BYTES. */
    const flush = () => {
      if (flushAt !== undefined) clearTimeout(flushAt)
      flushAt = undefined
      lastSent = performance.now()
      let lines = [header]
      let bytes = header.length
      for (const line of pending) {
        const size = Buffer.byteLength(line) + 1
        if (bytes + size > PAYLOAD_BYTES && lines.length > 1) {
          Queue.unsafeOffer(outbox, lines.join("\n"))
          lines = [header]
          bytes = header.length
        }
        lines.push(line)
        bytes += size
      }
      pending = []
      if (lines.length > 1) Queue.unsafeOffer(outbox, lines.join("\n"))
    }

    /** Queues an item for the other instances: sent within BATCH_MS, or at once when `urgent`. */
    const send = (projectId: ProjectId, kind: "e" | "s" | "f" | "u" | "h" | "c" | "d", body: string, urgent = false) => {
      pending.push(`${projectId} ${kind} ${body}`)
      if (urgent) return flush()
      if (flushAt === undefined) flushAt = setTimeout(flush, Math.max(0, BATCH_MS - (performance.now() - lastSent)))
    }

    /**
     * An event broadcast on this instance goes to the others too when one of them follows its
     * project, and during its answer's first second while any other instance is alive: a
     * follower's `s` sent just before the answer started may still be on its way.
     */
    rooms.relayTo((projectId, json) => {
      if (followers.any(projectId)) return send(projectId, "e", json)
      const startedAt = rooms.running(projectId)?.startedAt
      if (startedAt !== undefined && performance.now() - startedAt < UNSURE_OF_FOLLOWERS_MS && instances.hasPeers()) send(projectId, "e", json)
    })

    const forgetGone = Effect.sync(() => followers.forgetGone(instances.peerIds()))
    yield* Effect.forkScoped(Effect.repeat(forgetGone, Schedule.spaced(Duration.millis(FORGET_FOLLOWER_MS / 2))))

    /** The project's running answer here, as one catch-up for the other instances. */
    const sendSnapshot = (projectId: ProjectId) => {
      const generation = rooms.running(projectId)
      if (generation === undefined) return
      // What is pending for it goes first: the snapshot covers it, the follower drops it by offset.
      for (const json of generation.catchUp()) send(projectId, "e", json)
      flush()
    }
    /** Tells the other instances every project this one follows (they may not know: new, or reconnected). */
    const announceFollowing = () => {
      for (const projectId of following.keys()) send(projectId, "f", "")
    }

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

    const receiveLine = (from: string, line: string) => {
      const projectId = line.slice(0, PROJECT_ID_LENGTH) as ProjectId
      const kind = line.charAt(PROJECT_ID_LENGTH + 1)
      const body = line.slice(PROJECT_ID_LENGTH + 3)
      switch (kind) {
        case "e":
          return following.has(projectId) ? receiveEvent(projectId, body) : undefined
        case "s":
          followers.add(projectId, from)
          return sendSnapshot(projectId)
        case "f":
          // A follower this instance did not know of may have missed the answer's start.
          return followers.add(projectId, from) ? sendSnapshot(projectId) : undefined
        case "u":
          return followers.remove(projectId, from)
        case "h":
          return announceFollowing()
        case "d":
          return Effect.runFork(closeDeleted(projectId))
        case "c": {
          const generation = rooms.running(projectId)
          if (generation !== undefined && (body === "" || body === generation.messageId)) Effect.runFork(generation.stop("cancelled"))
          return
        }
      }
    }

    /**
     * A deleted project, on this instance: its answer (if generated here) stops and is never
     * announced as complete; its sockets are told PROJECT_NOT_FOUND and closed (4404).
     */
    const closeDeleted = (projectId: ProjectId) =>
      Effect.suspend(() => {
        mirrors.delete(projectId)
        const generation = rooms.running(projectId)
        rooms.closeRoom(projectId, Events.failure(new ProjectNotFound({ projectId })), Events.PROJECT_GONE, "project deleted")
        return generation === undefined ? Effect.void : generation.stop("cancelled")
      })

    const requestSnapshot = (projectId: ProjectId) => {
      if (instances.hasPeers()) send(projectId, "s", "", true)
    }

    yield* bus.listen(CHANNEL, {
      onMessage: (payload) => {
        const lines = payload.split("\n")
        const from = Option.getOrUndefined(decodeHeader(lines[0]))?.from
        if (from === undefined || from === self) return
        instances.sawPeer()
        followers.heard(from)
        for (let i = 1; i < lines.length; i++) receiveLine(from, lines[i] ?? "")
      },
      // Notifications may have been missed: every mirror is rebuilt from its owner's snapshot,
      // and the others say again what they follow.
      onReconnect: () => {
        mirrors.clear()
        for (const projectId of following.keys()) requestSnapshot(projectId)
        if (instances.hasPeers()) send(NO_PROJECT, "h", "", true)
      }
    }).pipe(Effect.orDie)
    // A new instance learns who follows what before it serves anything.
    if (instances.hasPeers()) send(NO_PROJECT, "h", "", true)

    /**
     * Wants the project's events until the scope closes (counted); the first one asks the
     * owner of a running answer for its snapshot.
     */
    const follow = (projectId: ProjectId) =>
      Effect.acquireRelease(
        Effect.sync(() => {
          const count = following.get(projectId) ?? 0
          following.set(projectId, count + 1)
          if (count === 0) requestSnapshot(projectId)
        }),
        () =>
          Effect.sync(() => {
            const count = (following.get(projectId) ?? 1) - 1
            if (count > 0) return void following.set(projectId, count)
            following.delete(projectId)
            mirrors.delete(projectId)
            if (instances.hasPeers()) send(projectId, "u", "")
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
      /** The project was deleted: closed here at once, and on every other instance. */
      projectDeleted: (projectId: ProjectId) =>
        Effect.zipRight(
          Effect.sync(() => {
            if (instances.hasPeers()) send(projectId, "d", "", true)
          }),
          closeDeleted(projectId)
        ),
      /** Asks the instance generating `messageId` (or the project's answer) to stop it. */
      requestCancel: (projectId: ProjectId, messageId: MessageId | undefined) =>
        Effect.sync(() => {
          if (instances.hasPeers()) send(projectId, "c", messageId ?? "", true)
        })
    } as const
  })
}) {}
