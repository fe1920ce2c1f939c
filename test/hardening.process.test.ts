/**
 * Issue 10 with the real process (`node --import tsx src/main.ts`, demo model, loopback
 * only): what hostile clients can make the service hold (its RSS, read from /proc), how
 * long SIGTERM takes whatever clients do, and a storm of handshakes right after a restart.
 * Every load loop is bounded in count and stops by itself; every wait is a liveness bound,
 * except the two the issue sets as requirements (exit within grace + 5 s; a GET during the
 * storm), which are checked with a margin.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import WebSocket from "ws"
import { claudeEnv } from "./support/ChatApp.js"
import { connect } from "./support/ChatClient.js"
import { FakeRouterScoped } from "./support/FakeRouter.js"
import { get, LIVENESS_TIMEOUT_MS, request } from "./support/Http.js"
import { residentBytes, rssSampler, toMiB } from "./support/ProcessMemory.js"
import { report } from "./support/Report.js"
import { awaitExit, awaitLine, type ServiceProcess, spawnHealthyService } from "./support/ServiceProcess.js"
import { freshDatabase } from "./support/TestDatabase.js"

const MIB = 1024 * 1024

const newProjectId = (service: ServiceProcess) =>
  Effect.map(
    request(`${service.url}/api/projects`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" }),
    (answer) => {
      expect(answer.status).toBe(201)
      return (answer.json as { id: string }).id
    }
  )

const pidOf = (service: ServiceProcess) => {
  const pid = service.child.pid
  if (pid === undefined) throw new Error("the service has no pid")
  return pid
}

/** Resolves once `ws` is closed, whatever the reason (a write error included). */
const whenClosed = (ws: WebSocket) =>
  new Promise<void>((resolve) => {
    if (ws.readyState === WebSocket.CLOSED) return resolve()
    ws.once("close", () => resolve())
  })

const serverCuts = (service: ServiceProcess) =>
  service.logs().filter((line) => line["message"] === "chat socket closed by the server")

describe("memory a hostile client can make the service hold", () => {
  it.scopedLive("5 × 40 MiB frames on 5 sockets: each socket is closed (1009) before its frame is buffered; RSS grows by < 64 MB", () =>
    Effect.gen(function* () {
      const service = yield* spawnHealthyService({ DATABASE_URL: yield* freshDatabase })
      const projectId = yield* newProjectId(service)
      const clients = yield* Effect.all(Array.from({ length: 5 }, () => connect(service.wsUrl, projectId)))
      for (const client of clients) client.ws.on("error", () => undefined)
      const baseline = residentBytes(pidOf(service))
      const sampler = yield* rssSampler(pidOf(service))

      const frame = "x".repeat(40 * MIB)
      yield* Effect.promise(() =>
        Promise.all(clients.map((client) => {
          client.ws.send(frame)
          return whenClosed(client.ws)
        }))
      )
      yield* awaitLine(service, () => serverCuts(service).length >= 5)
      const growth = sampler.peak() - baseline
      report("5 × 40 MiB frames", { rssGrowthMiB: toMiB(growth) })
      expect(serverCuts(service).map((line) => line["closeCode"])).toEqual([1009, 1009, 1009, 1009, 1009])
      expect(growth).toBeLessThan(64 * MIB)
      // The service is fine.
      yield* (yield* connect(service.wsUrl, projectId)).ping()
    }), 120_000)

  it.scopedLive("a client that reads nothing but pings, and repeats an answered clientMessageId, is cut; RSS grows by < 100 MB", () =>
    Effect.gen(function* () {
      const service = yield* spawnHealthyService({ DATABASE_URL: yield* freshDatabase })
      const projectId = yield* newProjectId(service)
      const client = yield* connect(service.wsUrl, projectId)
      client.ws.on("error", () => undefined)
      yield* client.chat("Build me an inventory tracker", { clientMessageId: "repeat-me" })
      const start = yield* client.waitFor("message_start")
      yield* client.untilComplete(start.messageId, 30_000)
      const baseline = residentBytes(pidOf(service))
      const sampler = yield* rssSampler(pidOf(service))

      client.ws.pause() // from here on, nothing the server sends is read
      for (let i = 0; i < 20; i++) {
        client.ws.send(JSON.stringify({ type: "chat_message", content: "Build me an inventory tracker", clientMessageId: "repeat-me" }))
      }
      // Protocol pings: `ws` answers each with a pong the client never reads. Bounded: at most 160 MiB.
      const payload = Buffer.alloc(125, 7)
      const sentBytes = yield* Effect.promise(async () => {
        let sent = 0
        while (sent < 160 * MIB && client.ws.readyState === WebSocket.OPEN) {
          await new Promise<void>((resolve) => {
            for (let i = 0; i < 999; i++) client.ws.ping(payload)
            client.ws.ping(payload, undefined, () => resolve())
          })
          sent += 1000 * payload.length
        }
        return sent
      })
      yield* Effect.promise(() => whenClosed(client.ws))
      yield* awaitLine(service, () => serverCuts(service).length >= 1)
      const growth = sampler.peak() - baseline
      report("non-reading client", { rssGrowthMiB: toMiB(growth), pingMiBSentBeforeTheCut: toMiB(sentBytes) })
      expect(serverCuts(service)[0]).toMatchObject({ reason: "backed_up" })
      expect(sentBytes).toBeLessThan(160 * MIB)
      expect(growth).toBeLessThan(100 * MIB)
      expect((yield* get(`${service.url}/health`)).status).toBe(200)
    }), 120_000)
})

describe("repeated acknowledgements", () => {
  it.scopedLive("a client that stops reading and repeats an answered clientMessageId 40 times gets its 4 MB answer acknowledged fewer times; RSS stays bounded", () =>
    Effect.gen(function* () {
      const fake = yield* FakeRouterScoped()
      const chunks = Array.from({ length: 400 }, (_, i) => `${String(i).padStart(4, "0")}${"x".repeat(9_996)}`)
      fake.enqueueChat({ kind: "text", chunks }, { kind: "text", chunks: ["Fence."] })
      const service = yield* spawnHealthyService(
        claudeEnv(fake, {
          DATABASE_URL: yield* freshDatabase,
          // Neither the outbound cap nor the rate limit may hide what coalescing does.
          WS_MAX_BUFFERED_BYTES: String(1024 * MIB),
          WS_MESSAGES_PER_MINUTE: "1000"
        })
      )
      const projectId = yield* newProjectId(service)
      const client = yield* connect(service.wsUrl, projectId)
      client.ws.on("error", () => undefined)
      const frame = JSON.stringify({ type: "chat_message", content: "Build me an inventory tracker", clientMessageId: "repeat-me" })
      yield* client.send(frame)
      const start = yield* client.waitFor("message_start")
      yield* client.untilComplete(start.messageId, 60_000)
      // Another connection to the project, which reads: it sees when the first one's frames are all handled.
      const observer = yield* connect(service.wsUrl, projectId)
      const baseline = residentBytes(pidOf(service))
      const sampler = yield* rssSampler(pidOf(service))

      client.ws.pause() // nothing the server sends is read until every repeat is handled
      for (let i = 0; i < 40; i++) yield* client.send(frame)
      // A fence: frames are handled in order, so once this new message starts, every repeat was handled.
      yield* client.chat("Fence", { clientMessageId: "fence" })
      const fence = yield* observer.next((event) => event.type === "message_start" && event.messageId !== start.messageId, 60_000)
      const growth = sampler.peak() - baseline
      client.ws.resume()
      yield* client.next((event) => event.type === "message_start" && event.messageId === (fence.type === "message_start" ? fence.messageId : ""), 60_000)
      const acknowledgements = client.events.filter((event) => event.type === "message_complete" && event.messageId === start.messageId).length - 1
      report("repeated acknowledgements", { repeats: 40, acknowledgements, rssGrowthMiB: toMiB(growth) })
      expect(acknowledgements).toBeGreaterThanOrEqual(1)
      expect(acknowledgements).toBeLessThan(40)
      expect(growth).toBeLessThan(100 * MIB)
    }), 120_000)
})

describe("bounded shutdown", () => {
  it.scopedLive("SIGTERM with a client that never finishes the close handshake exits 0 within SHUTDOWN_GRACE_SECONDS + 5 s", () =>
    Effect.gen(function* () {
      const graceSeconds = 2
      const service = yield* spawnHealthyService({ DATABASE_URL: yield* freshDatabase, SHUTDOWN_GRACE_SECONDS: String(graceSeconds) })
      const projectId = yield* newProjectId(service)
      const stubborn = yield* connect(service.wsUrl, projectId)
      stubborn.ws.on("error", () => undefined)
      yield* stubborn.ping()
      stubborn.ws.pause() // never reads the close frame, so never answers it
      const signalledAt = performance.now()
      service.signal("SIGTERM")
      const exit = yield* awaitExit(service, (graceSeconds + 5) * 1000)
      report("SIGTERM with a stubborn client", { exitMs: Math.round(performance.now() - signalledAt) })
      expect(exit).toEqual({ code: 0, signal: null })
    }), 60_000)
})

describe("connection storms", () => {
  it.scopedLive("right after a restart, 2,000 sockets to 50 projects all open, and a GET /api/projects meanwhile answers", () =>
    Effect.gen(function* () {
      const databaseUrl = yield* freshDatabase
      const first = yield* spawnHealthyService({ DATABASE_URL: databaseUrl })
      const projectIds = yield* Effect.all(Array.from({ length: 50 }, () => newProjectId(first)), { concurrency: 5 })
      first.signal("SIGTERM")
      yield* awaitExit(first)

      const service = yield* spawnHealthyService({ DATABASE_URL: databaseUrl, LOG_LEVEL: "warn" })
      const sockets: Array<WebSocket> = []
      yield* Effect.addFinalizer(() => Effect.sync(() => sockets.forEach((ws) => ws.terminate())))
      const outcomes = Array.from({ length: 2000 }, (_, i) =>
        new Promise<string>((resolve) => {
          const ws = new WebSocket(`${service.wsUrl}/ws/chat?projectId=${projectIds[i % 50]}`, { handshakeTimeout: 60_000 })
          sockets.push(ws)
          ws.once("open", () => resolve("open"))
          ws.once("unexpected-response", (_request, response) => resolve(`refused ${String(response.statusCode)}`))
          ws.once("error", (error) => resolve(`error ${error.message}`))
        })
      )
      const listStartedAt = performance.now()
      const list = yield* request(`${service.url}/api/projects`, { signal: AbortSignal.timeout(30_000) })
      const listMs = Math.round(performance.now() - listStartedAt)
      const results = yield* Effect.promise(() => Promise.all(outcomes))
      report("2,000-socket storm", { listMs })
      expect(list.status).toBe(200)
      expect((list.json as { projects: ReadonlyArray<unknown> }).projects).toHaveLength(50)
      const notOpen = results.filter((outcome) => outcome !== "open")
      expect(notOpen.slice(0, 5), `${notOpen.length} of 2,000 did not open`).toEqual([])
      // The issue asks for 3 s; the margin is for a shared, noisy machine.
      expect(listMs).toBeLessThan(3 * LIVENESS_TIMEOUT_MS)
    }), 180_000)
})
