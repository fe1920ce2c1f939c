/**
 * The typed client (src/client) against the real service: REST through the HttpApi
 * definition, and the chat connection surviving sockets killed at random points of an answer.
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Stream } from "effect"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import WebSocket from "ws"
import {
  backoffDelay,
  type ChatEvent,
  ChatConnection,
  chatConnection,
  chatEvents,
  chatSocketUrl,
  fetchRestClient
} from "../src/client/index.js"
import { storedCompletions } from "../src/client/Reconcile.js"
import { claudeEnv, eventually, newProject, startDemoApp, storedMessages } from "./support/ChatApp.js"
import { connect } from "./support/ChatClient.js"
import { SteppedAnthropicScoped } from "./support/SteppedAnthropic.js"
import { startTestApp } from "./support/TestApp.js"

const LIVENESS_MS = 15_000

/** `ws` (Node 20 has no global WebSocket), remembering every socket so a test can kill it. */
const killableWebSocket = () => {
  const sockets: Array<WebSocket> = []
  class Recorded extends WebSocket {
    constructor(url: string) {
      super(url)
      sockets.push(this)
    }
  }
  /** Cuts the newest connection like a network failure: no close frame. */
  const kill = () => sockets.at(-1)?.terminate()
  return { WebSocket: Recorded, sockets, kill }
}

/** Resolves with the first event (from now on) that matches; fails after a liveness bound. */
const nextEvent = <E extends ChatEvent>(connection: ChatConnection, matches: (event: ChatEvent) => event is E) =>
  Effect.async<E, Error>((resume) => {
    const timer = setTimeout(() => resume(Effect.fail(new Error("timed out waiting for a chat event"))), LIVENESS_MS)
    const unsubscribe = connection.subscribe((event) => {
      if (!matches(event)) return
      clearTimeout(timer)
      unsubscribe()
      resume(Effect.succeed(event))
    })
    return Effect.sync(() => {
      clearTimeout(timer)
      unsubscribe()
    })
  }).pipe(Effect.orDie)

const isOpen = (event: ChatEvent): event is Extract<ChatEvent, { _tag: "Connection" }> =>
  event._tag === "Connection" && event.state === "open"
const isFinished = (event: ChatEvent): event is Extract<ChatEvent, { _tag: "Answer" }> =>
  event._tag === "Answer" && event.answer.status !== "streaming"

/** A small deterministic generator: each seed replays the same kill points. */
const seeded = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

const steppedChat = Effect.gen(function* () {
  const stepped = yield* SteppedAnthropicScoped
  const app = yield* startTestApp(claudeEnv(stepped))
  const project = yield* newProject(app)
  const sockets = killableWebSocket()
  const connection = yield* chatConnection({
    baseUrl: app.url,
    projectId: project.id,
    WebSocket: sockets.WebSocket,
    backoff: { initialMs: 20, maxMs: 200 }
  })
  yield* nextEvent(connection, isOpen)
  return { stepped, app, project, sockets, connection }
})

describe("chat connection", () => {
  for (const seed of [1, 2, 3, 4]) {
    it.scopedLive(`sockets killed at random points of an answer (seed ${seed}): the assembled text equals the stored one`, () =>
      Effect.gen(function* () {
        const random = seeded(seed)
        const { stepped, app, project, sockets, connection } = yield* steppedChat
        const pieces = Array.from({ length: 40 }, (_, index) => `piece ${index} ✓ 😀 `)
        const expected = pieces.join("")
        // Every intermediate text must be a prefix of the answer, and the deltas add up to it exactly once.
        let fromDeltas = ""
        const notPrefixes: Array<string> = []
        connection.subscribe((event) => {
          if (event._tag !== "Answer") return
          fromDeltas += event.delta
          if (!expected.startsWith(event.answer.text)) notPrefixes.push(event.answer.text)
        })
        const finished = yield* Effect.fork(nextEvent(connection, isFinished))
        connection.send("Write a long answer")
        const stream = yield* Effect.promise(() => stepped.nextStream())
        let kills = 0
        for (const piece of pieces) {
          yield* Effect.promise(() => stream.emit(piece))
          if (random() < 0.25) {
            sockets.kill()
            kills++
            // Half the time the next pieces arrive while the client is away, half after it is back.
            if (random() < 0.5) yield* nextEvent(connection, isOpen)
          }
        }
        yield* Effect.promise(() => stream.finish())
        const done = yield* finished
        expect(kills).toBeGreaterThan(0)
        expect(sockets.sockets.length).toBeGreaterThan(1)
        expect(done.answer.status).toBe("complete")
        expect(done.answer.text).toBe(expected)
        expect(fromDeltas).toBe(expected)
        expect(notPrefixes).toEqual([])
        const rows = yield* eventually("the answer is stored", storedMessages(app, project.id), (rows) => rows.some((row) => row.role === "assistant" && row.status === "complete"))
        expect(rows.map((row) => row.role)).toEqual(["user", "assistant"])
        expect(rows[1]?.content).toBe(done.answer.text)
      }))
  }

  it.scopedLive("a send cut off before it is acknowledged is retried with its clientMessageId: one message, one answer", () =>
    Effect.gen(function* () {
      const { stepped, app, project, sockets, connection } = yield* steppedChat
      const finished = yield* Effect.fork(nextEvent(connection, isFinished))
      const clientMessageId = connection.send("Are you there?")
      sockets.kill()
      const stream = yield* Effect.promise(() => stepped.nextStream())
      yield* Effect.promise(() => stream.emit("Yes."))
      sockets.kill()
      yield* Effect.promise(() => stream.finish())
      const done = yield* finished
      expect(done.answer.text).toBe("Yes.")
      const rows = yield* storedMessages(app, project.id)
      expect(rows.map((row) => [row.role, row.content])).toEqual([["user", "Are you there?"], ["assistant", "Yes."]])
      const [stored] = yield* app.sql<{ clientMessageId: string }>`SELECT client_message_id AS "clientMessageId" FROM messages WHERE role = 'user'`
      expect(stored?.clientMessageId).toBe(clientMessageId)
      expect(stepped.requests.filter((body) => body["stream"] === true)).toHaveLength(1)
    }))

  it.scopedLive("cancel stops the running answer, stored as cancelled", () =>
    Effect.gen(function* () {
      const { stepped, app, project, connection } = yield* steppedChat
      const finished = yield* Effect.fork(nextEvent(connection, isFinished))
      connection.send("Start and stop")
      const stream = yield* Effect.promise(() => stepped.nextStream())
      yield* Effect.promise(() => stream.emit("Partial"))
      const started = yield* nextEvent(connection, (event): event is Extract<ChatEvent, { _tag: "Answer" }> => event._tag === "Answer" || false)
      connection.cancel(started.answer.messageId)
      const done = yield* finished
      expect(done.answer.status).toBe("cancelled")
      const rows = yield* eventually("stored as cancelled", storedMessages(app, project.id), (rows) => rows[1]?.status === "cancelled")
      expect(rows[1]?.content).toBe(done.answer.text)
    }))

  it.scopedLive("events as an Effect Stream and as an async iterator, on the demo model", () =>
    Effect.gen(function* () {
      const app = yield* startDemoApp()
      const project = yield* newProject(app)
      const connection = yield* chatConnection({ baseUrl: app.url, projectId: project.id, WebSocket })
      const iterated = Effect.promise(async () => {
        for await (const event of connection.events()) if (isFinished(event)) return event.answer.text
        return undefined
      })
      const streamed = chatEvents(connection).pipe(
        Stream.filter(isFinished),
        Stream.take(1),
        Stream.runCollect,
        Effect.map((events) => Chunk.unsafeHead(events).answer.text)
      )
      const both = yield* Effect.fork(Effect.all([streamed, iterated], { concurrency: "unbounded" }))
      yield* nextEvent(connection, isOpen)
      connection.send("Build me a todo app in TypeScript")
      const [fromStream, fromIterator] = yield* both.pipe(Effect.timeout(LIVENESS_MS), Effect.orDie)
      const rows = yield* storedMessages(app, project.id)
      expect(rows[1]?.content).toBeTruthy()
      expect(fromStream).toBe(rows[1]?.content)
      expect(fromIterator).toBe(rows[1]?.content)
    }))
})

describe("REST client", () => {
  it.scopedLive("projects through the typed HttpApi client; a missing project is a typed error with its code", () =>
    Effect.gen(function* () {
      const app = yield* startDemoApp()
      const client = yield* fetchRestClient({ baseUrl: app.url })
      const created = yield* client.projects.create({ payload: { title: "Typed" } })
      expect(created.title).toBe("Typed")
      const renamed = yield* client.projects.rename({ path: { id: created.id }, payload: { title: "Renamed" } })
      expect(renamed.title).toBe("Renamed")
      const listed = yield* client.projects.list({ urlParams: {}, headers: {} })
      expect(listed?.projects.map((project) => project.title)).toEqual(["Renamed"])
      const fetched = yield* client.projects.get({ path: { id: created.id }, urlParams: {}, headers: {} })
      expect(fetched?.messages).toEqual([])
      yield* client.projects.remove({ path: { id: created.id } })
      const missing = yield* Effect.flip(client.projects.get({ path: { id: created.id }, urlParams: {}, headers: {} }))
      expect(missing._tag).toBe("ProjectNotFound")
      expect("code" in missing ? missing.code : undefined).toBe("PROJECT_NOT_FOUND")
    }))

  it.scopedLive("an answer read back over REST (it ended while away) has its stored stopReason, continuations and usage", () =>
    Effect.gen(function* () {
      const app = yield* startDemoApp()
      const project = yield* newProject(app, "Read back")
      const socket = yield* connect(app.wsUrl, project.id)
      const answer = yield* socket.ask("Build a todo app in Go")
      expect(answer.end.type).toBe("message_complete")
      const [completion] = yield* Effect.promise(() => storedCompletions({ baseUrl: app.url, projectId: project.id }, [answer.start.messageId]))
      const live = answer.end as { readonly stopReason: unknown; readonly continuations: unknown; readonly usage: unknown }
      expect(live.usage).not.toBeNull()
      expect(completion).toMatchObject({
        type: "message_complete",
        messageId: answer.start.messageId,
        status: "complete",
        stopReason: live.stopReason,
        continuations: live.continuations,
        usage: live.usage
      })
    }))

  it.scopedLive("pages through the typed client with the opaque cursors the service returned", () =>
    Effect.gen(function* () {
      const app = yield* startDemoApp()
      const client = yield* fetchRestClient({ baseUrl: app.url })
      for (const title of ["One", "Two", "Three"]) yield* client.projects.create({ payload: { title } })
      const first = yield* client.projects.list({ urlParams: { limit: 2 }, headers: {} })
      expect(first?.projects).toHaveLength(2)
      const cursor = first?.nextCursor
      expect(typeof cursor).toBe("string")
      // The cursor goes back as the text it came as: no keyset to rebuild on the client.
      const second = yield* client.projects.list({ urlParams: { limit: 2, cursor: cursor ?? undefined }, headers: {} })
      expect([...(first?.projects ?? []), ...(second?.projects ?? [])].map((project) => project.title).sort()).toEqual(["One", "Three", "Two"])
      expect(second?.nextCursor).toBeNull()
      const refused = yield* Effect.flip(client.projects.list({ urlParams: { cursor: "not-a-cursor" }, headers: {} }))
      expect("code" in refused ? refused.code : undefined).toBe("VALIDATION_ERROR")
    }))

  it.scopedLive("the token goes out as a bearer header on REST and as ?token= on the chat socket", () =>
    Effect.gen(function* () {
      const seen: Array<string | undefined> = []
      const server = http.createServer((request, response) => {
        seen.push(request.headers.authorization)
        response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ projects: [] }))
      })
      yield* Effect.acquireRelease(
        Effect.async<void>((resume) => void server.listen(0, "127.0.0.1", () => resume(Effect.void))),
        () => Effect.sync(() => server.close())
      )
      const { port } = server.address() as AddressInfo
      const client = yield* fetchRestClient({ baseUrl: `http://127.0.0.1:${port}`, token: () => "s3cret" })
      yield* client.projects.list({ urlParams: {}, headers: {} })
      expect(seen).toEqual(["Bearer s3cret"])
      const url = new URL(chatSocketUrl("https://chat.example/app", "p-1", "s3cret"))
      expect([url.protocol, url.pathname, url.searchParams.get("projectId"), url.searchParams.get("token")]).toEqual(["wss:", "/ws/chat", "p-1", "s3cret"])
    }))
})

describe("backoff", () => {
  it("grows exponentially to its cap, jittered within the upper half", () => {
    const options = { initialMs: 100, maxMs: 1_000 }
    expect([1, 2, 3, 4, 5, 9].map((attempt) => backoffDelay(attempt, options, () => 1))).toEqual([100, 200, 400, 800, 1_000, 1_000])
    expect([1, 2, 3, 4, 5, 9].map((attempt) => backoffDelay(attempt, options, () => 0))).toEqual([50, 100, 200, 400, 500, 500])
  })
})

describe("chat connection: continue and the access token", () => {
  it.scopedLive("continue() after a cancel: the same answer streams on to complete, continuations 1, text as stored", () =>
    Effect.gen(function* () {
      const { stepped, app, project, connection } = yield* steppedChat
      const cancelled = yield* Effect.fork(nextEvent(connection, isFinished))
      connection.send("Go on and on")
      const first = yield* Effect.promise(() => stepped.nextStream())
      yield* Effect.promise(() => first.emit("The first half, "))
      const started = yield* nextEvent(connection, (event): event is Extract<ChatEvent, { _tag: "Answer" }> => event._tag === "Answer" && event.answer.text.length > 0)
      connection.cancel(started.answer.messageId)
      expect((yield* cancelled).answer.status).toBe("cancelled")
      const finished = yield* Effect.fork(nextEvent(connection, isFinished))
      connection.continue(started.answer.messageId)
      const second = yield* Effect.promise(() => stepped.nextStream())
      yield* Effect.promise(() => second.emit("and the second half."))
      yield* Effect.promise(() => second.finish())
      const done = yield* finished
      expect(done.answer).toMatchObject({ messageId: started.answer.messageId, status: "complete", continuations: 1 })
      expect(done.answer.text).toBe("The first half, and the second half.")
      const rows = yield* storedMessages(app, project.id)
      expect(rows.map((row) => [row.role, row.status, row.content])).toEqual([
        ["user", "complete", "Go on and on"],
        ["assistant", "complete", "The first half, and the second half."]
      ])
    }))

  it.scopedLive("with AUTH_TOKEN set: the client's token opens REST and the chat; without it REST fails UNAUTHORIZED", () =>
    Effect.gen(function* () {
      const app = yield* startDemoApp({ AUTH_TOKEN: "client-s3cret" })
      const anonymous = yield* fetchRestClient({ baseUrl: app.url })
      const refused = yield* Effect.flip(anonymous.projects.list({ urlParams: {}, headers: {} }))
      expect(refused).toMatchObject({ code: "UNAUTHORIZED" })
      const client = yield* fetchRestClient({ baseUrl: app.url, token: () => "client-s3cret" })
      const project = yield* client.projects.create({ payload: { title: "Locked" } })
      const connection = yield* chatConnection({ baseUrl: app.url, projectId: project.id, WebSocket, token: () => "client-s3cret" })
      const finished = yield* Effect.fork(nextEvent(connection, isFinished))
      connection.send("Build me a todo list")
      expect((yield* finished).answer.status).toBe("complete")
    }))
})
