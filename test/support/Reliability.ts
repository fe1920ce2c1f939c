/**
 * Helpers for the reliability suites: assembling an answer from chunks the way the README
 * tells a frontend to (by `offset`, dropping duplicates), checking one connection's view of
 * one answer, and checking that no secret reached a client.
 */
import { expect } from "@effect/vitest"
import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Context, Effect, Layer, Redacted } from "effect"
import type { ChatClient, MessageChunk, MessageStart, ServerEvent } from "./ChatClient.js"

export interface ChunkLike {
  readonly seq: number
  readonly offset: number
  readonly content: string
}

/**
 * A client's copy of an answer, merged by `offset` as the README describes: a chunk that
 * ends within what is already there is a duplicate (dropped; it must agree with the text),
 * a chunk that starts beyond the end is a gap (a lost chunk), anything else extends the text.
 * A catch-up chunk (offset 0) therefore replaces what was there.
 */
export class Assembler {
  text = ""
  duplicates = 0
  readonly problems: Array<string> = []

  apply(chunk: ChunkLike): void {
    const { offset, content } = chunk
    if (offset > this.text.length) {
      this.problems.push(`gap: chunk seq ${chunk.seq} at offset ${offset}, but only ${this.text.length} characters so far`)
      return
    }
    const overlap = this.text.slice(offset, offset + content.length)
    if (!content.startsWith(overlap)) {
      this.problems.push(`mismatch: chunk seq ${chunk.seq} at offset ${offset} disagrees with the text already assembled`)
      return
    }
    if (offset + content.length <= this.text.length) {
      this.duplicates++
      return
    }
    this.text = this.text.slice(0, offset) + content
  }

  applyAll(chunks: Iterable<ChunkLike>): this {
    for (const chunk of chunks) this.apply(chunk)
    return this
  }
}

/** Chunks of `messageId` a client has received so far, in arrival order. */
export const chunksOf = (client: ChatClient, messageId: string): ReadonlyArray<MessageChunk> =>
  client.events.filter((e): e is MessageChunk => e.type === "message_chunk" && e.messageId === messageId)

/** Events about `messageId` (start, chunks, complete, error), in arrival order. */
export const answerEvents = (client: ChatClient, messageId: string): ReadonlyArray<ServerEvent> =>
  client.events.filter(
    (e) =>
      (e.type === "message_start" || e.type === "message_chunk" || e.type === "message_complete" || e.type === "error") &&
      e.messageId === messageId
  )

/** Sends a chat message and returns the `message_start` of the new answer (not a resumed one). */
export const startAnswer = (client: ChatClient, content: string, extra: Record<string, unknown> = {}, timeoutMs = 20_000) =>
  Effect.zipRight(
    client.chat(content, extra),
    client.next((e): e is MessageStart => e.type === "message_start" && e.resumed !== true, timeoutMs, "the message_start of a new answer")
  )

/** Waits until a client has seen chunk `seq` (or a later one) of `messageId`. */
export const seenChunk = (client: ChatClient, messageId: string, seq: number, timeoutMs = 15_000) =>
  client.eventually(
    (e) => e.type === "message_chunk" && e.messageId === messageId && e.seq >= seq,
    timeoutMs,
    `chunk ${seq} of ${messageId}`
  )

/**
 * One connection's view of one answer must be exact, with no reconnect in between:
 * `message_start` first (resumed or not as expected), then at most one catch-up chunk at
 * offset 0 (only when resumed), then live chunks whose seq goes up by one and whose
 * offsets are contiguous, then exactly one end event. Returns the assembled text and the
 * catch-up chunk's seq.
 */
export const expectExactView = (
  events: ReadonlyArray<ServerEvent>,
  options: {
    readonly resumed: boolean
    readonly messageId: string
    /** Whether the first chunk must be a catch-up (default: when resumed); false when nothing was generated at the join. */
    readonly catchUp?: boolean
  }
): { readonly text: string; readonly catchUpSeq: number | undefined } => {
  const [start, ...rest] = events
  expect(start?.type, `first event of ${options.messageId}`).toBe("message_start")
  if (start?.type === "message_start") {
    expect(start.resumed === true, "message_start.resumed").toBe(options.resumed)
  }
  const end = rest.at(-1)
  expect(end?.type === "message_complete" || end?.type === "error", "the answer ends with message_complete or error").toBe(true)
  const chunks = rest.slice(0, -1)
  let text = ""
  let seq = 0
  let catchUpSeq: number | undefined
  chunks.forEach((chunk, index) => {
    expect(chunk.type).toBe("message_chunk")
    if (chunk.type !== "message_chunk") return
    if (index === 0 && (options.catchUp ?? options.resumed)) {
      expect(chunk.offset, "catch-up chunk offset").toBe(0)
      catchUpSeq = chunk.seq
      seq = chunk.seq
      text = chunk.content
      return
    }
    expect({ seq: chunk.seq, offset: chunk.offset }, `live chunk ${index}`).toStrictEqual({ seq: seq + 1, offset: text.length })
    seq = chunk.seq
    text += chunk.content
  })
  if (end?.type === "message_complete") expect(end.fullContent, "fullContent equals the chunks").toBe(text)
  return { text, catchUpSeq }
}

/** Every frame any of these clients received, checked for the secret. */
export const expectNoSecret = (secret: string, clients: Iterable<ChatClient>, extra: Iterable<string> = []) =>
  Effect.sync(() => {
    let frames = 0
    for (const client of clients) {
      for (const frame of client.frames) {
        frames++
        if (frame.includes(secret)) expect.fail(`a frame sent to a client carries the API key: ${frame}`)
      }
    }
    for (const text of extra) if (text.includes(secret)) expect.fail("the API key appears in output")
    return frames
  })

/** `n` chunks of distinct, recognisable text (so a repeated or missing one changes the text). */
export const numberedChunks = (n: number, prefix = "c") =>
  Array.from({ length: n }, (_, i) => `${prefix}${String(i + 1).padStart(3, "0")} `)

/** A client straight to `databaseUrl` (not through any proxy the service uses), for the test's own reads. */
export const directSql = (databaseUrl: string) =>
  Effect.map(
    Layer.build(PgClient.layer({ url: Redacted.make(databaseUrl), maxConnections: 2 })),
    (context) => Context.get(context, SqlClient.SqlClient)
  )

/** One message row read with `sql`: status and content, or undefined. */
export const messageRow = (sql: SqlClient.SqlClient, messageId: string) =>
  sql<{ status: string; content: string }>`SELECT status, content FROM messages WHERE id = ${messageId}`.pipe(
    Effect.map((rows) => rows[0]),
    Effect.orDie
  )

/** What a client assembled by `offset` (a catch-up chunk at 0 restarts it), failing on any gap or overlap. */
export const assembled = (chunks: ReadonlyArray<MessageChunk>): string => {
  let text = ""
  for (const chunk of chunks) {
    if (chunk.offset === 0 && text.length > 0) {
      expect(chunk.content.startsWith(text), "a catch-up holds the text so far").toBe(true)
      text = chunk.content
      continue
    }
    expect(chunk.offset, "each chunk starts where the text so far ends").toBe(text.length)
    text += chunk.content
  }
  return text
}

/** The space-separated tokens of a text. */
export const tokens = (text: string) => text.split(" ").filter((token) => token !== "")

/** Numbered tokens in order, each exactly once: `c001 c002 …` then `d001 …`. */
export const expectTokens = (text: string, ...series: ReadonlyArray<ReadonlyArray<string>>) =>
  expect(tokens(text)).toEqual(series.flat().map((token) => token.trim()))
