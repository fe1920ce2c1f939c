/**
 * The bus between instances (src/cluster/PgBus.ts) on a real PostgreSQL: each `startBus` is one
 * instance's bus (its own layer, its own connection) on the test file's database.
 */
import { describe, expect, it } from "@effect/vitest"
import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Context, Duration, Effect, Either, Layer, Queue, Redacted } from "effect"
import { Bus, type BusShape } from "../src/cluster/Bus.js"
import { PART_DATA_BYTES, Reassembly, splitUtf8, toParts } from "../src/cluster/BusFrames.js"
import { PgBusLive } from "../src/cluster/PgBus.js"
import { DatabaseUrl } from "../src/db/Database.js"
import { startApp } from "./support/BoundedApp.js"
import { get } from "./support/Http.js"
import { TcpProxyScoped, targetOf } from "./support/TcpProxy.js"
import { freshDatabase } from "./support/TestDatabase.js"
import { decodeExact, WireHealth } from "./support/Wire.js"

/** Liveness bound only: a loaded machine is slow, not red. */
const LIVENESS = Duration.seconds(30)

const within = <A, E, R>(what: string, effect: Effect.Effect<A, E, R>) =>
  effect.pipe(Effect.timeoutFail({ duration: LIVENESS, onTimeout: () => new Error(`${what}: not within ${Duration.format(LIVENESS)}`) }), Effect.orDie)

/** One instance's bus on the database at `url`, for the length of the test's scope. */
const startBus = (url: string) =>
  Layer.build(PgBusLive.pipe(Layer.provide(Layer.succeed(DatabaseUrl, Redacted.make(url))))).pipe(
    Effect.map((context) => Context.get(context, Bus))
  )

/** A client of the same database, as another service would be. */
const sqlOn = (url: string) =>
  Layer.build(PgClient.layer({ url: Redacted.make(url), maxConnections: 1 })).pipe(
    Effect.map((context) => Context.get(context, SqlClient.SqlClient))
  )

/** A listener that queues what it gets, and counts the reconnects it is told about. */
const listenTo = (bus: BusShape, channel: string) =>
  Effect.gen(function* () {
    const received = yield* Queue.unbounded<string>()
    const reconnected = yield* Queue.unbounded<true>()
    yield* Effect.orDie(bus.listen(channel, {
      onMessage: (payload) => Queue.unsafeOffer(received, payload),
      onReconnect: () => Queue.unsafeOffer(reconnected, true)
    }))
    return {
      /** The next `n` payloads, in the order they arrived. */
      take: (n: number) => within(`${n} payloads on ${channel}`, Effect.map(Queue.takeN(received, n), (chunk) => [...chunk])),
      /** Everything that arrived so far, without waiting. */
      drain: Effect.map(Queue.takeAll(received), (chunk) => [...chunk]),
      reconnect: within(`onReconnect on ${channel}`, Queue.take(reconnected))
    }
  })

/** A marker sent after the payloads of interest: when it arrives, everything sent before it has. */
const fence = (bus: BusShape, listener: { readonly take: (n: number) => Effect.Effect<Array<string>> }, channel: string) =>
  Effect.gen(function* () {
    const marker = `fence-${Math.random()}`
    yield* Effect.orDie(bus.publish(channel, marker))
    const seen: Array<string> = []
    for (;;) {
      const [payload = ""] = yield* listener.take(1)
      if (payload === marker) return seen
      // Earlier fences on the channel are not payloads of interest either.
      if (!payload.startsWith("fence-")) seen.push(payload)
    }
  })

describe("the bus (PostgreSQL LISTEN/NOTIFY)", () => {
  it.scopedLive("delivers many messages in publish order, batched or one by one", () =>
    Effect.gen(function* () {
      const url = yield* freshDatabase
      const a = yield* startBus(url)
      const b = yield* startBus(url)
      const onB = yield* listenTo(b, "orders")
      for (let i = 0; i < 200; i++) yield* Effect.orDie(a.publish("orders", `one-${i}`))
      expect(yield* onB.take(200)).toEqual(Array.from({ length: 200 }, (_, i) => `one-${i}`))
      // Started together: the publishes queue up and go out many to a statement, still in order.
      const many = Array.from({ length: 2000 }, (_, i) => `many-${i}`)
      yield* Effect.forEach(many, (payload) => Effect.orDie(a.publish("orders", payload)), { concurrency: "unbounded", discard: true })
      expect(yield* onB.take(many.length)).toEqual(many)
    }))

  it.scopedLive("two instances see each other's messages, and their own", () =>
    Effect.gen(function* () {
      const url = yield* freshDatabase
      const a = yield* startBus(url)
      const b = yield* startBus(url)
      expect(a.instanceId).not.toBe(b.instanceId)
      const onA = yield* listenTo(a, "room_1")
      const onB = yield* listenTo(b, "room_1")
      const elsewhere = yield* listenTo(b, "room_2")
      yield* Effect.orDie(a.publish("room_1", "from a"))
      yield* Effect.orDie(b.publish("room_1", "from b"))
      expect((yield* onA.take(2)).sort()).toEqual(["from a", "from b"])
      expect((yield* onB.take(2)).sort()).toEqual(["from a", "from b"])
      // Each instance's own messages keep their order even when both publish at once.
      const fromA = Array.from({ length: 300 }, (_, i) => `a-${i}`)
      const fromB = Array.from({ length: 300 }, (_, i) => `b-${i}`)
      yield* Effect.all([
        Effect.forEach(fromA, (payload) => Effect.orDie(a.publish("room_1", payload)), { concurrency: "unbounded", discard: true }),
        Effect.forEach(fromB, (payload) => Effect.orDie(b.publish("room_1", payload)), { concurrency: "unbounded", discard: true })
      ], { concurrency: 2 })
      for (const listener of [onA, onB]) {
        const got = yield* listener.take(600)
        expect(got.filter((payload) => payload.startsWith("a-"))).toEqual(fromA)
        expect(got.filter((payload) => payload.startsWith("b-"))).toEqual(fromB)
      }
      // Another channel heard nothing of it.
      yield* Effect.orDie(a.publish("room_2", "only here"))
      expect(yield* elsewhere.take(1)).toEqual(["only here"])
      expect((yield* b.status).listening).toBe(2)
    }))

  it.scopedLive("two listeners of one channel on one instance: when one leaves, the other still receives", () =>
    Effect.gen(function* () {
      const url = yield* freshDatabase
      const a = yield* startBus(url)
      const b = yield* startBus(url)
      const staying = yield* listenTo(b, "shared")
      const leaving = yield* Effect.scoped(
        Effect.gen(function* () {
          const listener = yield* listenTo(b, "shared")
          yield* Effect.orDie(a.publish("shared", "both hear this"))
          expect(yield* listener.take(1)).toEqual(["both hear this"])
          return listener
        })
      )
      expect(yield* staying.take(1)).toEqual(["both hear this"])
      yield* Effect.orDie(a.publish("shared", "after one left"))
      yield* Effect.orDie(b.publish("shared", "and from its own instance"))
      expect(yield* staying.take(2)).toEqual(["after one left", "and from its own instance"])
      expect(yield* leaving.drain).toEqual([])
      expect(yield* b.status).toMatchObject({ connected: true, listening: 1 })
      // A new listener after the last one left is heard again (LISTEN/UNLISTEN stay in order).
      const again = yield* listenTo(b, "fresh")
      yield* Effect.scoped(listenTo(b, "fresh"))
      yield* Effect.orDie(a.publish("fresh", "still listened"))
      expect(yield* again.take(1)).toEqual(["still listened"])
    }))

  it.scopedLive("a large payload with multi-byte characters arrives intact, between small ones", () =>
    Effect.gen(function* () {
      const url = yield* freshDatabase
      const a = yield* startBus(url)
      const b = yield* startBus(url)
      const onB = yield* listenTo(b, "large")
      // 1-, 2-, 3- and 4-byte characters, so the part boundaries fall inside characters of every width.
      const alphabet = ["a", "é", "€", "𝄞", "中", "\n", "\"", "'"]
      const large = Array.from({ length: 30_000 }, (_, i) => alphabet[(i * 7 + (i >> 3)) % alphabet.length]).join("")
      expect(Buffer.byteLength(large, "utf8")).toBeGreaterThan(50_000)
      const parts = toParts(a.instanceId, 0, large)
      expect(parts.length).toBeGreaterThan(6)
      for (const part of parts) expect(Buffer.byteLength(part, "utf8")).toBeLessThan(8000)
      yield* Effect.all([
        Effect.orDie(a.publish("large", "before")),
        Effect.orDie(a.publish("large", large)),
        Effect.orDie(b.publish("large", "from b meanwhile")),
        Effect.orDie(a.publish("large", large.slice(1))),
        Effect.orDie(a.publish("large", "after"))
      ], { concurrency: "unbounded" })
      const got = yield* onB.take(5)
      expect(got.filter((payload) => payload !== "from b meanwhile")).toEqual(["before", large, large.slice(1), "after"])
      expect(got).toContain("from b meanwhile")
      // Exactly at the part size, and one byte over.
      const exact = "x".repeat(PART_DATA_BYTES)
      yield* Effect.orDie(a.publish("large", exact))
      yield* Effect.orDie(a.publish("large", `${exact}€`))
      expect(yield* onB.take(2)).toEqual([exact, `${exact}€`])
    }))

  it.scopedLive("empty payloads, quotes and odd characters arrive as sent", () =>
    Effect.gen(function* () {
      const url = yield* freshDatabase
      const a = yield* startBus(url)
      const onA = yield* listenTo(a, "odd")
      const payloads = [
        "",
        "'; DROP TABLE projects; --",
        "\"quoted\" and 'single' and \\backslash\\ and $1 and $$dollar$$",
        "{\"type\":\"chunk\",\"text\":\"a\\nb\"}",
        "1:ffffff:0:1:2:t:looks like a header",
        "NUL \u0000 inside",
        "\u0000",
        "emoji 🙂 and tab\t and CR\r",
        ""
      ]
      for (const payload of payloads) yield* Effect.orDie(a.publish("odd", payload))
      expect(yield* onA.take(payloads.length)).toEqual(payloads)
    }))

  it.scopedLive("invalid channel names are rejected with a typed error and never reach PostgreSQL", () =>
    Effect.gen(function* () {
      const url = yield* freshDatabase
      const a = yield* startBus(url)
      const invalid = ["", "Upper", "with-dash", "a\"; NOTIFY x; --", "1starts_with_digit", "é", "a".repeat(64), "space here"]
      for (const channel of invalid) {
        const published = yield* Effect.either(a.publish(channel, "x"))
        expect(Either.isLeft(published) && published.left).toMatchObject({ _tag: "InvalidChannel", code: "INVALID_CHANNEL", channel })
        const listened = yield* Effect.either(Effect.scoped(a.listen(channel, { onMessage: () => undefined })))
        expect(Either.isLeft(listened) && listened.left).toMatchObject({ _tag: "InvalidChannel", code: "INVALID_CHANNEL" })
      }
      expect((yield* a.status).listening).toBe(0)
      // The longest valid name works.
      const longest = `_${"z".repeat(62)}`
      const onLongest = yield* listenTo(a, longest)
      yield* Effect.orDie(a.publish(longest, "63 bytes"))
      expect(yield* onLongest.take(1)).toEqual(["63 bytes"])
    }))

  it.scopedLive("a listen connection killed by the server: reconnects, calls onReconnect, delivers later messages", () =>
    Effect.gen(function* () {
      const url = yield* freshDatabase
      const a = yield* startBus(url)
      const b = yield* startBus(url)
      const sql = yield* sqlOn(url)
      const onA = yield* listenTo(a, "survives")
      const onB = yield* listenTo(b, "survives")
      const secondOnB = yield* listenTo(b, "other")
      yield* Effect.orDie(a.publish("survives", "before"))
      expect(yield* onB.take(1)).toEqual(["before"])
      expect(yield* onA.take(1)).toEqual(["before"])

      const killed = yield* Effect.orDie(
        sql<{ readonly killed: boolean }>`SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity WHERE application_name = ${`go-chat-bus-${b.instanceId}`}`
      )
      expect(killed).toEqual([{ killed: true }])
      yield* onB.reconnect
      yield* secondOnB.reconnect
      expect(yield* b.status).toEqual({ connected: true, listening: 2, reconnects: 1 })
      // Every channel is listened on again on the new connection.
      yield* Effect.orDie(a.publish("survives", "after"))
      yield* Effect.orDie(a.publish("other", "other after"))
      expect(yield* fence(a, onB, "survives")).toEqual(["after"])
      expect(yield* secondOnB.take(1)).toEqual(["other after"])
      // And it publishes again; the instance that was not touched saw no reconnect.
      yield* Effect.orDie(b.publish("survives", "from b after"))
      expect(yield* fence(a, onA, "survives")).toEqual(["after", "from b after"])
      expect(yield* a.status).toMatchObject({ connected: true, reconnects: 0 })
    }))

  it.scopedLive("a connection that stops answering is noticed by the keepalive: publish fails BUS_UNAVAILABLE, then it reconnects", () =>
    Effect.gen(function* () {
      const url = yield* freshDatabase
      const proxy = yield* TcpProxyScoped(targetOf(url))
      const a = yield* startBus(url)
      const b = yield* startBus(proxy.urlFor(url))
      const onB = yield* listenTo(b, "halfopen")
      yield* Effect.orDie(a.publish("halfopen", "before"))
      expect(yield* onB.take(1)).toEqual(["before"])

      // Nothing comes back from PostgreSQL, and nothing is closed: a half-open connection.
      proxy.holdReplies()
      yield* within("the bus noticing", Effect.repeat(b.status, { until: (status) => !status.connected }))
      const failed = yield* Effect.either(b.publish("halfopen", "lost"))
      expect(Either.isLeft(failed) && failed.left).toMatchObject({ _tag: "BusUnavailable", code: "BUS_UNAVAILABLE" })

      proxy.releaseReplies()
      yield* onB.reconnect
      yield* Effect.orDie(a.publish("halfopen", "after"))
      expect(yield* fence(b, onB, "halfopen")).toEqual(["after"])
      expect((yield* b.status).reconnects).toBeGreaterThanOrEqual(1)
    }))
})

describe("bus frames", () => {
  it("cuts text at character boundaries, never above the limit", () => {
    const text = "a€𝄞é".repeat(50)
    for (const limit of [4, 5, 6, 7, 10, 33]) {
      const pieces = splitUtf8(text, limit)
      expect(pieces.join("")).toBe(text)
      for (const piece of pieces) expect(Buffer.byteLength(piece, "utf8")).toBeLessThanOrEqual(limit)
      // No replacement character: no piece starts or ends inside a character.
      for (const piece of pieces) expect(piece).not.toContain("\uFFFD")
    }
  })

  it("drops a message whose parts do not line up, and keeps the next one", () => {
    const reassembly = new Reassembly()
    const first = toParts("aaaa", 1, "x".repeat(PART_DATA_BYTES * 2 + 1))
    const second = toParts("aaaa", 2, "y".repeat(PART_DATA_BYTES + 1))
    expect(first).toHaveLength(3)
    expect(reassembly.accept("c", first[0] ?? "")).toBeUndefined()
    // The middle part of the first message was lost (a reconnect): the first is dropped.
    expect(reassembly.accept("c", first[2] ?? "")).toBeUndefined()
    expect(reassembly.accept("c", second[0] ?? "")).toBeUndefined()
    expect(reassembly.accept("c", second[1] ?? "")).toBe("y".repeat(PART_DATA_BYTES + 1))
    // Not one of ours at all.
    expect(reassembly.accept("c", "plain NOTIFY payload")).toBeUndefined()
    expect(reassembly.dropped).toBe(2)
  })
})

describe("GET /health with the bus", () => {
  it.scopedLive("reports the bus up", () =>
    Effect.gen(function* () {
      const app = yield* startApp()
      const answer = yield* get(`${app.url}/health`)
      expect(answer.status).toBe(200)
      expect(decodeExact(WireHealth, answer.json)).toMatchObject({ status: "healthy", database: "connected", bus: "up" })
    }))
})
