/**
 * Issue 10, in process: what a hostile client can send on the chat socket and the REST API.
 * Deep JSON, frames over `maxPayload`, floods that outrun the reader, the per-connection
 * rate limit, pongs nobody asked for, the title model's input, error replies that would
 * echo large input. Memory, shutdown and connection storms, which need a process of their
 * own, are in hardening.process.test.ts. No wall-clock assertions: every wait is a
 * liveness bound.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Net from "node:net"
import WebSocket from "ws"
import { claudeChat, getProject, startDemoApp } from "./support/ChatApp.js"
import { connect } from "./support/ChatClient.js"
import { get, LIVENESS_TIMEOUT_MS, sendJson } from "./support/Http.js"

const TEST_TIMEOUT = 60_000

const nestedArrays = (depth: number) => `${"[".repeat(depth)}${"]".repeat(depth)}`

/** Resolves with the close code once the socket is closed; dies after `timeoutMs` (liveness only). */
const closeCodeOf = (ws: WebSocket, timeoutMs = LIVENESS_TIMEOUT_MS) =>
  Effect.promise(
    () =>
      new Promise<number>((resolve, reject) => {
        if (ws.readyState === WebSocket.CLOSED) return reject(new Error("already closed before waiting"))
        const timer = setTimeout(() => reject(new Error(`the socket was not closed within ${timeoutMs} ms`)), timeoutMs)
        ws.once("close", (code) => {
          clearTimeout(timer)
          resolve(code)
        })
      })
  )

describe("chat socket: frames a hostile client sends", () => {
  it.scopedLive("a frame nested 3,000 deep is a VALIDATION_ERROR, and the socket keeps answering", () =>
    Effect.gen(function* () {
      const { app, project, client, fake } = yield* claudeChat()
      yield* client.send(`{"type":"chat_message","content":${nestedArrays(3000)}}`)
      const error = yield* client.waitFor("error")
      expect(error.code).toBe("VALIDATION_ERROR")
      expect(error.error.length).toBeLessThan(400)
      // The reader is alive: pings, and a deep frame of another shape, are still answered.
      yield* client.ping()
      yield* client.send(`{"type":"ping","pad":${nestedArrays(100_000)}}`)
      expect((yield* client.waitFor("error")).code).toBe("VALIDATION_ERROR")
      yield* client.ping()
      expect(client.isOpen).toBe(true)
      expect((yield* getProject(app, project.id)).messages).toEqual([])
      expect(fake.requests).toHaveLength(0)
    }), TEST_TIMEOUT)

  it.scopedLive("a frame above maxPayload is refused with close 1009; the service keeps serving", () =>
    Effect.gen(function* () {
      const { app, project, client } = yield* claudeChat()
      const closed = Effect.runFork(closeCodeOf(client.ws))
      // 2 MiB: above max(2 × the frame limit, 1 MiB) for the default MAX_MESSAGE_CHARS.
      client.ws.send("x".repeat(2 * 1024 * 1024))
      expect(yield* closed.await.pipe(Effect.flatten)).toBe(1009)
      const again = yield* connect(app.wsUrl, project.id)
      yield* again.ping()
    }), TEST_TIMEOUT)

  it.scopedLive("frames that outrun the reader past WS_MAX_QUEUED_FRAMES close the socket with 1008", () =>
    Effect.gen(function* () {
      const { app, project, client } = yield* claudeChat({ env: { WS_MAX_QUEUED_FRAMES: "4" } })
      const closed = Effect.runFork(closeCodeOf(client.ws))
      // Sent in one go: the server reads them in a few TCP reads, far faster than it answers.
      // A `continue` reads the database (a ping is answered at once, before the next frame
      // is read): the frames behind the first one wait in the connection's queue.
      const frame = JSON.stringify({ type: "continue", messageId: "00000000-0000-4000-8000-000000000000" })
      for (let i = 0; i < 2000; i++) client.ws.send(frame)
      expect(yield* closed.await.pipe(Effect.flatten)).toBe(1008)
      const again = yield* connect(app.wsUrl, project.id)
      yield* again.ping()
    }), TEST_TIMEOUT)

  it.scopedLive("more chat messages than WS_MESSAGES_PER_MINUTE on one connection get RATE_LIMITED; the connection stays usable", () =>
    Effect.gen(function* () {
      const { app, project, client, fake } = yield* claudeChat({ env: { WS_MESSAGES_PER_MINUTE: "2" } })
      // Blank messages: counted by the limit, refused by validation, nothing stored or sent to Claude.
      yield* client.chat("   ")
      expect((yield* client.waitFor("error")).code).toBe("VALIDATION_ERROR")
      yield* client.chat("   ")
      expect((yield* client.waitFor("error")).code).toBe("VALIDATION_ERROR")
      yield* client.chat("Build me an inventory tracker")
      const limited = yield* client.waitFor("error")
      expect(limited.code).toBe("RATE_LIMITED")
      expect(limited).not.toHaveProperty("messageId")
      yield* client.ping()
      expect((yield* getProject(app, project.id)).messages).toEqual([])
      expect(fake.chatRequests()).toHaveLength(0)
      // The limit is per connection: another one may send.
      const other = yield* connect(app.wsUrl, project.id)
      yield* other.chat("   ")
      expect((yield* other.waitFor("error")).code).toBe("VALIDATION_ERROR")
    }), TEST_TIMEOUT)

  it.scopedLive("pongs nobody asked for do not keep a connection alive; one that answers pings stays", () =>
    Effect.gen(function* () {
      const { app, project } = yield* claudeChat({ env: { WS_PING_INTERVAL: "1", WS_PONG_TIMEOUT: "2" } })
      const silent = yield* connect(app.wsUrl, project.id, { autoPong: false })
      const healthy = yield* connect(app.wsUrl, project.id)
      const closed = Effect.runFork(closeCodeOf(silent.ws, 20_000))
      // Unsolicited pongs, never the answer to the server's pings.
      const timer = setInterval(() => {
        if (silent.ws.readyState === WebSocket.OPEN) silent.ws.pong()
      }, 100)
      yield* Effect.addFinalizer(() => Effect.sync(() => clearInterval(timer)))
      yield* closed.await.pipe(Effect.flatten)
      expect(healthy.isOpen).toBe(true)
      yield* healthy.ping()
    }), TEST_TIMEOUT)
})

describe("connections", () => {
  it.scopedLive("past MAX_CONNECTIONS open connections, a new one is dropped; once they close, new ones are served", () =>
    Effect.gen(function* () {
      const app = yield* startDemoApp({ MAX_CONNECTIONS: "3" })
      const { port } = new URL(app.url)
      const open: Array<Net.Socket> = []
      yield* Effect.addFinalizer(() => Effect.sync(() => open.forEach((socket) => socket.destroy())))
      /** A keep-alive connection that asks for /health: answered (and held open), or dropped unanswered. */
      const probe = () =>
        new Promise<"answered" | "dropped">((resolve) => {
          const socket = Net.connect(Number(port), "127.0.0.1")
          open.push(socket)
          socket.once("data", () => resolve("answered"))
          socket.once("close", () => resolve("dropped"))
          socket.once("error", () => resolve("dropped"))
          socket.write("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n")
        })
      const outcomes: Array<string> = []
      // Bounded: the cap is 3, and fetch may hold a keep-alive connection of its own.
      while (outcomes.length < 8 && !outcomes.includes("dropped")) outcomes.push(yield* Effect.promise(probe))
      expect(outcomes).toContain("dropped")
      expect(outcomes.indexOf("dropped")).toBeLessThanOrEqual(3)
      for (const socket of open.splice(0)) socket.destroy()
      const health = yield* Effect.promise(async () => {
        const deadline = Date.now() + LIVENESS_TIMEOUT_MS
        for (;;) {
          const outcome = await probe()
          if (outcome === "answered" || Date.now() > deadline) return outcome
        }
      })
      expect(health).toBe("answered")
    }), TEST_TIMEOUT)
})

describe("the title model's input", () => {
  it.scopedLive("carries at most the first 1,000 characters of the first message", () =>
    Effect.gen(function* () {
      const { client, fake } = yield* claudeChat()
      const content = `${"Build me an inventory tracker. ".repeat(300)}END`
      yield* client.chat(content)
      yield* client.waitFor("project_updated", 20_000)
      const titleRequests = fake.titleRequests()
      expect(titleRequests).toHaveLength(1)
      const sent = titleRequests[0]?.messages[0]?.content
      expect(typeof sent).toBe("string")
      expect(sent).toBe(content.slice(0, 1000))
      // The answer itself gets the whole message.
      expect(JSON.stringify(fake.chatRequests()[0]?.messages)).toContain("END")
    }), TEST_TIMEOUT)
})

describe("REST: bodies a hostile client sends", () => {
  it.scopedLive("a body nested 400,000 deep is a 400 VALIDATION_ERROR, not a 500; error replies never echo large input", () =>
    Effect.gen(function* () {
      const app = yield* startDemoApp()
      const deep = yield* sendJson("POST", `${app.url}/api/projects`, `{"title":${nestedArrays(400_000)}}`)
      expect(deep.status).toBe(400)
      expect(deep.json).toStrictEqual({ error: expect.stringMatching(/nested/), code: "VALIDATION_ERROR" })

      // Nested, but not too deep: still a validation error from the schema, with a short message.
      const shallow = yield* sendJson("POST", `${app.url}/api/projects`, `{"title":${nestedArrays(60)}}`)
      expect(shallow.status).toBe(400)
      expect(shallow.json).toMatchObject({ code: "VALIDATION_ERROR" })

      const longTitle = "t".repeat(200_000)
      const tooLong = yield* sendJson("POST", `${app.url}/api/projects`, { title: longTitle })
      expect(tooLong.status).toBe(400)
      expect(tooLong.json).toMatchObject({ code: "VALIDATION_ERROR" })
      expect(tooLong.text.length).toBeLessThan(1000)

      const wrongType = yield* sendJson("PATCH", `${app.url}/api/projects/${crypto.randomUUID()}`, {
        title: { a: "b".repeat(100_000) }
      })
      expect(wrongType.status).toBe(400)
      expect(wrongType.text.length).toBeLessThan(1000)

      // Nothing was stored, and the service is fine.
      const list = yield* get(`${app.url}/api/projects`)
      expect(list.status).toBe(200)
      expect(list.json).toMatchObject({ projects: [] })
    }), TEST_TIMEOUT)
})
