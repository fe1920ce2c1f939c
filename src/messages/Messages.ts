import * as SqlClient from "@effect/sql/SqlClient"
import * as SqlSchema from "@effect/sql/SqlSchema"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { isForeignKeyViolation, isUniqueViolation, orUnavailable } from "../db/SqlErrors.js"
import type { CodeBlock } from "../domain/CodeBlock.js"
import { ChatBusy, ProjectNotFound } from "../domain/Errors.js"
import { MessageId, ProjectId } from "../domain/Ids.js"
import { MESSAGE_ROW_COLUMNS, MessageRow, type MessageStatus } from "../domain/Message.js"
import { insertQuestionRows, type QuestionAndAnswerRow, Turn } from "./InsertQuestions.js"
import { makeQuestionBatch, type Question } from "./QuestionBatch.js"
import { StoredAnswer } from "./StoredAnswer.js"

export { continuable, StoredAnswer } from "./StoredAnswer.js"
import type { Usage } from "../domain/Usage.js"
import { extractCodeBlocks } from "../markdown/CodeBlocks.js"

export interface AnswerOutcome {
  readonly id: MessageId
  readonly content: string
  readonly status: Exclude<MessageStatus, "streaming">
  readonly stopReason: string | null
  readonly errorCode: string | null
  readonly continuations: number
  /** Summed over the answer's requests; null when Claude reported none (kept as stored then). */
  readonly usage: Usage | null
  readonly codeBlocks: ReadonlyArray<CodeBlock>
}


/** An answer's end state; its code blocks are found here, once, for storing and for clients alike. */
export const answerOutcome = (fields: Omit<AnswerOutcome, "codeBlocks">): AnswerOutcome => ({
  ...fields,
  codeBlocks: extractCodeBlocks(fields.content)
})


/** What storing a user message gave: see `Messages.insertQuestion`. */
export interface InsertedQuestion {
  readonly message: MessageRow
  /** False for a retried send whose question was stored before. */
  readonly created: boolean
  /** The row its answer streams into; none when the question was answered already. */
  readonly answerId: Option.Option<MessageId>
  /** The latest turns up to the question (as `recent` reads them), when the statement read them. */
  readonly context: Option.Option<ReadonlyArray<Turn>>
  /** The project's first message, under a default title: the project is to be named from it. */
  readonly namesProject: boolean
}

/** The messages repository: the chat path's writes and the context it reads. */
export class Messages extends Effect.Service<Messages>()("Messages", {
  scoped: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const scope = yield* Effect.scope
    const columns = sql.literal(MESSAGE_ROW_COLUMNS)

    const findOneByClientId = SqlSchema.findOne({
      Request: Schema.Struct({ projectId: ProjectId, clientMessageId: Schema.String }),
      Result: MessageRow,
      execute: ({ projectId, clientMessageId }) =>
        sql`SELECT ${columns} FROM messages WHERE project_id = ${projectId} AND client_message_id = ${clientMessageId}`
    })

    const insertQuestions = insertQuestionRows(sql)
    const batched = makeQuestionBatch<QuestionAndAnswerRow>(insertQuestions, scope)

    const insertAssistantRow = SqlSchema.single({
      Request: ProjectId,
      Result: Schema.Struct({ id: MessageId }),
      execute: (projectId) =>
        sql`INSERT INTO messages (project_id, role, content, status)
            VALUES (${projectId}, 'assistant', '', 'streaming') RETURNING id`
    })

    const recentRows = SqlSchema.findAll({
      Request: Schema.Struct({ projectId: ProjectId, limit: Schema.Int }),
      Result: Turn,
      execute: ({ projectId, limit }) =>
        sql`SELECT role, content, stop_reason FROM (
              SELECT role, content, stop_reason, ordinal FROM messages
              WHERE project_id = ${projectId} AND status <> 'streaming'
              ORDER BY ordinal DESC LIMIT ${limit}
            ) recent ORDER BY ordinal`
    })

    const answerRow = SqlSchema.findOne({
      Request: MessageId,
      Result: MessageRow,
      execute: (userMessageId) =>
        sql`SELECT ${columns} FROM messages m
            WHERE m.role = 'assistant'
              AND m.project_id = (SELECT project_id FROM messages WHERE id = ${userMessageId})
              AND m.ordinal > (SELECT ordinal FROM messages WHERE id = ${userMessageId})
            ORDER BY m.ordinal LIMIT 1`
    })

    // An answer with the user message it answers (the one right before it).
    const storedAnswers = sql.literal(`SELECT m.id, m.project_id, m.role, m.content, m.status, m.stop_reason, m.continuations, m.updated_at,
        m.input_tokens, m.output_tokens, m.cache_read_input_tokens, m.cache_creation_input_tokens,
        (SELECT u.id FROM messages u WHERE u.project_id = m.project_id AND u.role = 'user' AND u.ordinal < m.ordinal
         ORDER BY u.ordinal DESC LIMIT 1) AS user_message_id
      FROM messages m`)

    const streamingAnswerRow = SqlSchema.findOne({
      Request: Schema.Struct({ projectId: ProjectId, withinSeconds: Schema.Number, maxContinuations: Schema.Int }),
      Result: Schema.extend(StoredAnswer, Schema.Struct({ resumable: Schema.Boolean })),
      execute: ({ projectId, withinSeconds, maxContinuations }) =>
        sql`SELECT *, updated_at > NOW() - make_interval(secs => ${withinSeconds}) AND continuations < ${maxContinuations} AS resumable
            FROM (${storedAnswers} WHERE m.project_id = ${projectId} AND m.status = 'streaming') s WHERE user_message_id IS NOT NULL`
    })

    const latestAnswerRow = SqlSchema.findOne({
      Request: ProjectId,
      Result: StoredAnswer,
      execute: (projectId) =>
        sql`SELECT * FROM (${storedAnswers} WHERE m.project_id = ${projectId} ORDER BY m.ordinal DESC LIMIT 1) latest
            WHERE role = 'assistant' AND user_message_id IS NOT NULL`
    })

    const resumableRows = SqlSchema.findAll({
      Request: Schema.Struct({ withinSeconds: Schema.Number, maxContinuations: Schema.Int }),
      Result: StoredAnswer,
      execute: ({ withinSeconds, maxContinuations }) =>
        sql`SELECT * FROM (${storedAnswers}
              WHERE m.role = 'assistant'
                AND m.status = 'interrupted' AND m.error_code = 'INTERRUPTED'
                AND m.updated_at > NOW() - make_interval(secs => ${withinSeconds})
                AND m.continuations < ${maxContinuations}
                AND NOT EXISTS (SELECT 1 FROM messages later WHERE later.project_id = m.project_id AND later.ordinal > m.ordinal)
            ) resumable WHERE user_message_id IS NOT NULL`
    })

    /** The user message a client sent earlier under `clientMessageId`, if any. */
    const findUserByClientId = Effect.fn("Messages.findUserByClientId")((projectId: ProjectId, clientMessageId: string) =>
      findOneByClientId({ projectId, clientMessageId }).pipe(orUnavailable))

    /**
     * The user message and the row its answer streams into, atomically: when the project
     * already streams an answer (on any instance: the unique index says so) the question is
     * not stored either. A retried send (its `clientMessageId` stored) gets its stored
     * question (`created: false`) and `answerId` none when it was answered already. A first
     * send also gets the answer's context: the latest `contextLimit` turns, as `recent` reads them.
     */
    const insertQuestion = Effect.fn("Messages.insertQuestion")((
      projectId: ProjectId,
      content: string,
      clientMessageId: string | null,
      contextLimit: number
    ) => {
      const question: Question = { projectId, content, clientMessageId, contextLimit }
      // Alone when the batch did not store it: a failure gets its exact error, a retried send its own path.
      const alone = Effect.map(insertQuestions([question]), (rows) => Option.fromNullable(rows.get(projectId)))
      return batched(question).pipe(
        Effect.flatMap((row) => (Option.isSome(row) ? Effect.succeed(row) : alone)),
        Effect.flatMap(Option.match({
          onSome: ({ answerId, earlier, namesProject, ...question }) =>
            Effect.succeed<InsertedQuestion>({
              message: new MessageRow(question),
              created: true,
              answerId: Option.some(answerId),
              context: Option.some([...earlier, { role: "user", content, stopReason: null }]),
              namesProject
            }),
          onNone: () =>
            sql.withTransaction(Effect.gen(function* () {
              const message = yield* findOneByClientId({ projectId, clientMessageId: clientMessageId ?? "" }).pipe(Effect.flatMap(Effect.orDie))
              const answered = Option.isSome(yield* answerTo(message.id))
              const answerId = answered ? Option.none<MessageId>() : Option.some((yield* insertAssistantRow(projectId)).id)
              const retried: InsertedQuestion = { message, created: false, answerId, context: Option.none(), namesProject: false }
              return retried
            }))
        })),
        Effect.catchIf(isForeignKeyViolation, () => Effect.fail(new ProjectNotFound({ projectId }))),
        // The database allows one streaming answer per project, whichever process started it.
        Effect.catchIf(isUniqueViolation, () => Effect.fail(new ChatBusy({ messageId: "" }))),
        orUnavailableKeeping
      )
    })

    /** The project's streaming answer, and whether it is recent (`withinSeconds`) and bounded enough to go on. */
    const streamingIn = Effect.fn("Messages.streamingIn")((projectId: ProjectId, withinSeconds: number, maxContinuations: number) =>
      streamingAnswerRow({ projectId, withinSeconds, maxContinuations }).pipe(orUnavailable))

    /** Projects with an answer streaming (on any instance), to find those whose instance died. */
    const streamingProjects = Effect.fn("Messages.streamingProjects")(() =>
      sql<{ projectId: ProjectId }>`SELECT project_id FROM messages WHERE status = 'streaming'`.pipe(
        orUnavailable,
        Effect.map((rows) => rows.map((row) => row.projectId))
      ))

    /**
     * The partial texts of streaming answers, so a crash loses at most one interval: one
     * statement for all of them (a thousand answers are one write a second, not a thousand).
     */
    const checkpoint = Effect.fn("Messages.checkpoint")((answers: ReadonlyArray<{ readonly id: MessageId; readonly content: string }>) =>
      sql`UPDATE messages AS m SET content = c.content, updated_at = NOW()
          FROM json_to_recordset(${JSON.stringify(answers)}::json) AS c(id uuid, content text)
          WHERE m.id = c.id AND m.status = 'streaming'`.pipe(
        orUnavailable,
        Effect.asVoid,
        Effect.tap(() => Effect.annotateCurrentSpan("answers", answers.length))
      ))

    /**
     * The final text, status and code blocks of an answer, and its project's `updatedAt`, in
     * one statement (one round trip, atomic). False when the answer no longer exists (its
     * project was deleted meanwhile).
     */
    const finish = Effect.fn("Messages.finish")((outcome: AnswerOutcome) => {
      const usage = outcome.usage
      return sql<{ stored: number }>`WITH finished AS (
                   UPDATE messages SET content = ${outcome.content}, status = ${outcome.status},
                     code_blocks = ${JSON.stringify(outcome.codeBlocks)}::jsonb, stop_reason = ${outcome.stopReason},
                     error_code = ${outcome.errorCode}, continuations = ${outcome.continuations},
                     input_tokens = COALESCE(${usage?.inputTokens ?? null}, input_tokens),
                     output_tokens = COALESCE(${usage?.outputTokens ?? null}, output_tokens),
                     cache_read_input_tokens = COALESCE(${usage?.cacheReadInputTokens ?? null}, cache_read_input_tokens),
                     cache_creation_input_tokens = COALESCE(${usage?.cacheCreationInputTokens ?? null}, cache_creation_input_tokens),
                     updated_at = NOW()
                   WHERE id = ${outcome.id}
                   RETURNING project_id
                 ), touched AS (
                   UPDATE projects SET updated_at = NOW() FROM finished WHERE projects.id = finished.project_id
                 )
                 SELECT count(*)::int AS stored FROM finished`.pipe(
        orUnavailable,
        Effect.map((rows) => (rows[0]?.stored ?? 0) > 0)
      )
    })

    /** The latest stored turns, oldest first; answers still streaming are not context yet. */
    const recent = Effect.fn("Messages.recent")((projectId: ProjectId, limit: number) =>
      recentRows({ projectId, limit }).pipe(orUnavailable))

    /** The answer stored after a user message, if any (to acknowledge a retried send). */
    const answerTo = Effect.fn("Messages.answerTo")((userMessageId: MessageId) => answerRow(userMessageId).pipe(orUnavailable))

    /** The project's latest message when it is an answer (with the question it answers). */
    const latestAnswer = Effect.fn("Messages.latestAnswer")((projectId: ProjectId) =>
      latestAnswerRow(projectId).pipe(orUnavailable))

    /**
     * Makes a finished answer `streaming` again, to go on from its stored text; fails with
     * `ChatBusy` when the project already streams one. None when it is streaming already.
     */
    const reopen = Effect.fn("Messages.reopen")((id: MessageId) =>
      sql`UPDATE messages SET status = 'streaming', error_code = NULL, updated_at = NOW()
          WHERE id = ${id} AND status <> 'streaming' RETURNING id`.pipe(
        Effect.map((rows) => rows.length > 0),
        Effect.catchIf(isUniqueViolation, () => Effect.fail(new ChatBusy({ messageId: id }))),
        orUnavailableKeeping
      ))

    /**
     * At startup: the answers a shutdown stored `interrupted` less than `within` ago (and not
     * continued too often already), to be continued. Answers left `streaming` are not touched
     * here: another instance may be generating them; whichever instance wins their project's
     * lock once their owner is gone goes on with them (`AnswerRunner`).
     */
    const recoverAtStartup = (within: Duration.Duration, maxContinuations: number) =>
      resumableRows({ withinSeconds: Duration.toSeconds(within), maxContinuations }).pipe(orUnavailable)

    return {
      findUserByClientId,
      insertQuestion,
      streamingIn,
      streamingProjects,
      checkpoint,
      finish,
      recent,
      answerTo,
      latestAnswer,
      reopen,
      recoverAtStartup
    } as const
  })
}) {}

/** Like `orUnavailable`, but lets a `ProjectNotFound` or `ChatBusy` found along the way through. */
const orUnavailableKeeping = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.catchIf(
    effect,
    (error): error is Exclude<E, ProjectNotFound | ChatBusy> => !(error instanceof ProjectNotFound || error instanceof ChatBusy),
    (error) => orUnavailable(Effect.fail(error))
  )

