/**
 * Answers that always finish (issue 11), through the chat service's interface on a
 * scripted Claude: continuation after max_tokens and after transient failures, within
 * their bounds; `continue` on request; answers a restart cut, continued at the next start;
 * and the seams (repeats trimmed, code blocks across a seam found as one). Every request
 * a continuation sends ends with a user turn (no prefill).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Schedule } from "effect"
import type { CompletionRequest } from "../src/claude/Claude.js"
import { CONTINUE_INSTRUCTION, MIN_OVERLAP, overlapLength } from "../src/chat/Seams.js"
import type { MessageId, ProjectId } from "../src/domain/Ids.js"
import { memorySubscriber, type Received, startChatService } from "./support/ChatService.js"

type Service = Effect.Effect.Success<ReturnType<typeof startChatService>>

const ask = (content: string) => ({ type: "chat_message" as const, content })

/** Rebuilds a message from chunks by `offset`, failing on any gap or overlap; catch-up chunks restart at 0. */
const assemble = (chunks: ReadonlyArray<Received>): string => {
  let text = ""
  for (const chunk of chunks) {
    const offset = Number(chunk["offset"])
    if (offset === 0 && text.length > 0) {
      expect(String(chunk["content"]).startsWith(text), "a catch-up chunk holds the text so far").toBe(true)
      text = String(chunk["content"])
      continue
    }
    expect(offset, "each chunk starts where the text so far ends").toBe(text.length)
    text += String(chunk["content"])
  }
  return text
}

const expectSeqContinuous = (chunks: ReadonlyArray<Received>) =>
  expect(chunks.map((c) => c["seq"])).toEqual(chunks.map((_, i) => Number(chunks[0]?.["seq"]) + i))

const expectContinuation = (request: CompletionRequest | undefined, partial: string) => {
  const messages = request?.messages ?? []
  expect(messages.at(-1), "a continuation ends with the user's instruction, never with the assistant").toEqual({
    role: "user",
    content: CONTINUE_INSTRUCTION
  })
  expect(messages.at(-2)).toEqual({ role: "assistant", content: partial })
}

interface Row {
  readonly content: string
  readonly status: string
  readonly stopReason: string | null
  readonly continuations: number
}

const answerRow = (service: Service, id: unknown) =>
  service.sql<Row>`SELECT content, status, stop_reason, continuations FROM messages WHERE id = ${String(id)}`.pipe(
    Effect.orDie,
    Effect.map((rows) => rows[0])
  )

const started = (service: Service, env: { readonly content?: string } = {}) =>
  Effect.gen(function* () {
    const projectId = yield* service.newProject
    const listener = memorySubscriber()
    yield* service.chat.connect(projectId, listener.subscriber)
    yield* service.chat.send(projectId, ask(env.content ?? "build me a big app"), listener.subscriber)
    const [start] = yield* listener.waitFor("message_start")
    return { projectId, listener, messageId: start?.["messageId"] as MessageId }
  })

describe("continuation after max_tokens", () => {
  it.scopedLive("continues until end_turn: one start, seq and offset continue, one complete with the last stop reason", () =>
    Effect.gen(function* () {
      const service = yield* startChatService({ CLAUDE_MAX_CONTINUATIONS: "3" })
      const { listener, messageId } = yield* started(service)
      const parts = ["Here is part one of a long answer. ", "And here, part two, goes on. ", "Part three ends it."]
      for (const [index, part] of parts.entries()) {
        const answer = yield* service.claude.nextAnswer
        if (index > 0) expectContinuation(answer.request, parts.slice(0, index).join(""))
        answer.delta(part)
        answer.finish(index < parts.length - 1 ? "max_tokens" : "end_turn")
      }
      const [complete] = yield* listener.waitFor("message_complete")
      const chunks = listener.ofType("message_chunk")
      expect(listener.ofType("message_start")).toHaveLength(1)
      expectSeqContinuous(chunks)
      expect(assemble(chunks)).toBe(parts.join(""))
      expect(complete).toMatchObject({ fullContent: parts.join(""), status: "complete", stopReason: "end_turn", continuations: 2 })
      expect(yield* answerRow(service, messageId)).toEqual({ content: parts.join(""), status: "complete", stopReason: "end_turn", continuations: 2 })
    }))

  it.scopedLive("stops at CLAUDE_MAX_CONTINUATIONS whatever Claude answers: complete with stopReason max_tokens", () =>
    Effect.gen(function* () {
      const service = yield* startChatService({ CLAUDE_MAX_CONTINUATIONS: "1" })
      const { listener, messageId } = yield* started(service)
      for (const part of ["one ", "two "]) {
        const answer = yield* service.claude.nextAnswer
        answer.delta(part)
        answer.finish("max_tokens")
      }
      const [complete] = yield* listener.waitFor("message_complete")
      expect(complete).toMatchObject({ fullContent: "one two ", stopReason: "max_tokens", continuations: 1 })
      expect(service.claude.requests).toHaveLength(2)
      expect((yield* answerRow(service, messageId))?.stopReason).toBe("max_tokens")
    }))
})

describe("continuation after transient failures", () => {
  it.scopedLive("an overloaded stream mid-answer is continued from its text and completes; the retry bound is kept", () =>
    Effect.gen(function* () {
      const service = yield* startChatService({ CLAUDE_STREAM_RETRIES: "2" })
      const { listener, messageId } = yield* started(service)
      const first = yield* service.claude.nextAnswer
      first.delta("Half of it, ")
      first.fail("AI_OVERLOADED")
      const second = yield* service.claude.nextAnswer
      expectContinuation(second.request, "Half of it, ")
      second.delta("then a cut, ")
      second.fail("AI_TIMEOUT")
      const third = yield* service.claude.nextAnswer
      third.delta("and the rest.")
      third.finish()
      const [complete] = yield* listener.waitFor("message_complete")
      expect(complete).toMatchObject({ fullContent: "Half of it, then a cut, and the rest.", status: "complete", continuations: 2 })
      expect(assemble(listener.ofType("message_chunk"))).toBe("Half of it, then a cut, and the rest.")
      expect(listener.ofType("error")).toEqual([])
      expect((yield* answerRow(service, messageId))?.continuations).toBe(2)
    }))

  it.scopedLive("past CLAUDE_STREAM_RETRIES the error goes out, the partial text kept; a non-transient error is never retried", () =>
    Effect.gen(function* () {
      const service = yield* startChatService({ CLAUDE_STREAM_RETRIES: "1" })
      const a = yield* started(service)
      const first = yield* service.claude.nextAnswer
      first.delta("kept ")
      first.fail("AI_OVERLOADED")
      const second = yield* service.claude.nextAnswer
      second.fail("AI_OVERLOADED")
      const [error] = yield* a.listener.waitFor("error")
      expect(error).toMatchObject({ code: "AI_OVERLOADED", messageId: a.messageId })
      expect(yield* answerRow(service, a.messageId)).toMatchObject({ status: "error", content: "kept ", continuations: 1 })

      const b = yield* started(service)
      const refused = yield* service.claude.nextAnswer
      refused.fail("AI_AUTH_ERROR")
      const [authError] = yield* b.listener.waitFor("error")
      expect(authError).toMatchObject({ code: "AI_AUTH_ERROR" })
      expect(service.claude.requests, "2 for the first answer, 1 for the second").toHaveLength(3)
    }))
})

describe("seams", () => {
  it("overlapLength finds the longest repeat of at least MIN_OVERLAP characters, and ignores shorter coincidences", () => {
    const previous = "The quick brown fox jumps over the lazy dog and keeps running"
    expect(overlapLength(previous, "over the lazy dog and keeps running far away")).toBe(35)
    expect(overlapLength(previous, "running far away")).toBe(0)
    expect(overlapLength(previous, previous.slice(-MIN_OVERLAP) + "!")).toBe(MIN_OVERLAP)
    expect(overlapLength(previous, previous.slice(-(MIN_OVERLAP - 1)) + "!")).toBe(0)
    expect(overlapLength("", "anything")).toBe(0)
  })

  it.scopedLive("a continuation that repeats the end of the answer is trimmed; a code block across the seam is one block", () =>
    Effect.gen(function* () {
      const service = yield* startChatService()
      const { listener } = yield* started(service)
      const partOne = "Here is the app:\n\n```python\ndef add(items, name):\n    items.append(name)\n"
      const first = yield* service.claude.nextAnswer
      first.delta(partOne)
      first.finish("max_tokens")
      const second = yield* service.claude.nextAnswer
      // Claude repeats the last line before going on (more than MIN_OVERLAP characters).
      second.delta("    items.append(")
      second.delta("name)\n    return items\n```\n\nRun it.")
      second.finish()
      const [complete] = yield* listener.waitFor("message_complete")
      const full = "Here is the app:\n\n```python\ndef add(items, name):\n    items.append(name)\n    return items\n```\n\nRun it."
      expect(complete?.["fullContent"]).toBe(full)
      expect(assemble(listener.ofType("message_chunk"))).toBe(full)
      expect(complete?.["codeBlocks"]).toMatchObject([
        { language: "python", code: "def add(items, name):\n    items.append(name)\n    return items\n" }
      ])
    }))
})

describe("continue on request", () => {
  it.scopedLive("a cancelled answer continues under the same id: resumed start with the text so far, then to complete", () =>
    Effect.gen(function* () {
      const service = yield* startChatService()
      const { projectId, listener, messageId } = yield* started(service)
      const first = yield* service.claude.nextAnswer
      first.delta("So far, ")
      yield* listener.waitFor("message_chunk")
      yield* service.chat.cancel(projectId, messageId)
      yield* listener.waitFor("message_complete")

      const other = memorySubscriber()
      yield* service.chat.connect(projectId, other.subscriber)
      yield* service.chat.continueAnswer(projectId, { type: "continue", messageId }, listener.subscriber)
      // Repeated while it runs: a catch-up for the sender, not a second answer.
      const repeat = memorySubscriber()
      yield* service.chat.continueAnswer(projectId, { type: "continue", messageId }, repeat.subscriber)
      expect(repeat.received.map((e) => e.type)).toEqual(["message_start", "message_chunk"])
      const second = yield* service.claude.nextAnswer
      expectContinuation(second.request, "So far, ")
      second.delta("so good.")
      second.finish()
      const [, complete] = yield* listener.waitFor("message_complete", 2)
      expect(complete).toMatchObject({ messageId, fullContent: "So far, so good.", status: "complete", continuations: 1 })
      expect(other.received[0]).toMatchObject({ type: "message_start", messageId, resumed: true })
      expect(assemble(other.ofType("message_chunk"))).toBe("So far, so good.")
      expect(yield* answerRow(service, messageId)).toMatchObject({ content: "So far, so good.", status: "complete", continuations: 1 })
    }))

  it.scopedLive("only the latest answer, and only one that did not finish, can be continued; a running answer makes it BUSY", () =>
    Effect.gen(function* () {
      const service = yield* startChatService()
      const { projectId, listener, messageId } = yield* started(service)
      const running = yield* service.claude.nextAnswer
      const busy = yield* Effect.exit(service.chat.continueAnswer(projectId, { type: "continue", messageId: crypto.randomUUID() as MessageId }, listener.subscriber))
      expect(busy).toMatchObject(Exit.fail(expect.objectContaining({ code: "BUSY" })))
      running.delta("done")
      running.finish("end_turn")
      yield* listener.waitFor("message_complete")
      const finished = yield* Effect.exit(service.chat.continueAnswer(projectId, { type: "continue", messageId }, listener.subscriber))
      expect(finished).toMatchObject(Exit.fail(expect.objectContaining({ code: "VALIDATION_ERROR" })))
      const unknown = yield* Effect.exit(
        service.chat.continueAnswer(projectId, { type: "continue", messageId: crypto.randomUUID() as MessageId }, listener.subscriber)
      )
      expect(unknown).toMatchObject(Exit.fail(expect.objectContaining({ code: "VALIDATION_ERROR" })))
      expect(service.claude.requests).toHaveLength(1)
      // The project is not left reserved by the refusals.
      yield* service.chat.send(projectId, ask("next"), listener.subscriber)
      const next = yield* service.claude.nextAnswer
      next.finish()
      yield* listener.waitFor("message_complete", 2)
    }))
})

describe("answers cut by a restart", () => {
  const seed = (service: Service, projectId: ProjectId, answer: { status: string; content: string; age: string; continuations?: number }) =>
    Effect.gen(function* () {
      yield* service.sql`INSERT INTO messages (project_id, role, content, status) VALUES (${projectId}, 'user', 'question', 'complete')`
      const rows = yield* service.sql<{ id: string }>`INSERT INTO messages (project_id, role, content, status, error_code, continuations, updated_at)
        VALUES (${projectId}, 'assistant', ${answer.content}, ${answer.status},
                ${answer.status === "interrupted" ? "INTERRUPTED" : null}, ${answer.continuations ?? 0}, NOW() - ${answer.age}::interval)
        RETURNING id`
      return rows[0]!.id
    }).pipe(Effect.orDie)

  it.scopedLive("a recent answer left streaming or interrupted is continued at the next start; an old one only marked interrupted", () =>
    Effect.gen(function* () {
      const before = yield* startChatService()
      const crashed = yield* before.newProject
      const shutDown = yield* before.newProject
      const old = yield* before.newProject
      const crashedId = yield* seed(before, crashed, { status: "streaming", content: "Checkpointed text, ", age: "2 seconds" })
      const shutDownId = yield* seed(before, shutDown, { status: "interrupted", content: "Cut by a deploy, ", age: "5 seconds" })
      const oldId = yield* seed(before, old, { status: "streaming", content: "Long ago", age: "1 hour" })

      const after = yield* startChatService({ DATABASE_URL: before.databaseUrl, RESUME_INTERRUPTED_WITHIN_SECONDS: "600" })
      const listener = memorySubscriber()
      yield* after.chat.connect(crashed, listener.subscriber)
      expect(listener.received.slice(0, 2)).toMatchObject([
        { type: "message_start", messageId: crashedId, resumed: true },
        { type: "message_chunk", content: "Checkpointed text, ", offset: 0 }
      ])
      const answers = [yield* after.claude.nextAnswer, yield* after.claude.nextAnswer]
      for (const answer of answers) {
        const partial = answer.request.messages.at(-2)?.content
        expect(["Checkpointed text, ", "Cut by a deploy, "]).toContain(partial)
        expectContinuation(answer.request, partial ?? "")
        answer.delta("finished.")
        answer.finish()
      }
      yield* listener.waitFor("message_complete")
      expect(assemble(listener.ofType("message_chunk"))).toBe("Checkpointed text, finished.")
      expect(yield* answerRow(after, crashedId)).toEqual({ content: "Checkpointed text, finished.", status: "complete", stopReason: "end_turn", continuations: 1 })
      yield* answerRow(after, shutDownId).pipe(
        Effect.repeat({ until: (row) => row?.status !== "streaming", schedule: Schedule.spaced("20 millis") })
      )
      const deployed = yield* answerRow(after, shutDownId)
      expect(deployed).toMatchObject({ content: "Cut by a deploy, finished.", status: "complete" })
      expect(yield* answerRow(after, oldId)).toMatchObject({ content: "Long ago", status: "interrupted" })
      expect(after.claude.requests, "the old answer was not continued").toHaveLength(2)
    }))
})
