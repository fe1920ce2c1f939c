/**
 * Issue 4, hostile and broken input: a property-based fuzz of the chat socket. Thousands of
 * frames (random text, binary frames, JSON of every wrong shape, wrong field types, blank and
 * oversized content, bad cancel ids, extra fields, deep nesting, frames around the byte
 * limit) interleaved with valid pings and chat messages, against the live service (the real
 * SDK against an instant fake Anthropic server).
 *
 * Each frame is followed by a `ping` fence: the events between the previous fence's pong
 * and this one are the frame's replies (frames of one connection are handled in order).
 * An oracle written from the README says what each frame must get. Afterwards the
 * connection and the server are alive and PostgreSQL holds exactly the accepted messages.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import fc from "fast-check"
import { randomUUID } from "node:crypto"
import { eventually, newProject, startClaudeApp, storedMessages, TEST_API_KEY } from "./support/ChatApp.js"
import type { ServerEvent } from "./support/ChatClient.js"
import { FakeRouterScoped } from "./support/FakeRouter.js"
import { get } from "./support/Http.js"
import { RawSocket } from "./support/RawSocket.js"
import { report } from "./support/Report.js"

const MAX_MESSAGE_CHARS = 200
/** What the README promises: a frame over the byte limit is MESSAGE_TOO_LARGE; the service allows 6 bytes a character plus an envelope. */
const MAX_FRAME_BYTES = MAX_MESSAGE_CHARS * 6 + 4096
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

type Expected =
  | { readonly _tag: "pong" }
  | { readonly _tag: "error"; readonly codes: ReadonlyArray<string> }
  | {
    readonly _tag: "chat"
    readonly content: string
    readonly clientMessageId: string | undefined
    /** Error codes that are an acceptable answer instead of accepting it (text PostgreSQL cannot store: NUL). */
    readonly orCodes: ReadonlyArray<string>
  }
  | { readonly _tag: "none" }

interface Frame {
  readonly label: string
  readonly data: string | Buffer
}

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

/** The README's rules, applied in the service's documented order. */
const oracle = (data: string | Buffer): Expected => {
  if (Buffer.isBuffer(data)) return { _tag: "error", codes: ["INVALID_MESSAGE"] }
  // What the server receives: ws sends UTF-8, lone surrogates become U+FFFD.
  const text = Buffer.from(data, "utf8").toString("utf8")
  if (Buffer.byteLength(text, "utf8") > MAX_FRAME_BYTES) return { _tag: "error", codes: ["MESSAGE_TOO_LARGE"] }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    return { _tag: "error", codes: ["INVALID_MESSAGE"] }
  }
  if (!isRecord(json) || !["chat_message", "ping", "cancel"].includes(json["type"] as string)) {
    return { _tag: "error", codes: ["INVALID_MESSAGE"] }
  }
  const invalid = { _tag: "error", codes: ["VALIDATION_ERROR"] } as const
  switch (json["type"]) {
    case "ping":
      return { _tag: "pong" }
    case "cancel": {
      const id = json["messageId"]
      return !("messageId" in json) || (typeof id === "string" && UUID.test(id)) ? { _tag: "none" } : invalid
    }
    default: {
      const { content, timestamp, clientMessageId } = json
      if (typeof content !== "string") return invalid
      if ("timestamp" in json && typeof timestamp !== "string") return invalid
      if ("clientMessageId" in json && (typeof clientMessageId !== "string" || clientMessageId.length < 1 || clientMessageId.length > 255)) {
        return invalid
      }
      if (content.trim().length === 0) return invalid
      if (content.length > MAX_MESSAGE_CHARS) return { _tag: "error", codes: ["MESSAGE_TOO_LARGE"] }
      // PostgreSQL text cannot hold U+0000: refusing it as invalid, or storing it without, are both fine; silence is not.
      const hasNul = content.includes("\u0000") || (typeof clientMessageId === "string" && clientMessageId.includes("\u0000"))
      return { _tag: "chat", content, clientMessageId: clientMessageId as string | undefined, orCodes: hasNul ? ["VALIDATION_ERROR"] : [] }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Frames

const json = (label: string, value: unknown): Frame => ({ label, data: JSON.stringify(value) })

const nested = (depth: number, leaf: unknown): unknown => {
  let value = leaf
  for (let i = 0; i < depth; i++) value = i % 2 === 0 ? { a: value } : [value]
  return value
}

const anyText = fc.oneof(
  fc.string({ maxLength: 300 }),
  fc.fullUnicodeString({ maxLength: 300 }),
  fc.string({ unit: "binary", maxLength: 200 }),
  fc.constantFrom("", " ", "{", "}", "null", "[]", "{}", "0", "true", "\"ping\"", "{\"type\":", "\u0000", "\uD800", "{\"type\":\"ping\"")
)

const wrongValue = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.string({ maxLength: 5 }), { maxLength: 4 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.string({ maxLength: 5 }), { maxKeys: 3 })
)

const blank = fc.constantFrom("", " ", "   ", "\n", "\t\r\n ", "\u00a0", "\u2028", "\u3000 \u2003", " ".repeat(MAX_MESSAGE_CHARS + 50))

/** Text that is a plausible message: not blank, within the limit (sometimes exactly at it). */
const goodContent = fc.oneof(
  fc.string({ minLength: 1, maxLength: MAX_MESSAGE_CHARS }).filter((s) => s.trim().length > 0),
  fc.fullUnicodeString({ minLength: 1, maxLength: 90 }).filter((s) => s.trim().length > 0 && s.length <= MAX_MESSAGE_CHARS),
  fc.constantFrom("x".repeat(MAX_MESSAGE_CHARS), "Build me an inventory tracker", "é".repeat(MAX_MESSAGE_CHARS), "😀".repeat(MAX_MESSAGE_CHARS / 2))
)

const tooLong = fc
  .tuple(fc.integer({ min: MAX_MESSAGE_CHARS + 1, max: MAX_MESSAGE_CHARS + 600 }), fc.constantFrom("a", "é", "😀", " b"))
  .map(([n, unit]) => unit.repeat(Math.ceil(n / unit.length)).slice(0, n))

let sequence = 0
const uniqueId = () => `fuzz-${process.pid}-${++sequence}-${randomUUID().slice(0, 8)}`

/** The frame kinds, most of them wrong. Valid chat messages get a unique clientMessageId at send time. */
type Item =
  | Frame
  | { readonly _tag: "valid_chat"; readonly content: string }
  | { readonly _tag: "resend"; readonly pick: number }

const isFrame = (item: Item): item is Frame => "data" in item

const frameArb = (otherProjectId: string): fc.Arbitrary<Item> =>
  fc.oneof(
    { weight: 8, arbitrary: anyText.map((s): Frame => ({ label: "random text", data: s })) },
    { weight: 4, arbitrary: fc.uint8Array({ maxLength: 300 }).map((b): Frame => ({ label: "binary", data: Buffer.from(b) })) },
    { weight: 1, arbitrary: fc.constant<Frame>({ label: "binary JSON", data: Buffer.from(JSON.stringify({ type: "ping" })) }) },
    { weight: 6, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => json("random JSON", v)) },
    {
      weight: 5,
      arbitrary: fc.oneof(fc.string({ maxLength: 20 }), wrongValue, fc.constantFrom("PING", "Ping", "chat", "message", "cancel ", "pong", "error")).map(
        (type) => json("unknown type", { type })
      )
    },
    { weight: 1, arbitrary: fc.constant(json("no type", { content: "hello" })) },
    { weight: 5, arbitrary: wrongValue.map((content) => json("content of a wrong type", { type: "chat_message", content })) },
    { weight: 1, arbitrary: fc.constant(json("content missing", { type: "chat_message" })) },
    { weight: 4, arbitrary: blank.map((content) => json("blank content", { type: "chat_message", content, clientMessageId: uniqueId() })) },
    { weight: 4, arbitrary: tooLong.map((content) => json("content over the limit", { type: "chat_message", content, clientMessageId: uniqueId() })) },
    {
      weight: 3,
      arbitrary: fc.oneof(wrongValue, fc.constant(""), fc.constant("x".repeat(256))).map((clientMessageId) =>
        json("bad clientMessageId", { type: "chat_message", content: "hello", clientMessageId })
      )
    },
    { weight: 2, arbitrary: wrongValue.map((timestamp) => json("bad timestamp", { type: "chat_message", content: "hello", timestamp })) },
    {
      weight: 4,
      arbitrary: fc.oneof(wrongValue, fc.string({ maxLength: 40 }), fc.constantFrom("", "not-a-uuid", "00000000-0000-0000-0000-00000000000g")).map(
        (messageId) => json("cancel with a bad id", { type: "cancel", messageId })
      )
    },
    { weight: 3, arbitrary: fc.uuid().map((messageId) => json("cancel (valid, unknown id)", { type: "cancel", messageId })) },
    { weight: 2, arbitrary: fc.constant(json("cancel (no id)", { type: "cancel" })) },
    {
      weight: 3,
      arbitrary: fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 }).map((extra) =>
        json("ping with extra fields", { ...extra, type: "ping" })
      )
    },
    {
      weight: 3,
      arbitrary: fc.integer({ min: 1, max: 1_500 }).chain((depth) =>
        fc.constantFrom(
          json("deeply nested content", { type: "chat_message", content: nested(depth, "x") }),
          json("deeply nested array", nested(depth, { type: "ping" })),
          json("deeply nested cancel id", { type: "cancel", messageId: nested(depth, 1) })
        )
      )
    },
    {
      weight: 3,
      arbitrary: fc.integer({ min: MAX_FRAME_BYTES - 80, max: MAX_FRAME_BYTES + 80 }).map((size) => {
        // A frame of about `size` bytes: a ping padded with an extra field, around the byte limit.
        const envelope = JSON.stringify({ type: "ping", pad: "" }).length
        return json(`ping padded to ${size} bytes`, { type: "ping", pad: "p".repeat(Math.max(0, size - envelope)) })
      })
    },
    {
      weight: 2,
      arbitrary: fc.integer({ min: MAX_FRAME_BYTES + 1, max: 200_000 }).map((size) => ({ label: `huge text frame (${size} bytes)`, data: "z".repeat(size) }))
    },
    { weight: 1, arbitrary: fc.constant(json("chat for another project", { type: "chat_message", content: "not for you", projectId: otherProjectId })) },
    { weight: 1, arbitrary: fc.constant(json("prototype keys", JSON.parse("{\"type\":\"ping\",\"__proto__\":{\"type\":\"chat_message\"},\"constructor\":1}"))) },
    { weight: 1, arbitrary: fc.constant<Frame>({ label: "NUL in content", data: JSON.stringify({ type: "chat_message", content: "a\u0000b", clientMessageId: "nul" }) }) },
    { weight: 5, arbitrary: fc.constant<Frame>({ label: "valid ping", data: "{\"type\":\"ping\"}" }) },
    { weight: 7, arbitrary: goodContent.map((content): Item => ({ _tag: "valid_chat", content })) },
    { weight: 1, arbitrary: fc.nat().map((pick): Item => ({ _tag: "resend", pick })) }
  )

/** Replies that belong to answers streaming meanwhile, not to the frame just sent. */
const isAnswerTraffic = (e: ServerEvent) =>
  e.type === "message_chunk" || e.type === "message_complete" || e.type === "project_updated" ||
  (e.type === "error" && e.messageId !== undefined)

describe("fuzz", () => {
  it.scopedLive(
    "thousands of random and malformed frames: each gets its reply, the connection and the server survive, the database holds exactly the accepted messages",
    () =>
      Effect.gen(function* () {
        const fake = yield* FakeRouterScoped()
        fake.setChatDefault({ kind: "text", chunks: ["Sure", ", ", "done."] })
        // Thousands of frames in a few minutes: far more chat messages than the default rate limit allows.
        const app = yield* startClaudeApp(fake, { MAX_MESSAGE_CHARS: String(MAX_MESSAGE_CHARS), LOG_LEVEL: "error", WS_MESSAGES_PER_MINUTE: "100000" })
        const project = yield* newProject(app, "Fuzz")
        const other = yield* newProject(app, "Other")
        const url = `${app.wsUrl}/ws/chat?projectId=${project.id}`

        const accepted = new Map<string, string>() // userMessageId → content the server received
        const answers = new Map<string, string>() // answer messageId → its userMessageId
        let validWhileIdle = 0
        const sentIds: Array<{ readonly clientMessageId: string; readonly content: string }> = []
        let frames = 0
        let busy = 0
        let acknowledged = 0
        const answerErrors: Array<ServerEvent> = []
        const sockets: Array<RawSocket> = []

        const run = async (items: ReadonlyArray<Item>) => {
          const socket = await RawSocket.open(url)
          sockets.push(socket)
          const mine: Array<string> = [] // answers this connection started
          const ended = (id: string) =>
            socket.events.some((e) => (e.type === "message_complete" || e.type === "error") && e.messageId === id)
          try {
            for (const item of items) {
              let frame: Frame
              if (isFrame(item)) {
                frame = item
              } else if (item._tag === "valid_chat") {
                const clientMessageId = uniqueId()
                sentIds.push({ clientMessageId, content: item.content })
                frame = json("valid chat", { type: "chat_message", content: item.content, clientMessageId, timestamp: new Date().toISOString() })
              } else {
                const previous = sentIds[item.pick % Math.max(1, sentIds.length)]
                frame = previous === undefined
                  ? { label: "valid ping", data: "{\"type\":\"ping\"}" }
                  : json("resend", { type: "chat_message", content: previous.content, clientMessageId: previous.clientMessageId })
              }
              const expected = oracle(frame.data)
              // BUSY is the right answer only while an answer of the project is streaming (as far as this
              // connection has seen: its end may still be on the way). Otherwise a valid message is accepted.
              const streamingAtSend = mine.some((id) => !ended(id))
              if (expected._tag === "chat" && !streamingAtSend) validWhileIdle++
              const before = socket.events.length
              const pongs = socket.pongs + (expected._tag === "pong" ? 1 : 0) + 1
              try {
                await socket.send(frame.data)
                await socket.send("{\"type\":\"ping\"}")
                await socket.awaitPongs(pongs)
              } catch (error) {
                throw new Error(`no reply to ${frame.label}: ${JSON.stringify(String(frame.data).slice(0, 300))}\n${String(error)}`)
              }
              frames++
              const all = socket.events.slice(before)
              for (const e of all) if (e.type === "error" && e.messageId !== undefined) answerErrors.push(e)
              const replies = all.filter((e) => !isAnswerTraffic(e)).slice(0, -1) // the last is the fence's pong
              const describe = `${frame.label}: ${JSON.stringify(String(frame.data).slice(0, 200))} → ${JSON.stringify(replies)}`
              switch (expected._tag) {
                case "pong":
                  expect(replies.map((e) => e.type), describe).toStrictEqual(["pong"])
                  break
                case "none":
                  expect(replies, describe).toStrictEqual([])
                  break
                case "error": {
                  expect(replies.length, describe).toBe(1)
                  const reply = replies[0]!
                  expect(reply.type === "error" && expected.codes.includes(reply.code), describe).toBe(true)
                  break
                }
                case "chat": {
                  expect(replies.length, describe).toBeGreaterThanOrEqual(1)
                  const reply = replies[0]!
                  if (reply.type === "error") {
                    expect([...(streamingAtSend ? ["BUSY"] : []), ...expected.orCodes], `${describe} (an answer streaming: ${streamingAtSend})`).toContain(reply.code)
                    expect(replies.length, describe).toBe(1)
                    if (reply.code === "BUSY") busy++
                    else validWhileIdle-- // refused for its NUL, as the oracle allows
                  } else if (reply.type === "message_start" && reply.resumed === true) {
                    // A retried clientMessageId: acknowledged, never a new message (so not one of the accepted ones).
                    expect(accepted.has(reply.userMessageId), describe).toBe(true)
                    acknowledged++
                    if (!streamingAtSend) validWhileIdle--
                  } else {
                    expect(reply.type, describe).toBe("message_start")
                    expect(replies.length, describe).toBe(1)
                    if (reply.type === "message_start") {
                      expect(accepted.has(reply.userMessageId), `a new message_start reuses a user message: ${describe}`).toBe(false)
                      accepted.set(reply.userMessageId, expected.content)
                      answers.set(reply.messageId, reply.userMessageId)
                      mine.push(reply.messageId)
                    }
                  }
                  break
                }
              }
            }
            // Every answer this connection started ends on it (the next connection starts on an idle project).
            for (const id of mine) await socket.awaitEvent((e) => (e.type === "message_complete" || e.type === "error") && e.messageId === id, `the end of answer ${id}`)
            // The connection survived all of it.
            const pongs = socket.pongs + 1
            await socket.send("{\"type\":\"ping\"}")
            await socket.awaitPongs(pongs)
            expect(socket.violations, "every server frame is a protocol event").toStrictEqual([])
            expect(socket.closeCode).toBeUndefined()
          } finally {
            await socket.close()
          }
        }

        yield* Effect.promise(() =>
          fc.assert(
            fc.asyncProperty(fc.array(frameArb(other.id), { minLength: 40, maxLength: 110 }), run),
            { numRuns: 45, endOnFailure: true }
          )
        )

        // The server survived.
        const health = yield* get(`${app.url}/health`)
        expect(health.status).toBe(200)

        // Exactly the accepted messages are stored: one user row per accepted start, with what was sent, and one answer each.
        const rows = yield* eventually(
          "no answer is still streaming",
          storedMessages(app, project.id),
          (all) => all.every((row) => row.status !== "streaming"),
          20_000
        )
        const users = rows.filter((r) => r.role === "user")
        const assistants = rows.filter((r) => r.role === "assistant")
        expect(new Set(users.map((r) => r.id))).toStrictEqual(new Set(accepted.keys()))
        for (const row of users) {
          const sent = accepted.get(row.id) ?? ""
          expect([sent, sent.replaceAll("\u0000", "")]).toContain(row.content)
        }
        // Every valid message sent while no answer streamed was accepted, and there were many.
        expect(accepted.size, "messages accepted").toBeGreaterThanOrEqual(validWhileIdle)
        expect(validWhileIdle, "valid messages sent while the project was idle").toBeGreaterThan(45)
        // One answer per accepted message, stored exactly as its connection saw it end.
        expect(new Set(assistants.map((r) => r.id))).toStrictEqual(new Set(answers.keys()))
        const ends = new Map(
          sockets.flatMap((socket) => socket.events).flatMap((e) => (e.type === "message_complete" ? [[e.messageId, e] as const] : []))
        )
        for (const row of assistants) {
          const end = ends.get(row.id)
          expect(end, `the end of answer ${row.id}`).toBeDefined()
          expect({ status: row.status, content: row.content }).toStrictEqual({ status: end?.status, content: end?.fullContent })
          expect(["complete", "cancelled"]).toContain(row.status)
          if (row.status === "complete") expect(row.content).toBe("Sure, done.")
        }
        expect(yield* storedMessages(app, other.id), "nothing reached the other project").toStrictEqual([])
        expect(answerErrors, "no answer failed").toStrictEqual([])
        for (const socket of sockets) for (const frame of socket.frames) expect(frame).not.toContain(TEST_API_KEY)
        report("fuzz", {
          frames,
          fencePings: frames,
          connections: sockets.length,
          accepted: accepted.size,
          busy,
          retriesAcknowledged: acknowledged,
          validWhileIdle,
          claudeRequests: fake.chatRequests().length
        })
        expect(frames).toBeGreaterThanOrEqual(45 * 40) // guaranteed by construction: 45 runs of at least 40 frames
      }),
    120_000
  )
})
