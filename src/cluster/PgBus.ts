import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as Runtime from "effect/Runtime"
import * as Schedule from "effect/Schedule"
import { randomBytes } from "node:crypto"
import pg from "pg"
import { DatabaseUrl } from "../db/Database.js"
import { Bus, type BusChannel, type BusMessageHandlers, BusUnavailable, parseChannel } from "./Bus.js"
import { type BusConnection, keepalive, listenStatement, NOTIFY_ALL, openConnection, settle, submit, unlistenStatement } from "./BusConnection.js"
import { Reassembly, toParts } from "./BusFrames.js"

/*
 * The bus on PostgreSQL LISTEN/NOTIFY, over ONE dedicated `pg` connection per instance used for
 * both listening and publishing, so that one instance's notifications keep their order. Not
 * `PgClient.listen`/`notify` of @effect/sql-pg 0.53 (DESIGN.md decision 14): its NOTIFY is
 * rejected by PostgreSQL, one listener's UNLISTEN silences the others, empty payloads are dropped
 * and a dead connection is never noticed.
 *
 * A dead connection is noticed by the client's `error`/`end` events and by a keepalive query (a
 * half-open TCP connection raises nothing); it is replaced with backoff, every channel is
 * listened on again, and then every listener's `onReconnect` is called.
 */

/** How long a publish waits for a lost connection to come back before failing with BusUnavailable. */
const PUBLISH_WAIT = Duration.seconds(2)
/** The layer waits this long for its first connection; past it, the service starts with the bus down. */
const FIRST_CONNECT_WAIT = Duration.seconds(5)
const RECONNECT_FIRST_DELAY_MS = 100
const RECONNECT_MAX_DELAY_MS = 2000
const LISTEN_ALL_TIMEOUT = Duration.seconds(5)
/** Messages sent in one statement (one transaction: one commit for all their notifications). */
const MAX_BATCH = 256

interface Outgoing {
  readonly channel: BusChannel
  readonly parts: ReadonlyArray<string>
  readonly done: Deferred.Deferred<void, BusUnavailable>
}

/** A listener's own entry: the same handlers listening twice count twice. */
interface Listener {
  readonly handlers: BusMessageHandlers
}

const make = Effect.gen(function* () {
  const url = yield* DatabaseUrl
  const runFork = Runtime.runFork(yield* Effect.runtime<never>())
  const instanceId = randomBytes(6).toString("hex")
  const listeners = new Map<string, Set<Listener>>()
  const reassembly = new Reassembly()
  const outbox = yield* Queue.unbounded<Outgoing>()
  let current: BusConnection | undefined
  let reconnects = 0
  let nextSeq = 0
  let closed = false

  /** Handlers are the listener's code: a throw is logged and goes no further. */
  const call = (what: string, handler: () => void) => {
    try {
      handler()
    } catch (defect) {
      runFork(Effect.logError(`bus: a listener's ${what} threw`, Cause.die(defect)))
    }
  }

  const deliver = (notification: pg.Notification) =>
    call("onMessage", () => {
      const payload = reassembly.accept(notification.channel, notification.payload ?? "")
      if (payload === undefined) return
      for (const listener of [...(listeners.get(notification.channel) ?? [])]) {
        call("onMessage", () => listener.handlers.onMessage(payload))
      }
    })

  /** One connection's life: connect, listen on every channel, serve until it is lost. */
  const session = (onConnected: () => void) =>
    Effect.scoped(
      Effect.gen(function* () {
        const connection = yield* openConnection({
          url,
          applicationName: `go-chat-bus-${instanceId}`,
          onNotification: deliver,
          onLost: (client) => (current?.client === client ? (current = undefined) : undefined)
        })
        yield* Effect.addFinalizer(() => Effect.sync(() => (current === connection ? (current = undefined) : undefined)))
        const listenAll = yield* Effect.sync(() => {
          reassembly.reset()
          current = connection
          const channels = [...listeners.keys()]
          return channels.length === 0 ? undefined : submit(connection, channels.map(listenStatement).join("; "))
        })
        // The keepalive does not run yet: a connection that stops answering here is given up by this bound.
        if (listenAll !== undefined) {
          yield* settle(listenAll).pipe(
            Effect.timeoutFail({ duration: LISTEN_ALL_TIMEOUT, onTimeout: () => new BusUnavailable({ reason: "LISTEN went unanswered" }) })
          )
        }
        onConnected()
        return yield* keepalive(connection)
      })
    )

  const supervise = Effect.gen(function* () {
    let connectedOnce = false
    let failures = 0
    for (;;) {
      let connected = false
      const exit = yield* Effect.exit(session(() => {
        connected = true
        if (connectedOnce) {
          reconnects++
          runFork(Effect.logInfo("bus: reconnected; listeners catch up").pipe(Effect.annotateLogs({ reconnects })))
        }
        connectedOnce = true
        // Also at a first connection that came late: listeners registered meanwhile may have missed messages.
        for (const set of [...listeners.values()]) {
          for (const listener of [...set]) call("onReconnect", () => listener.handlers.onReconnect?.())
        }
      }))
      if (Exit.isFailure(exit) && !Cause.isFailType(exit.cause) && !Cause.isInterruptedOnly(exit.cause)) {
        yield* Effect.logError("bus: unexpected failure", exit.cause)
      }
      const reason = Exit.isFailure(exit) && Cause.isFailType(exit.cause) ? exit.cause.error.reason : "unexpected failure"
      if (connected) failures = 0
      if (connected || failures === 0) {
        yield* Effect.logWarning(connected ? "bus: connection lost; reconnecting" : "bus: cannot connect; retrying").pipe(
          Effect.annotateLogs({ reason })
        )
      }
      failures++
      yield* Effect.sleep(Duration.millis(Math.min(RECONNECT_MAX_DELAY_MS, RECONNECT_FIRST_DELAY_MS * 2 ** (failures - 1))))
    }
  })

  /** The live connection, waiting up to `limit` for one. */
  const awaitConnection = (limit: Duration.Duration) =>
    Effect.suspend(() =>
      current !== undefined
        ? Effect.succeed(current)
        : Effect.suspend(() => (current === undefined ? new BusUnavailable({ reason: "not connected" }) : Effect.succeed(current))).pipe(
          Effect.retry(Schedule.spaced(Duration.millis(20))),
          Effect.timeoutFail({ duration: limit, onTimeout: () => new BusUnavailable({ reason: `not connected within ${Duration.format(limit)}` }) })
        )
    )

  const send = (batch: Chunk.Chunk<Outgoing>) =>
    Effect.gen(function* () {
      const channels: Array<string> = []
      const parts: Array<string> = []
      for (const item of batch) {
        for (const part of item.parts) {
          channels.push(item.channel)
          parts.push(part)
        }
      }
      const connection = yield* awaitConnection(PUBLISH_WAIT)
      yield* settle(submit(connection, NOTIFY_ALL, [channels, parts]))
    })

  const complete = (items: Iterable<Outgoing>, exit: Exit.Exit<void, BusUnavailable>) =>
    Effect.forEach(items, (item) => Deferred.done(item.done, exit), { discard: true })

  const closedError = () => new BusUnavailable({ reason: "the bus is closed" })
  const closing = Exit.fail(closedError())

  /** Sends what was published, in order, many messages a statement. */
  const write = Queue.takeBetween(outbox, 1, MAX_BATCH).pipe(
    Effect.flatMap((batch) =>
      send(batch).pipe(
        Effect.onExit((exit) => complete(batch, Exit.isInterrupted(exit) ? closing : exit)),
        // The bus is down: what waits behind this batch fails now rather than wait its own turn.
        Effect.catchAll((error) => Effect.flatMap(Queue.takeAll(outbox), (waiting) => complete(waiting, Exit.fail(error))))
      )
    ),
    Effect.forever
  )

  yield* Effect.forkScoped(supervise)
  yield* Effect.forkScoped(write)
  // Runs first at shutdown: nothing is accepted any more, and nobody waits for what will not be sent.
  yield* Effect.addFinalizer(() =>
    Effect.suspend(() => {
      closed = true
      return Effect.flatMap(Queue.takeAll(outbox), (waiting) => complete(waiting, closing))
    })
  )
  yield* awaitConnection(FIRST_CONNECT_WAIT).pipe(
    Effect.catchAll(() => Effect.logWarning("bus: not connected yet; the service starts with the bus down"))
  )

  const publish = (channel: string, payload: string) =>
    Either.match(parseChannel(channel), {
      onLeft: (invalid) => Effect.fail(invalid),
      onRight: (valid) =>
        Effect.flatMap(Deferred.make<void, BusUnavailable>(), (done) =>
          Effect.suspend(() => {
            if (closed) return Effect.fail(closedError())
            Queue.unsafeOffer(outbox, { channel: valid, parts: toParts(instanceId, nextSeq++, payload), done })
            return Deferred.await(done)
          })
        )
    })

  /** Registers the listener and submits its LISTEN, in one step (see `submit`); the LISTEN is awaited outside. */
  const subscribe = (channel: BusChannel, listener: Listener) =>
    Effect.sync(() => {
      const set = listeners.get(channel) ?? new Set<Listener>()
      listeners.set(channel, set)
      set.add(listener)
      const connection = current
      // LISTEN even when the channel is already listened on: once it answers, this listener is live.
      return connection === undefined ? undefined : submit(connection, listenStatement(channel))
    })

  const unsubscribe = (channel: BusChannel, listener: Listener) =>
    Effect.sync(() => {
      const set = listeners.get(channel)
      if (set === undefined || !set.delete(listener) || set.size > 0) return
      listeners.delete(channel)
      if (current !== undefined) submit(current, unlistenStatement(channel))
    })

  const listen = (channel: string, handlers: BusMessageHandlers) =>
    Either.match(parseChannel(channel), {
      onLeft: (invalid) => Effect.fail(invalid),
      onRight: (valid) => {
        const listener: Listener = { handlers }
        return Effect.acquireRelease(subscribe(valid, listener), () => unsubscribe(valid, listener)).pipe(
          // Awaited outside the acquire step, which is uninterruptible.
          Effect.flatMap((pending) => (pending === undefined ? Effect.void : Effect.ignore(settle(pending))))
        )
      }
    })

  const status = Effect.sync(() => ({ connected: current !== undefined, listening: listeners.size, reconnects }))

  return Bus.of({ instanceId, publish, listen, status })
})

/** The bus of this instance, on the database the service uses (`DatabaseUrl`): one extra connection. */
export const PgBusLive = Layer.scoped(Bus, make)
