/**
 * The PRD's wire shapes, written independently of `src/` so that tests check what clients
 * receive rather than what the service thinks it sends. Decoding is exact: a missing, extra
 * or mistyped field fails the test.
 */
import { expect } from "@effect/vitest"
import { Schema } from "effect"
import type { HttpAnswer } from "./Http.js"

/** `Date.prototype.toISOString()` form, always UTC. */
export const ISO_TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/
export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

const IsoTimestamp = Schema.String.pipe(Schema.pattern(ISO_TIMESTAMP))
const Uuid = Schema.String.pipe(Schema.pattern(UUID))

export const WireProject = Schema.Struct({
  id: Uuid,
  title: Schema.String,
  createdAt: IsoTimestamp,
  updatedAt: IsoTimestamp
})
export type WireProject = typeof WireProject.Type

export const WireProjectSummary = Schema.Struct({
  ...WireProject.fields,
  messageCount: Schema.Int.pipe(Schema.nonNegative())
})

export const WireProjectList = Schema.Struct({ projects: Schema.Array(WireProjectSummary) })
export type WireProjectList = typeof WireProjectList.Type

export const WireCodeBlock = Schema.Struct({
  language: Schema.NullOr(Schema.String),
  code: Schema.String,
  startIndex: Schema.Int,
  endIndex: Schema.Int,
  startLine: Schema.Int,
  endLine: Schema.Int
})

const MessageStatus = Schema.Literal("complete", "streaming", "cancelled", "error", "interrupted")

export const WireUserMessage = Schema.Struct({
  id: Uuid,
  role: Schema.Literal("user"),
  content: Schema.String,
  status: MessageStatus,
  createdAt: IsoTimestamp
})

const TokenCount = Schema.Int.pipe(Schema.nonNegative())

/** Issue 14: tokens an answer (or a whole project) cost. */
export const WireUsage = Schema.Struct({
  inputTokens: TokenCount,
  outputTokens: TokenCount,
  cacheReadInputTokens: TokenCount,
  cacheCreationInputTokens: TokenCount
})

export const WireAssistantMessage = Schema.Struct({
  id: Uuid,
  role: Schema.Literal("assistant"),
  content: Schema.String,
  status: MessageStatus,
  codeBlocks: Schema.Array(WireCodeBlock),
  // Additive (issue 14): Claude's stop reason, continuations taken, usage (null when none).
  stopReason: Schema.NullOr(Schema.String),
  continuations: TokenCount,
  usage: Schema.NullOr(WireUsage),
  createdAt: IsoTimestamp
})

export const WireProjectWithMessages = Schema.Struct({
  ...WireProject.fields,
  messages: Schema.Array(Schema.Union(WireUserMessage, WireAssistantMessage)),
  /** Additive (issue 14): the project's token totals. */
  usage: WireUsage
})
export type WireProjectWithMessages = typeof WireProjectWithMessages.Type

export const WireHealth = Schema.Struct({
  status: Schema.Literal("healthy", "unhealthy", "draining"),
  database: Schema.Literal("connected", "disconnected"),
  bus: Schema.Literal("up", "down"),
  model: Schema.Literal("claude", "demo"),
  cluster: Schema.Struct({ instanceId: Schema.String, peers: Schema.Int }),
  timestamp: IsoTimestamp
})

export const WireError = Schema.Struct({ error: Schema.String.pipe(Schema.minLength(1)), code: Schema.String })

/** Decodes `json` against `schema`, refusing any field the schema does not name. */
export const decodeExact = <A, I>(schema: Schema.Schema<A, I>, json: unknown): A =>
  Schema.decodeUnknownSync(schema, { onExcessProperty: "error" })(json)

/** Asserts the PRD error shape: exactly `{error, code}`, with this status and code. */
export const expectError = (answer: HttpAnswer, status: number, code: string): void => {
  expect({ status: answer.status, body: answer.json }).toStrictEqual({
    status,
    body: { error: expect.stringMatching(/\S/), code }
  })
  expect(answer.headers.get("content-type")).toMatch(/^application\/json/)
  decodeExact(WireError, answer.json)
}
