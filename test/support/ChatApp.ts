/**
 * Helpers for the chat suites: the service configured against a fake Anthropic server (or
 * the demo model), projects through the REST API, and what PostgreSQL holds.
 */
import { expect } from "@effect/vitest"
import { Effect } from "effect"
import { connect } from "./ChatClient.js"
import type { FakeReply } from "./FakeAnthropic.js"
import { type FakeRouter, FakeRouterScoped } from "./FakeRouter.js"
import { get, sendJson } from "./Http.js"
import { startTestApp, type TestApp } from "./TestApp.js"
import { decodeExact, WireProject, WireProjectWithMessages } from "./Wire.js"

/** Never a real key; the tests check it never reaches a client. */
export const TEST_API_KEY = "sk-ant-test-key"

/**
 * Env for the real SDK against a fake server. Shutdown is kept short so teardown is bounded.
 * Mid-answer failures end the answer at once (no continuation), so that the error suites
 * see each failure itself; the continuation suite sets CLAUDE_STREAM_RETRIES itself.
 */
export const claudeEnv = (fake: Pick<FakeRouter, "url">, env: Record<string, string> = {}): Record<string, string> => ({
  CLAUDE_API_KEY: TEST_API_KEY,
  CLAUDE_BASE_URL: fake.url,
  CLAUDE_MAX_RETRIES: "1",
  CLAUDE_STREAM_RETRIES: "0",
  SHUTDOWN_GRACE_SECONDS: "1",
  ...env
})

/** The service answered by the fake. */
export const startClaudeApp = (fake: Pick<FakeRouter, "url">, env: Record<string, string> = {}) =>
  startTestApp(claudeEnv(fake, env))

/** The service answered by the offline demo model (no CLAUDE_API_KEY). */
export const startDemoApp = (env: Record<string, string> = {}) =>
  startTestApp({ SHUTDOWN_GRACE_SECONDS: "1", ...env })

/** Creates a project (with a user title when given) and returns it. */
export const newProject = (app: Pick<TestApp, "url">, title?: string) =>
  Effect.gen(function* () {
    const answer = yield* sendJson("POST", `${app.url}/api/projects`, title === undefined ? {} : { title })
    expect(answer.status).toBe(201)
    return decodeExact(WireProject, answer.json)
  })

export const getProject = (app: Pick<TestApp, "url">, id: string) =>
  Effect.gen(function* () {
    const answer = yield* get(`${app.url}/api/projects/${id}`)
    expect(answer.status).toBe(200)
    return decodeExact(WireProjectWithMessages, answer.json)
  })

export interface ClaudeProjectOptions {
  /** The project's title; the default title when omitted. */
  readonly title?: string
  /** Service configuration on top of `claudeEnv`. */
  readonly env?: Record<string, string>
  /** Replies queued for the first chat requests, in order. */
  readonly replies?: ReadonlyArray<FakeReply>
  /** The reply to every title request; `FakeRouterScoped`'s default when omitted. */
  readonly titleReply?: FakeReply
}

/** A new fake, the service answered by it, and a new project. */
export const claudeProject = (options: ClaudeProjectOptions = {}) =>
  Effect.gen(function* () {
    const fake = yield* FakeRouterScoped(options.titleReply)
    fake.enqueueChat(...(options.replies ?? []))
    const app = yield* startClaudeApp(fake, options.env)
    const project = yield* newProject(app, options.title)
    return { fake, app, project }
  })

/** `claudeProject`, and a client connected to the project. */
export const claudeChat = (options: ClaudeProjectOptions = {}) =>
  Effect.gen(function* () {
    const setup = yield* claudeProject(options)
    const client = yield* connect(setup.app.wsUrl, setup.project.id)
    return { ...setup, client }
  })

export type ClaudeChat = Effect.Effect.Success<ReturnType<typeof claudeChat>>

export interface MessageRowView {
  readonly id: string
  readonly role: string
  readonly content: string
  readonly status: string
  readonly errorCode: string | null
  readonly stopReason: string | null
}

const COLUMNS_SQL = `id::text AS id, role, content, status, error_code AS "errorCode", stop_reason AS "stopReason"`

/** Rows of `messages` (all projects when `projectId` is omitted), oldest first. */
export const storedMessages = (app: TestApp, projectId?: string) => {
  const COLUMNS = app.sql.literal(COLUMNS_SQL)
  return (projectId === undefined
    ? app.sql<MessageRowView>`SELECT ${COLUMNS} FROM messages ORDER BY ordinal`
    : app.sql<MessageRowView>`SELECT ${COLUMNS} FROM messages
        WHERE project_id = ${projectId} ORDER BY ordinal`).pipe(Effect.orDie)
}

export const countMessages = (app: TestApp, projectId?: string) =>
  Effect.map(storedMessages(app, projectId), (rows) => rows.length)

/** Polls until `check` holds (a liveness bound, not a timing assertion). */
export const eventually = <A>(
  describe: string,
  effect: Effect.Effect<A>,
  check: (value: A) => boolean,
  timeoutMs = 20_000
): Effect.Effect<A> =>
  Effect.gen(function* () {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const value = yield* effect
      if (check(value)) return value
      if (Date.now() > deadline) return yield* Effect.dieMessage(`timed out waiting until ${describe}; last: ${JSON.stringify(value)}`)
      yield* Effect.sleep("50 millis")
    }
  })

/** Waits until the fake has no SSE response open (e.g. after the service aborted one). */
export const fakeIdle = (fake: FakeRouter, timeoutMs = 20_000) =>
  Effect.promise(() => fake.fake.idle()).pipe(
    Effect.timeoutFail({ duration: timeoutMs, onTimeout: () => new Error("the fake still has a stream open") }),
    Effect.orDie
  )

/** The code block that `opening` (a fence line) … "```" in `text` should produce, computed here independently. */
export const expectedBlock = (text: string, opening: string, language: string | null, code: string) => {
  const startIndex = text.indexOf(opening)
  if (startIndex < 0) throw new Error(`opening fence ${opening} not in the text`)
  const afterOpening = text.indexOf("\n", startIndex) + 1
  const closing = afterOpening + code.length
  if (text.slice(afterOpening, closing) !== code || !text.startsWith("```", closing)) {
    throw new Error("expectedBlock: the code must follow the opening fence line and be followed by ```")
  }
  const endIndex = closing + 3
  const lineOf = (index: number) => text.slice(0, index).split("\n").length
  return { language, code, startIndex, endIndex, startLine: lineOf(startIndex), endLine: lineOf(closing) }
}
