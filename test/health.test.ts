/**
 * GET /health as in PRD-002, and the service losing PostgreSQL and getting it back: a TCP
 * proxy between the service and the database is paused (open connections cut, new ones
 * refused or left hanging) and resumed, with no restart of the service in between.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect } from "effect"
import { startApp } from "./support/BoundedApp.js"
import { get, type HttpAnswer, sendJson } from "./support/Http.js"
import { type PauseMode, TcpProxyScoped, targetOf } from "./support/TcpProxy.js"
import type { TestApp } from "./support/TestApp.js"
import { freshDatabase } from "./support/TestDatabase.js"
import { decodeExact, expectError, WireHealth, WireProject, WireProjectList } from "./support/Wire.js"

/** Repeats `check` until `done` holds for its answer; gives up (failing the test) after `limit`. */
const eventually = (check: Effect.Effect<HttpAnswer>, done: (answer: HttpAnswer) => boolean, limit = Duration.seconds(20)) =>
  Effect.gen(function* () {
    for (;;) {
      const answer = yield* check
      if (done(answer)) return answer
      yield* Effect.sleep("100 millis")
    }
  }).pipe(
    Effect.timeoutFail({ duration: limit, onTimeout: () => new Error(`condition not reached within ${Duration.format(limit)}`) }),
    Effect.orDie
  )

const health = (app: TestApp) => get(`${app.url}/health`)

/** The service on its own database, reached through a proxy the test controls. */
const appBehindProxy = (env: Record<string, string> = {}) =>
  Effect.gen(function* () {
    const database = yield* freshDatabase
    const proxy = yield* TcpProxyScoped(targetOf(database))
    const app = yield* startApp({ ...env, DATABASE_URL: proxy.urlFor(database) })
    return { app, proxy }
  })

describe("GET /health", () => {
  it.scopedLive("answers 200 healthy, database connected, demo model without an API key", () =>
    Effect.gen(function* () {
      const app = yield* startApp()
      const before = Date.now()
      const answer = yield* health(app)
      expect(answer.status).toBe(200)
      expect(answer.headers.get("content-type")).toMatch(/^application\/json/)
      const report = decodeExact(WireHealth, answer.json)
      expect(report).toStrictEqual({
        status: "healthy",
        database: "connected",
        bus: "up",
        model: "demo",
        cluster: { instanceId: report.cluster.instanceId, peers: 0 },
        timestamp: report.timestamp
      })
      // The timestamp is the time of the check, not a fixed or cached value.
      expect(new Date(report.timestamp).getTime()).toBeGreaterThanOrEqual(before - 1000)
      const again = decodeExact(WireHealth, (yield* health(app)).json)
      expect(new Date(again.timestamp).getTime()).toBeGreaterThanOrEqual(new Date(report.timestamp).getTime())
    }))

  it.scopedLive("names the claude model when an API key is configured", () =>
    Effect.gen(function* () {
      const app = yield* startApp({ CLAUDE_API_KEY: "sk-ant-test-health", CLAUDE_BASE_URL: "http://127.0.0.1:9" })
      const answer = yield* health(app)
      expect(answer.status).toBe(200)
      expect(decodeExact(WireHealth, answer.json)).toMatchObject({ status: "healthy", database: "connected", model: "claude" })
    }))
})

const outageCases: ReadonlyArray<{ readonly mode: PauseMode; readonly description: string }> = [
  { mode: "refuse", description: "connections to PostgreSQL are refused" },
  { mode: "blackhole", description: "PostgreSQL accepts connections but never answers" }
]

describe.each(outageCases)("when $description", ({ mode }) => {
  it.scopedLive("health turns 503 unhealthy/disconnected, the API answers 503 DB_UNAVAILABLE, and both recover without a restart", () =>
    Effect.gen(function* () {
      const { app, proxy } = yield* appBehindProxy()
      const existing = decodeExact(WireProject, (yield* sendJson("POST", `${app.url}/api/projects`, { title: "Before the outage" })).json)
      expect((yield* health(app)).status).toBe(200)

      proxy.pause(mode)

      // Every request is bounded by the liveness timeout of the HTTP helper only.
      const down = yield* health(app)
      expect(down.status).toBe(503)
      const report = decodeExact(WireHealth, down.json)
      // The bus's own connection went too; when it noticed is not this test's concern.
      expect(report).toStrictEqual({
        status: "unhealthy",
        database: "disconnected",
        bus: report.bus,
        model: "demo",
        cluster: report.cluster,
        timestamp: report.timestamp
      })

      expectError(yield* get(`${app.url}/api/projects`), 503, "DB_UNAVAILABLE")
      expectError(yield* get(`${app.url}/api/projects/${existing.id}`), 503, "DB_UNAVAILABLE")
      expectError(yield* sendJson("POST", `${app.url}/api/projects`, { title: "During the outage" }), 503, "DB_UNAVAILABLE")
      // Still unhealthy on a second look: nothing was cached as healthy.
      expect((yield* health(app)).status).toBe(503)

      proxy.resume()

      const up = yield* eventually(health(app), (answer) => answer.status === 200)
      expect(decodeExact(WireHealth, up.json)).toMatchObject({ status: "healthy", database: "connected", bus: "up" })
      const list = yield* eventually(get(`${app.url}/api/projects`), (answer) => answer.status === 200)
      expect(decodeExact(WireProjectList, list.json).projects.map((p) => p.title)).toEqual(["Before the outage"])
      const created = yield* sendJson("POST", `${app.url}/api/projects`, { title: "After the outage" })
      expect(created.status).toBe(201)
    }), 90_000)
})
