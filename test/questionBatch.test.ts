/**
 * First sends stored together (`src/messages/QuestionBatch.ts`): a burst of sends is a few
 * statements, and every send still gets exactly its own outcome.
 */
import { describe, expect, it } from "@effect/vitest"
import { randomUUID } from "node:crypto"
import { Effect, Either, Option } from "effect"
import type { ProjectId } from "../src/domain/Ids.js"
import { makeQuestionBatch, type Question } from "../src/messages/QuestionBatch.js"
import { startChatService } from "./support/ChatService.js"

const question = (i: number): Question => ({ projectId: `p-${i}` as ProjectId, content: `q${i}`, clientMessageId: null, contextLimit: 20 })

describe("the question batch", () => {
  it.scopedLive("questions that wait together go in a few statements, each answered with its own row", () =>
    Effect.gen(function* () {
      const statements: Array<number> = []
      const batch = makeQuestionBatch<string>((questions) =>
        Effect.sleep("5 millis").pipe(Effect.as((statements.push(questions.length), new Map(questions.map((q) => [q.projectId, `row of ${q.content}`]))))), yield* Effect.scope)
      const rows = yield* Effect.all(Array.from({ length: 600 }, (_, i) => batch(question(i))), { concurrency: "unbounded" })
      expect(rows.map(Option.getOrNull)).toEqual(Array.from({ length: 600 }, (_, i) => `row of q${i}`))
      expect(statements.reduce((a, b) => a + b, 0)).toBe(600)
      // At most 250 rows a statement; 600 waiting together need 3 or 4 (the first may leave alone).
      expect(Math.max(...statements)).toBeLessThanOrEqual(250)
      expect(statements.length).toBeLessThanOrEqual(4)
    }))

  it.scoped("a failed statement, a question it did not store, or a second one of a project: none (stored alone)", () =>
    Effect.gen(function* () {
      const scope = yield* Effect.scope
      const failing = makeQuestionBatch<string>(() => Effect.fail("database unavailable"), scope)
      expect(yield* Effect.all([failing(question(1)), failing(question(2))], { concurrency: "unbounded" })).toEqual([Option.none(), Option.none()])
      const partial = makeQuestionBatch<string>((questions) => Effect.succeed(new Map(questions.slice(1).map((q) => [q.projectId, "stored"]))), scope)
      const [first, second, sameProject] = yield* Effect.all([partial(question(1)), partial(question(2)), partial(question(2))], { concurrency: "unbounded" })
      expect([first, second, sameProject]).toEqual([Option.none(), Option.some("stored"), Option.none()])
    }))
})

describe("first sends on the database, in one burst", () => {
  it.scopedLive("each question is stored with its answer row and its own context; a retried send and a missing project get their own outcome", () =>
    Effect.gen(function* () {
      const service = yield* startChatService()
      const { messages, sql } = service
      const projects = yield* Effect.all(Array.from({ length: 40 }, () => service.newProject))
      const [withHistory, retried] = [projects[0]!, projects[1]!]
      // An earlier exchange in one project (its context), and a send answered before (retried below).
      const finishAnswers = sql`UPDATE messages SET status = 'complete', content = 'earlier answer' WHERE status = 'streaming'`
      yield* messages.insertQuestion(withHistory, "earlier question", null, 20)
      yield* messages.insertQuestion(retried, "sent once", "client-1", 20)
      yield* finishAnswers

      const send = (projectId: ProjectId, i: number) =>
        Effect.either(messages.insertQuestion(projectId, `question ${i}`, projectId === retried ? "client-1" : null, 20))
      const burst = yield* Effect.all(projects.map(send), { concurrency: "unbounded" })
      burst.forEach((result, i) => {
        const inserted = Either.getOrThrow(result)
        if (projects[i] === retried) {
          expect({ created: inserted.created, content: inserted.message.content, answer: Option.isSome(inserted.answerId) })
            .toEqual({ created: false, content: "sent once", answer: false })
          return
        }
        expect(inserted.created).toBe(true)
        expect(inserted.message.projectId).toBe(projects[i])
        expect(inserted.message.content).toBe(`question ${i}`)
        expect(Option.isSome(inserted.answerId)).toBe(true)
        const earlier = projects[i] === withHistory
          ? [{ role: "user", content: "earlier question", stopReason: null }, { role: "assistant", content: "earlier answer", stopReason: null }]
          : []
        expect(Option.getOrThrow(inserted.context)).toEqual([...earlier, { role: "user", content: `question ${i}`, stopReason: null }])
        expect(inserted.namesProject).toBe(projects[i] !== withHistory)
      })
      // Every project: its question, then its answer row, in that order.
      const rows = yield* sql<{ projectId: string; roles: string }>`
        SELECT project_id, string_agg(role || ':' || status, ',' ORDER BY ordinal) AS roles FROM messages GROUP BY project_id`
      const rolesOf = new Map(rows.map((row) => [row.projectId, row.roles]))
      expect(rolesOf.get(withHistory)).toBe("user:complete,assistant:complete,user:complete,assistant:streaming")
      expect(rolesOf.get(retried)).toBe("user:complete,assistant:complete")
      expect(projects.slice(2).map((p) => rolesOf.get(p))).toEqual(projects.slice(2).map(() => "user:complete,assistant:streaming"))

      // A deleted project in the next burst: it alone is refused, the others are stored.
      yield* sql`UPDATE messages SET status = 'complete' WHERE status = 'streaming'`
      const missing = randomUUID() as ProjectId
      const next = yield* Effect.all([...projects.slice(2, 12), missing].map(send), { concurrency: "unbounded" })
      expect(next.slice(0, 10).every((result) => Either.isRight(result) && result.right.created)).toBe(true)
      expect(Either.flip(next[10]!).pipe(Either.map((error) => error._tag))).toEqual(Either.right("ProjectNotFound"))
    }))
})
