/**
 * The chat service through its own interface (issue 9): a scripted `Claude` layer releases
 * each delta, end or failure on command, answers are heard by in-memory subscribers, and
 * PostgreSQL is real. No sockets, no SDK, no timers: every step is deterministic, so these
 * tests prove the orchestration (busy, cancel, catch-up at every position, drain, retried
 * sends, failures) without racing anything.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import type { ProjectId } from "../src/domain/Ids.js"
import { memorySubscriber, type Received, startChatService } from "./support/ChatService.js"

type Service = Effect.Effect.Success<ReturnType<typeof startChatService>>

const chatMessage = (content: string, clientMessageId?: string) => ({
  type: "chat_message" as const,
  content,
  ...(clientMessageId === undefined ? {} : { clientMessageId })
})

interface Row {
  readonly role: string
  readonly content: string
  readonly status: string
  readonly errorCode: string | null
  readonly stopReason: string | null
}

const rows = (service: Service, projectId: ProjectId) =>
  service.sql<Row>`SELECT role, content, status, error_code, stop_reason FROM messages
    WHERE project_id = ${projectId} ORDER BY ordinal`.pipe(Effect.orDie)

/** Rebuilds a message from a subscriber's chunks by `offset`, failing on any gap or overlap. */
const assemble = (chunks: ReadonlyArray<Received>): string => {
  let text = ""
  for (const chunk of chunks) {
    expect(chunk["offset"], "each chunk starts where the text so far ends").toBe(text.length)
    text += String(chunk["content"])
  }
  return text
}

/** A new project, a subscriber connected to it, and the answer to `content` open at the scripted Claude. */
const answering = (service: Service, content: string) =>
  Effect.gen(function* () {
    const projectId = yield* service.newProject
    const sender = memorySubscriber()
    yield* service.chat.connect(projectId, sender.subscriber)
    yield* service.chat.send(projectId, chatMessage(content), sender.subscriber)
    const answer = yield* service.claude.nextAnswer
    return { projectId, sender, answer }
  })

const DELTAS = ["Here is ", "your app", ":\n\n```python\n", "print('hi')\n", "```\n", "Run it ", "with python."] as const
const FULL = DELTAS.join("")

describe("Chat service", () => {
  it.scopedLive("streams an answer to every subscriber with seq and offset, and stores it complete", () =>
    Effect.gen(function* () {
      const service = yield* startChatService()
      const projectId = yield* service.newProject
      const sender = memorySubscriber()
      const other = memorySubscriber()
      yield* service.chat.connect(projectId, sender.subscriber)
      yield* service.chat.connect(projectId, other.subscriber)
      yield* service.chat.send(projectId, chatMessage("build me an app"), sender.subscriber)
      const answer = yield* service.claude.nextAnswer
      expect(answer.request.messages).toEqual([{ role: "user", content: "build me an app" }])
      for (const delta of DELTAS) answer.delta(delta)
      answer.finish("end_turn")
      for (const listener of [sender, other]) {
        const [complete] = yield* listener.waitFor("message_complete")
        const chunks = listener.ofType("message_chunk")
        expect(chunks.map((c) => c["seq"])).toEqual(DELTAS.map((_, i) => i + 1))
        expect(assemble(chunks)).toBe(FULL)
        expect(complete).toMatchObject({ status: "complete", stopReason: "end_turn", fullContent: FULL })
        expect(complete?.["codeBlocks"]).toMatchObject([{ language: "python", code: "print('hi')\n" }])
        expect(listener.ofType("message_start")).toHaveLength(1)
      }
      expect(yield* rows(service, projectId)).toMatchObject([
        { role: "user", content: "build me an app", status: "complete" },
        { role: "assistant", content: FULL, status: "complete", stopReason: "end_turn", errorCode: null }
      ])
      expect(yield* answer.closed, "the stream ended by itself, not by an abort").toBe(false)
    }))

  it.scopedLive("a second send while an answer streams is BUSY and stores nothing; another project is not busy", () =>
    Effect.gen(function* () {
      const service = yield* startChatService()
      const projectId = yield* service.newProject
      const otherProject = yield* service.newProject
      const sender = memorySubscriber()
      const elsewhere = memorySubscriber()
      yield* service.chat.connect(projectId, sender.subscriber)
      yield* service.chat.connect(otherProject, elsewhere.subscriber)
      yield* service.chat.send(projectId, chatMessage("first"), sender.subscriber)
      const first = yield* service.claude.nextAnswer
      const busy = yield* Effect.exit(service.chat.send(projectId, chatMessage("second"), sender.subscriber))
      expect(busy).toMatchObject(Exit.fail(expect.objectContaining({ _tag: "ChatBusy", code: "BUSY" })))
      yield* service.chat.send(otherProject, chatMessage("elsewhere"), sender.subscriber)
      const second = yield* service.claude.nextAnswer
      expect(second.request.messages.at(-1)?.content, "both answers are open at the same time").toBe("elsewhere")
      first.finish()
      second.finish()
      yield* sender.waitFor("message_complete")
      yield* elsewhere.waitFor("message_complete")
      expect((yield* rows(service, projectId)).map((row) => row.content)).toEqual(["first", ""])
    }))

  it.scopedLive("cancel interrupts the pipeline: the upstream stream is aborted, the partial text stored cancelled", () =>
    Effect.gen(function* () {
      const service = yield* startChatService()
      const { projectId, sender, answer } = yield* answering(service, "go")
      answer.delta("partial ")
      answer.delta("text")
      yield* sender.waitFor("message_chunk", 2)
      const [start] = sender.ofType("message_start")
      yield* service.chat.cancel(projectId, "00000000-0000-4000-8000-000000000000" as never)
      yield* service.chat.cancel(projectId, start?.["messageId"] as never)
      expect(yield* answer.closed, "the upstream stream was aborted").toBe(true)
      const [complete] = yield* sender.waitFor("message_complete")
      expect(complete).toMatchObject({ status: "cancelled", fullContent: "partial text", stopReason: null })
      expect((yield* rows(service, projectId))[1]).toMatchObject({ status: "cancelled", content: "partial text", errorCode: "CANCELLED" })
      // The project is free again.
      yield* service.chat.send(projectId, chatMessage("again"), sender.subscriber)
      const next = yield* service.claude.nextAnswer
      next.finish()
      yield* sender.waitFor("message_complete", 2)
    }))

  it.scopedLive("a subscriber joining after any number of chunks assembles exactly the answer (catch-up, then live)", () =>
    Effect.gen(function* () {
      const service = yield* startChatService()
      const projectId = yield* service.newProject
      const sender = memorySubscriber()
      yield* service.chat.connect(projectId, sender.subscriber)
      for (let position = 0; position <= DELTAS.length; position++) {
        yield* service.chat.send(projectId, chatMessage(`question ${position}`), sender.subscriber)
        const answer = yield* service.claude.nextAnswer
        const before = sender.ofType("message_chunk").length
        for (const delta of DELTAS.slice(0, position)) answer.delta(delta)
        yield* sender.waitFor("message_chunk", before + position)
        const late = memorySubscriber()
        yield* Effect.scoped(Effect.gen(function* () {
          yield* service.chat.connect(projectId, late.subscriber)
          const [start] = late.received
          expect(start).toMatchObject({ type: "message_start", resumed: true })
          for (const delta of DELTAS.slice(position)) answer.delta(delta)
          answer.finish()
          const [complete] = yield* late.waitFor("message_complete")
          const chunks = late.ofType("message_chunk")
          expect(assemble(chunks), `joined after ${position} chunks`).toBe(FULL)
          expect(chunks.map((c) => c["seq"])).toEqual(
            position === 0 ? DELTAS.map((_, i) => i + 1) : [position, ...DELTAS.slice(position).map((_, i) => position + i + 1)]
          )
          expect(complete?.["fullContent"]).toBe(FULL)
        }))
        yield* sender.waitFor("message_complete", position + 1)
      }
    }), 60_000)

  it.scopedLive("a failure mid-answer (no retries left) keeps the partial text, stores status error with the code, and frees the project", () =>
    Effect.gen(function* () {
      const service = yield* startChatService({ CLAUDE_STREAM_RETRIES: "0" })
      const { projectId, sender, answer } = yield* answering(service, "go")
      answer.delta("half an ")
      yield* sender.waitFor("message_chunk")
      answer.fail("AI_OVERLOADED")
      const [error] = yield* sender.waitFor("error")
      const [start] = sender.ofType("message_start")
      expect(error).toMatchObject({ code: "AI_OVERLOADED", messageId: start?.["messageId"] })
      expect(sender.ofType("message_complete")).toEqual([])
      expect((yield* rows(service, projectId))[1]).toMatchObject({ status: "error", content: "half an ", errorCode: "AI_OVERLOADED" })
      // The next message's context is the conversation so far, the failed answer's partial text included.
      yield* service.chat.send(projectId, chatMessage("try again"), sender.subscriber)
      const next = yield* service.claude.nextAnswer
      expect(next.request.messages.map((m) => m.role)).toEqual(["user", "assistant", "user"])
      next.finish()
      yield* sender.waitFor("message_complete")
    }))

  it.scopedLive("a retried send (same clientMessageId) catches up while running and is acknowledged once stored, never sent twice", () =>
    Effect.gen(function* () {
      const service = yield* startChatService()
      const projectId = yield* service.newProject
      const sender = memorySubscriber()
      yield* service.chat.connect(projectId, sender.subscriber)
      yield* service.chat.send(projectId, chatMessage("hello", "client-1"), sender.subscriber)
      const answer = yield* service.claude.nextAnswer
      answer.delta("Hi ")
      yield* sender.waitFor("message_chunk")
      const retry = memorySubscriber()
      yield* service.chat.send(projectId, chatMessage("hello", "client-1"), retry.subscriber)
      expect(retry.received.map((e) => [e.type, e["resumed"] ?? false, e["content"]])).toEqual([
        ["message_start", true, undefined],
        ["message_chunk", false, "Hi "]
      ])
      answer.delta("there")
      answer.finish()
      yield* sender.waitFor("message_complete")
      const late = memorySubscriber()
      yield* service.chat.send(projectId, chatMessage("hello", "client-1"), late.subscriber)
      expect(late.received).toMatchObject([
        { type: "message_start", resumed: true },
        { type: "message_complete", status: "complete", fullContent: "Hi there" }
      ])
      expect(service.claude.requests, "Claude was asked once").toHaveLength(1)
      expect((yield* rows(service, projectId)).map((row) => row.role)).toEqual(["user", "assistant"])
    }))

  it.scopedLive("the same clientMessageId sent twice at once (a retry racing its original) gives one message and one answer, and no error", () =>
    Effect.gen(function* () {
      const service = yield* startChatService()
      const projectId = yield* service.newProject
      const first = memorySubscriber()
      const second = memorySubscriber()
      yield* service.chat.connect(projectId, first.subscriber)
      yield* service.chat.connect(projectId, second.subscriber)
      yield* Effect.all(
        [
          service.chat.send(projectId, chatMessage("once", "client-9"), first.subscriber),
          service.chat.send(projectId, chatMessage("once", "client-9"), second.subscriber)
        ],
        { concurrency: 2 }
      )
      const answer = yield* service.claude.nextAnswer
      answer.delta("only once")
      answer.finish()
      for (const listener of [first, second]) {
        const [complete] = yield* listener.waitFor("message_complete")
        expect(complete).toMatchObject({ status: "complete", fullContent: "only once" })
        expect(listener.ofType("error")).toEqual([])
        expect(listener.ofType("message_complete"), "never an early `interrupted` acknowledgement").toHaveLength(1)
      }
      expect(service.claude.requests).toHaveLength(1)
      expect((yield* rows(service, projectId)).map((row) => row.role)).toEqual(["user", "assistant"])
    }))

  it.scopedLive("past MAX_ACTIVE_ANSWERS a send gets AT_CAPACITY and nothing is stored; a finished answer frees a place", () =>
    Effect.gen(function* () {
      const service = yield* startChatService({ MAX_ACTIVE_ANSWERS: "2" })
      const [a, b, c] = [yield* service.newProject, yield* service.newProject, yield* service.newProject]
      const listener = memorySubscriber()
      for (const project of [a, b, c]) yield* service.chat.connect(project, listener.subscriber)
      yield* service.chat.send(a, chatMessage("one"), listener.subscriber)
      yield* service.chat.send(b, chatMessage("two"), listener.subscriber)
      const [first] = [yield* service.claude.nextAnswer, yield* service.claude.nextAnswer]
      const refused = yield* Effect.exit(service.chat.send(c, chatMessage("three"), listener.subscriber))
      expect(refused).toMatchObject(Exit.fail(expect.objectContaining({ _tag: "AtCapacity", code: "AT_CAPACITY" })))
      expect(yield* rows(service, c)).toEqual([])
      first?.finish()
      yield* listener.waitFor("message_complete")
      yield* service.chat.send(c, chatMessage("three, again"), listener.subscriber)
      const third = yield* service.claude.nextAnswer
      expect(third.request.messages.at(-1)?.content).toBe("three, again")
    }))

  it.scopedLive("drain lets an answer that ends within the grace period complete", () =>
    Effect.gen(function* () {
      const service = yield* startChatService()
      const { projectId, sender, answer } = yield* answering(service, "go")
      yield* service.lifecycle.startDraining
      const refused = yield* Effect.exit(service.chat.send(projectId, chatMessage("more"), sender.subscriber))
      expect(refused).toMatchObject(Exit.fail(expect.objectContaining({ code: "SHUTTING_DOWN" })))
      const draining = yield* Effect.fork(service.chat.drain("20 seconds"))
      answer.delta("done")
      answer.finish()
      yield* draining
      expect(sender.ofType("message_complete")).toMatchObject([{ status: "complete", fullContent: "done" }])
      expect(sender.closes).toEqual([{ code: 1001, reason: "going away" }])
      expect((yield* rows(service, projectId))[1]).toMatchObject({ status: "complete", content: "done" })
    }))

  it.scopedLive("drain past the grace period interrupts the answer: stored interrupted with its text, announced, sockets closed 1001", () =>
    Effect.gen(function* () {
      const service = yield* startChatService()
      const { projectId, sender, answer } = yield* answering(service, "go")
      answer.delta("so far")
      yield* sender.waitFor("message_chunk")
      // The answer never ends by itself (a stall): only the drain's interruption ends it.
      yield* service.chat.drain("100 millis")
      expect(yield* answer.closed).toBe(true)
      expect(sender.ofType("message_complete")).toMatchObject([{ status: "interrupted", fullContent: "so far" }])
      expect(sender.closes).toEqual([{ code: 1001, reason: "going away" }])
      expect((yield* rows(service, projectId))[1]).toMatchObject({ status: "interrupted", content: "so far", errorCode: "INTERRUPTED" })
    }))
})
