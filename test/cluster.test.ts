/**
 * Several instances on one PostgreSQL (issue 12), end to end: real service processes on one
 * database, the real SDK against one fake Messages API, real WebSockets. Each answer's text
 * is checked token by token (numbered tokens): nothing missing, nothing repeated, in order,
 * on every instance, and what clients assembled is what is stored.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import pg from "pg"
import { eventually, fakeIdle, newProject, TEST_API_KEY } from "./support/ChatApp.js"
import { type ChatClient, connect, type MessageChunk, type MessageComplete } from "./support/ChatClient.js"
import { gate } from "./support/FakeAnthropic.js"
import { FakeRouterScoped } from "./support/FakeRouter.js"
import { get, request } from "./support/Http.js"
import { answerEvents, assembled, chunksOf, directSql, expectTokens, messageRow, numberedChunks, seenChunk, startAnswer, tokens } from "./support/Reliability.js"
import { awaitExit, type ServiceProcess, spawnHealthyService } from "./support/ServiceProcess.js"
import { freshDatabase } from "./support/TestDatabase.js"

const complete = (client: ChatClient, messageId: string) =>
  client.next(
    (e): e is MessageComplete => e.type === "message_complete" && e.messageId === messageId,
    60_000,
    `the message_complete of ${messageId}`
  )

/** Waits until the instance's /health counts `peers` other instances. */
const awaitPeers = (service: ServiceProcess, peers: number) =>
  eventually(
    `${service.url} sees ${peers} other instance(s)`,
    Effect.map(get(`${service.url}/health`), (answer) => (answer.json as { cluster?: { peers?: number } }).cluster?.peers),
    (seen) => seen === peers,
    30_000
  )

/** `n` instances of the service on one new database and one fake, each aware of the others. */
const cluster = (n: number, extra: Record<string, string> = {}) =>
  Effect.gen(function* () {
    const fake = yield* FakeRouterScoped()
    const database = yield* freshDatabase
    const env = {
      DATABASE_URL: database,
      CLAUDE_API_KEY: TEST_API_KEY,
      CLAUDE_BASE_URL: fake.url,
      CLAUDE_MAX_RETRIES: "0",
      CHECKPOINT_INTERVAL_MS: "100",
      SHUTDOWN_GRACE_SECONDS: "1",
      LOG_LEVEL: "info",
      ...extra
    }
    // The first one alone applies the migrations.
    const first = yield* spawnHealthyService(env)
    const rest = yield* Effect.all(Array.from({ length: n - 1 }, () => spawnHealthyService(env)), { concurrency: "unbounded" })
    const services = [first, ...rest]
    yield* Effect.forEach(services, (service) => awaitPeers(service, n - 1), { concurrency: "unbounded" })
    const sql = yield* directSql(database)
    return { fake, services, sql, database, env }
  })

describe("several instances on one database", () => {
  it.scopedLive("an answer on A reaches a client on B with the same events; project_updated too; the text exact and stored", () =>
    Effect.gen(function* () {
      const { fake, services: [a, b], sql } = yield* cluster(2)
      const series = numberedChunks(60, "a")
      fake.enqueueChat({ kind: "text", chunks: series, chunkDelayMs: 5 })
      const project = yield* newProject(a!)
      const onA = yield* connect(a!.wsUrl, project.id)
      const onB = yield* connect(b!.wsUrl, project.id)
      const start = yield* startAnswer(onA, "Write it")
      const endOnA = yield* complete(onA, start.messageId)
      const endOnB = yield* complete(onB, start.messageId)
      expectTokens(endOnA.fullContent, series)
      expect(answerEvents(onB, start.messageId), "B's client saw exactly A's events").toEqual(answerEvents(onA, start.messageId))
      expect(assembled(chunksOf(onB, start.messageId))).toBe(endOnA.fullContent)
      expect(endOnB).toEqual(endOnA)
      const titled = yield* onB.seen("project_updated")
      expect(titled).toMatchObject({ projectId: project.id, title: "Inventory Tracker" })
      expect(yield* messageRow(sql, start.messageId)).toEqual({ status: "complete", content: endOnA.fullContent })
    }), 120_000)

  it.scopedLive("a client joining on B mid-answer catches up, then follows live; a send on B meanwhile is BUSY and stores nothing", () =>
    Effect.gen(function* () {
      const { fake, services: [a, b], sql } = yield* cluster(2)
      const series = numberedChunks(40, "a")
      const held = gate()
      fake.enqueueChat({ kind: "text", chunks: series, pauseAfter: 15, resume: held.promise })
      const project = yield* newProject(a!, "Mine")
      const onA = yield* connect(a!.wsUrl, project.id)
      const start = yield* startAnswer(onA, "Go")
      yield* seenChunk(onA, start.messageId, 15)

      const onB = yield* connect(b!.wsUrl, project.id)
      const resumed = yield* onB.next((e) => e.type === "message_start", 20_000, "the catch-up start")
      expect(resumed).toMatchObject({ messageId: start.messageId, resumed: true })
      const catchUp = yield* onB.next((e): e is MessageChunk => e.type === "message_chunk", 20_000, "the catch-up chunk")
      expect(catchUp).toMatchObject({ offset: 0, content: series.slice(0, 15).join("") })

      yield* onB.chat("Another question")
      const busy = yield* onB.next((e) => e.type === "error", 20_000, "BUSY")
      expect(busy).toMatchObject({ code: "BUSY" })
      const questions = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM messages WHERE role = 'user'`.pipe(Effect.orDie)
      expect(questions[0]?.n, "the refused question is not stored").toBe(1)

      held.open()
      const end = yield* complete(onB, start.messageId)
      expectTokens(end.fullContent, series)
      expect(assembled(chunksOf(onB, start.messageId))).toBe(end.fullContent)
      expect(yield* messageRow(sql, start.messageId)).toEqual({ status: "complete", content: end.fullContent })
    }), 120_000)

  it.scopedLive("an answer no other instance follows stays off the bus after its first second; a client joining on B brings its events back", () =>
    Effect.gen(function* () {
      const { fake, services: [a, b], database } = yield* cluster(2)
      // Everything said on the events channel, as another instance hears it.
      const lines: Array<string> = []
      yield* Effect.acquireRelease(
        Effect.promise(async () => {
          const listener = new pg.Client({ connectionString: database })
          await listener.connect()
          listener.on("notification", (notification) => lines.push(...(notification.payload ?? "").split("\n").slice(1)))
          await listener.query("LISTEN chat_events")
          return listener
        }),
        (listener) => Effect.promise(() => listener.end())
      )
      const series = numberedChunks(40, "a")
      const held = gate()
      fake.enqueueChat({ kind: "text", chunks: series, pauseAfter: 10, resume: held.promise })
      const project = yield* newProject(a!, "Only on A")
      const onA = yield* connect(a!.wsUrl, project.id)
      const start = yield* startAnswer(onA, "Go")
      yield* seenChunk(onA, start.messageId, 10)
      // Past the first second, in which the events go out whoever follows (a follower's word may be on its way).
      yield* Effect.sleep("1500 millis")
      held.open()
      const end = yield* complete(onA, start.messageId)
      expectTokens(end.fullContent, series)
      const eventLines = () => lines.filter((line) => line.startsWith(`${project.id} e `))
      /** Lines of the first answer sent after its first second: its later chunks, its end. */
      const late = () =>
        eventLines().filter((line) => line.includes(`"messageId":"${start.messageId}"`))
          .filter((line) => line.includes('"message_complete"') || series.slice(10).some((token) => line.includes(token)))

      // A client on B: B says it follows (`s`), and the next answer's events go out, every one.
      const next = numberedChunks(30, "b")
      fake.enqueueChat({ kind: "text", chunks: next, chunkDelayMs: 5 })
      const onB = yield* connect(b!.wsUrl, project.id)
      yield* eventually("B's follow heard", Effect.sync(() => lines.some((line) => line.startsWith(`${project.id} s`))), (seen) => seen, 20_000)
      const second = yield* startAnswer(onA, "And more")
      const endOnA = yield* complete(onA, second.messageId)
      const endOnB = yield* complete(onB, second.messageId)
      expectTokens(endOnA.fullContent, next)
      expect(answerEvents(onB, second.messageId), "B's client saw exactly A's events").toEqual(answerEvents(onA, second.messageId))
      expect(endOnB).toEqual(endOnA)
      // Every chunk of it went over the bus (heard here a moment after B heard it, at the latest)…
      const ofSecond = () => eventLines().filter((line) => line.includes(`"messageId":"${second.messageId}"`)).length
      yield* eventually("the second answer's events on the bus", Effect.sync(ofSecond), (n) => n >= next.length + 2, 20_000)
      // …and, long after it was sent if it had been, nothing of the first answer after its first second.
      expect(late(), "no late event of an answer no other instance followed").toEqual([])
    }), 120_000)

  it.scopedLive("an instance started later learns who follows what: a client on B hears all of an answer the new C generates", () =>
    Effect.gen(function* () {
      const { fake, services: [a, b], env } = yield* cluster(2)
      const project = yield* newProject(a!, "Followed on B")
      const onB = yield* connect(b!.wsUrl, project.id)
      // B followed the project before C existed; C asks (`h`) and B says it again (`f`).
      const c = yield* spawnHealthyService(env)
      yield* awaitPeers(c, 2)
      const series = numberedChunks(30, "c")
      const held = gate()
      fake.enqueueChat({ kind: "text", chunks: series, pauseAfter: 5, resume: held.promise })
      const onC = yield* connect(c.wsUrl, project.id)
      const start = yield* startAnswer(onC, "Go")
      yield* seenChunk(onC, start.messageId, 5)
      // Past the first second: what C sends from now on depends on knowing that B follows.
      yield* Effect.sleep("1500 millis")
      held.open()
      const endOnC = yield* complete(onC, start.messageId)
      const endOnB = yield* complete(onB, start.messageId)
      expectTokens(endOnC.fullContent, series)
      expect(endOnB).toEqual(endOnC)
      expect(assembled(chunksOf(onB, start.messageId))).toBe(endOnC.fullContent)
    }), 120_000)

  it.scopedLive("a cancel sent on B stops the answer generating on A; a continue sent on B goes on with it there, heard on A", () =>
    Effect.gen(function* () {
      const { fake, services: [a, b], sql } = yield* cluster(2)
      const series = numberedChunks(40, "a")
      const held = gate()
      fake.enqueueChat({ kind: "text", chunks: series, pauseAfter: 10, resume: held.promise })
      const project = yield* newProject(a!, "Mine")
      const onA = yield* connect(a!.wsUrl, project.id)
      const onB = yield* connect(b!.wsUrl, project.id)
      const start = yield* startAnswer(onA, "Go")
      yield* seenChunk(onB, start.messageId, 10)
      yield* onB.send({ type: "cancel", messageId: start.messageId })
      const endOnA = yield* complete(onA, start.messageId)
      const endOnB = yield* complete(onB, start.messageId)
      expect(endOnA).toMatchObject({ status: "cancelled", fullContent: series.slice(0, 10).join("") })
      expect(endOnB).toEqual(endOnA)
      yield* fakeIdle(fake)
      held.open()
      expect(yield* messageRow(sql, start.messageId)).toEqual({ status: "cancelled", content: endOnA.fullContent })

      const more = numberedChunks(6, "b")
      fake.enqueueChat({ kind: "text", chunks: more })
      yield* onB.send({ type: "continue", messageId: start.messageId })
      const continuedOnA = yield* complete(onA, start.messageId)
      const continuedOnB = yield* complete(onB, start.messageId)
      expect(continuedOnA).toMatchObject({ status: "complete", continuations: 1 })
      expect(continuedOnB).toEqual(continuedOnA)
      expectTokens(continuedOnA.fullContent, series.slice(0, 10), more)
      const resumedOnA = onA.events.filter((e) => e.type === "message_start" && e.resumed === true)
      expect(resumedOnA, "A's client heard the answer go on").toHaveLength(1)
      expect(yield* messageRow(sql, start.messageId)).toEqual({ status: "complete", content: continuedOnA.fullContent })
    }), 120_000)

  it.scopedLive("a project deleted on A while B generates its answer: the answer stops upstream, every socket on both hears PROJECT_NOT_FOUND and is closed (4404)", () =>
    Effect.gen(function* () {
      const { fake, services: [a, b], sql } = yield* cluster(2)
      const held = gate()
      fake.enqueueChat({ kind: "text", chunks: numberedChunks(40, "a"), pauseAfter: 5, resume: held.promise })
      const project = yield* newProject(a!, "Doomed")
      const onA = yield* connect(a!.wsUrl, project.id)
      const onB = yield* connect(b!.wsUrl, project.id)
      const start = yield* startAnswer(onB, "Go")
      yield* seenChunk(onA, start.messageId, 5)
      const deleted = yield* request(`${a!.url}/api/projects/${project.id}`, { method: "DELETE" })
      expect(deleted.status).toBe(204)
      for (const client of [onA, onB]) {
        expect(yield* client.next((e) => e.type === "error", 20_000, "the error event")).toMatchObject({ code: "PROJECT_NOT_FOUND" })
        expect(yield* client.awaitClose()).toMatchObject({ code: 4404, reason: "project deleted" })
        expect(client.events.filter((e) => e.type === "message_complete")).toEqual([])
      }
      yield* fakeIdle(fake, 10_000)
      held.open()
      expect(fake.fake.abortedStreams, "the owner aborted the upstream request").toBe(1)
      const rows = yield* sql`SELECT id FROM messages WHERE project_id = ${project.id}`.pipe(Effect.orDie)
      expect(rows).toEqual([])
    }), 120_000)

  it.scopedLive("three instances, SIGKILL of the owner: the clients on both others see the answer go on and end, exactly", () =>
    Effect.gen(function* () {
      const { fake, services: [a, b, c], sql } = yield* cluster(3)
      const [first, rest] = [numberedChunks(300, "a"), numberedChunks(8, "b")]
      fake.enqueueChat({ kind: "text", chunks: first, chunkDelayMs: 20 })
      const project = yield* newProject(a!, "Mine")
      const onA = yield* connect(a!.wsUrl, project.id)
      const onB = yield* connect(b!.wsUrl, project.id)
      const onC = yield* connect(c!.wsUrl, project.id)
      const start = yield* startAnswer(onA, "Build me a big app")
      yield* seenChunk(onB, start.messageId, 20)
      yield* seenChunk(onC, start.messageId, 20)
      fake.enqueueChat({ kind: "text", chunks: rest, chunkDelayMs: 20 })
      a!.signal("SIGKILL")
      yield* awaitExit(a!, 30_000)
      const end = yield* complete(onB, start.messageId)
      expect(yield* complete(onC, start.messageId)).toEqual(end)
      expect(end).toMatchObject({ status: "complete", continuations: 1 })
      const cut = tokens(end.fullContent).length - rest.length
      expectTokens(end.fullContent, first.slice(0, cut), rest)
      for (const client of [onB, onC]) expect(assembled(chunksOf(client, start.messageId))).toBe(end.fullContent)
      expect(yield* messageRow(sql, start.messageId)).toEqual({ status: "complete", content: end.fullContent })
      const takers = [b!, c!].filter((service) =>
        service.logs().some((line) => line["message"] === "taking over an answer of an instance that stopped" && line["messageId"] === start.messageId)
      )
      expect(takers, "exactly one instance took the answer over").toHaveLength(1)
      expect(fake.chatRequests(), "one request for the answer, one for its continuation").toHaveLength(2)
    }), 150_000)

  for (const how of ["SIGKILL", "SIGTERM"] as const) {
    it.scopedLive(`${how} of the instance generating an answer: another instance finishes it under the same id`, () =>
      Effect.gen(function* () {
        const { fake, services: [a, b], sql } = yield* cluster(2)
        const [first, rest] = [numberedChunks(300, "a"), numberedChunks(8, "b")]
        fake.enqueueChat({ kind: "text", chunks: first, chunkDelayMs: 20 })
        const project = yield* newProject(a!, "Mine")
        const onA = yield* connect(a!.wsUrl, project.id)
        const onB = yield* connect(b!.wsUrl, project.id)
        const start = yield* startAnswer(onA, "Build me a big app")
        yield* seenChunk(onB, start.messageId, 20)
        fake.enqueueChat({ kind: "text", chunks: rest, chunkDelayMs: 20 })
        a!.signal(how)
        const exit = yield* awaitExit(a!, 30_000)
        if (how === "SIGTERM") {
          expect(exit).toStrictEqual({ code: 0, signal: null })
          expect(a!.logs().some((line) => line["message"] === "grace period over: handing running answers over")).toBe(true)
        }
        const end = yield* complete(onB, start.messageId)
        expect(end).toMatchObject({ status: "complete", continuations: 1 })
        const cut = tokens(end.fullContent).length - rest.length
        expect(cut, "the answer went on from part of the first reply").toBeGreaterThanOrEqual(20)
        expectTokens(end.fullContent, first.slice(0, cut), rest)
        expect(assembled(chunksOf(onB, start.messageId)), "B's client saw the whole answer once").toBe(end.fullContent)
        expect(onB.events.filter((e) => e.type === "error")).toEqual([])
        expect(yield* messageRow(sql, start.messageId)).toEqual({ status: "complete", content: end.fullContent })
        const takeover = b!.logs().find((line) => line["message"] === "taking over an answer of an instance that stopped")
        expect(takeover?.["messageId"]).toBe(start.messageId)
      }), 120_000)
  }
})
