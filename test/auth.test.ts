/**
 * Issue 10 item 5: the optional access token (AUTH_TOKEN). With it set, every /api route
 * and the WebSocket handshake need it (REST: `Authorization: Bearer`; handshake: the header
 * or `?token=`), /health stays open, the token never reaches a log line, and OpenAPI shows
 * the bearer scheme. Without it, nothing is asked (the PRD's single-user MVP), and
 * production warns at startup.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import WebSocket from "ws"
import { startDemoApp, TEST_API_KEY } from "./support/ChatApp.js"
import { connect, refused } from "./support/ChatClient.js"
import { FakeAnthropicScoped } from "./support/FakeAnthropic.js"
import { get, LIVENESS_TIMEOUT_MS, request } from "./support/Http.js"
import { awaitHealthy, awaitLine, spawnHealthyService, spawnService } from "./support/ServiceProcess.js"
import { freshDatabase } from "./support/TestDatabase.js"

const TEST_TIMEOUT = 60_000
const TOKEN = "gochat-test-token-5d1e9a7c"

const bearer = (token: string) => ({ authorization: `Bearer ${token}` })

const createProject = (url: string, headers: Record<string, string>) =>
  request(`${url}/api/projects`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify({ title: "Guarded" })
  })

/** Opens a socket with an Authorization header (the shared client cannot set one); succeeds once open. */
const openWithHeader = (wsUrl: string, projectId: string, token: string) =>
  Effect.acquireRelease(
    Effect.promise(
      () =>
        new Promise<WebSocket>((resolve, reject) => {
          const ws = new WebSocket(`${wsUrl}/ws/chat?projectId=${projectId}`, {
            headers: bearer(token),
            handshakeTimeout: LIVENESS_TIMEOUT_MS
          })
          ws.once("open", () => resolve(ws))
          ws.once("error", reject)
        })
    ),
    (ws) => Effect.sync(() => ws.terminate())
  )

describe("AUTH_TOKEN set", () => {
  it.scopedLive("REST needs `Authorization: Bearer <token>`: 401 UNAUTHORIZED without it or with another; /health stays open", () =>
    Effect.gen(function* () {
      const app = yield* startDemoApp({ AUTH_TOKEN: TOKEN })
      for (const headers of [{}, bearer("wrong"), bearer(`${TOKEN}x`), { authorization: TOKEN }, bearer("")]) {
        const list = yield* get(`${app.url}/api/projects`, headers)
        expect({ headers, status: list.status, body: list.json }).toStrictEqual({
          headers,
          status: 401,
          body: { error: expect.stringMatching(/\S/), code: "UNAUTHORIZED" }
        })
        expect(list.text).not.toContain(TOKEN)
        expect((yield* createProject(app.url, headers)).status).toBe(401)
      }
      const created = yield* createProject(app.url, bearer(TOKEN))
      expect(created.status).toBe(201)
      const id = (created.json as { id: string }).id
      expect((yield* get(`${app.url}/api/projects`, bearer(TOKEN))).status).toBe(200)
      expect((yield* get(`${app.url}/api/projects/${id}`)).status).toBe(401)
      expect((yield* get(`${app.url}/api/projects/${id}`, bearer(TOKEN))).status).toBe(200)
      expect((yield* request(`${app.url}/api/projects/${id}`, { method: "DELETE" })).status).toBe(401)
      expect((yield* get(`${app.url}/api/projects/${id}`, bearer(TOKEN))).status).toBe(200)
      expect((yield* get(`${app.url}/health`)).status).toBe(200)
    }), TEST_TIMEOUT)

  it.scopedLive("the WebSocket handshake needs the token as a header or `?token=`; otherwise 401", () =>
    Effect.gen(function* () {
      const app = yield* startDemoApp({ AUTH_TOKEN: TOKEN })
      const created = yield* createProject(app.url, bearer(TOKEN))
      const id = (created.json as { id: string }).id

      const none = yield* refused(app.wsUrl, id)
      expect({ status: none.status, body: none.json }).toStrictEqual({
        status: 401,
        body: { error: expect.stringMatching(/\S/), code: "UNAUTHORIZED" }
      })
      const wrong = yield* refused(app.wsUrl, id, { query: `projectId=${id}&token=nope` })
      expect(wrong.status).toBe(401)

      const byQuery = yield* connect(app.wsUrl, id, { query: `projectId=${id}&token=${TOKEN}` })
      yield* byQuery.ping()
      const byHeader = yield* openWithHeader(app.wsUrl, id, TOKEN)
      expect(byHeader.readyState).toBe(WebSocket.OPEN)
    }), TEST_TIMEOUT)

  it.scopedLive("OpenAPI shows the bearer scheme on the projects endpoints, not on /health", () =>
    Effect.gen(function* () {
      const app = yield* startDemoApp({ AUTH_TOKEN: TOKEN })
      const doc = (yield* get(`${app.url}/openapi.json`)).json as {
        components: { securitySchemes: Record<string, { type: string; scheme: string }> }
        paths: Record<string, Record<string, { security?: ReadonlyArray<Record<string, unknown>> }>>
      }
      expect(doc.components.securitySchemes["bearer"]).toMatchObject({ type: "http", scheme: "bearer" })
      expect(doc.paths["/api/projects"]?.["get"]?.security).toEqual([{ bearer: [] }])
      expect(doc.paths["/api/projects/{id}"]?.["delete"]?.security).toEqual([{ bearer: [] }])
      expect(doc.paths["/health"]?.["get"]?.security ?? []).toEqual([])
    }), TEST_TIMEOUT)

  it.scopedLive("the token never reaches a log line, even at debug level and given in the query string", () =>
    Effect.gen(function* () {
      const databaseUrl = yield* freshDatabase
      const service = yield* spawnHealthyService({ DATABASE_URL: databaseUrl, AUTH_TOKEN: TOKEN, LOG_LEVEL: "debug" })
      const created = yield* createProject(service.url, bearer(TOKEN))
      const id = (created.json as { id: string }).id
      const client = yield* connect(service.wsUrl, id, { query: `projectId=${id}&token=${TOKEN}` })
      yield* client.ping()
      yield* client.close()
      yield* refused(service.wsUrl, id, { query: `projectId=${id}&token=${TOKEN}-wrong` })
      yield* get(`${service.url}/api/projects?token=${TOKEN}`, bearer(TOKEN))
      // The socket's access line is written when it closes.
      yield* awaitLine(service, (line) => line.includes("\"path\":\"/ws/chat\"") && line.includes("\"http request\""))
      yield* awaitLine(service, (line) => line.includes("\"status\":401"))
      expect(service.output()).not.toContain(TOKEN)
    }), TEST_TIMEOUT)
})

describe("AUTH_TOKEN unset", () => {
  it.scopedLive("nothing is asked for", () =>
    Effect.gen(function* () {
      const app = yield* startDemoApp()
      const created = yield* createProject(app.url, {})
      expect(created.status).toBe(201)
      const id = (created.json as { id: string }).id
      expect((yield* get(`${app.url}/api/projects`)).status).toBe(200)
      yield* (yield* connect(app.wsUrl, id)).ping()
    }), TEST_TIMEOUT)

  it.scopedLive("NODE_ENV=production without AUTH_TOKEN logs a warning at startup; with it, none", () =>
    Effect.gen(function* () {
      const fake = yield* FakeAnthropicScoped
      const env = { NODE_ENV: "production", CLAUDE_API_KEY: TEST_API_KEY, CLAUDE_BASE_URL: fake.url }
      const open = yield* spawnService({ ...env, DATABASE_URL: yield* freshDatabase })
      const warning = yield* awaitLine(open, (line) => line.includes("AUTH_TOKEN is not set"))
      expect(JSON.parse(warning)).toMatchObject({ level: "warn" })
      yield* awaitHealthy(open)

      const guarded = yield* spawnHealthyService({ ...env, DATABASE_URL: yield* freshDatabase, AUTH_TOKEN: TOKEN })
      expect((yield* get(`${guarded.url}/api/projects`)).status).toBe(401)
      expect(guarded.output()).not.toContain("AUTH_TOKEN is not set")
    }), 90_000)
})
