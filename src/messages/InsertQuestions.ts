import type * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import { neverSent } from "../db/SqlErrors.js"
import { MessageId } from "../domain/Ids.js"
import { MESSAGE_ROW_COLUMNS, MessageRow, Role } from "../domain/Message.js"
import type { Question } from "./QuestionBatch.js"

/** A stored turn of the conversation, as the context is built from it. */
export const Turn = Schema.Struct({ role: Role, content: Schema.String, stopReason: Schema.NullOr(Schema.String) })
export type Turn = typeof Turn.Type

/** A stored question, its answer row's id, the turns before it, and whether it names its project. */
export const QuestionAndAnswerRow = Schema.Struct({
  ...MessageRow.fields,
  answerId: MessageId,
  earlier: Schema.Array(Turn),
  namesProject: Schema.Boolean
})
export type QuestionAndAnswerRow = typeof QuestionAndAnswerRow.Type

const decodeQuestionRows = Schema.decodeUnknown(Schema.Array(QuestionAndAnswerRow))

/**
 * First sends: each question and the row its answer streams into, in one statement (atomic,
 * one round trip: a question's row is written first, so it comes first). No row for a send
 * that is a retry (its `clientMessageId` is stored already). The same statement reads what
 * each answer needs next, so that a start costs one round trip, not three: the turns before
 * the question (its context; the statement's snapshot does not hold the rows it inserts)
 * and whether this is the project's first message under a default title (it is named then).
 * One project appears at most once (see `QuestionBatch`).
 */
const INSERT_QUESTIONS = `WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[])
      AS i(project_id, content, client_message_id, earlier_limit)
  ), question AS (
    INSERT INTO messages (project_id, role, content, status, client_message_id)
    SELECT project_id, 'user', content, 'complete', client_message_id FROM input
    ON CONFLICT (project_id, client_message_id) WHERE client_message_id IS NOT NULL DO NOTHING
    RETURNING ${MESSAGE_ROW_COLUMNS}
  ), answer AS (
    INSERT INTO messages (project_id, role, content, status)
    SELECT project_id, 'assistant', '', 'streaming' FROM question RETURNING id, project_id
  )
  SELECT question.*, answer.id AS answer_id,
    (SELECT coalesce(json_agg(json_build_object('role', role, 'content', content, 'stopReason', stop_reason) ORDER BY ordinal), '[]')
       FROM (SELECT role, content, stop_reason, ordinal FROM messages
             WHERE project_id = question.project_id AND status <> 'streaming'
             ORDER BY ordinal DESC LIMIT input.earlier_limit) earlier) AS earlier,
    (SELECT title_source = 'default' AND message_count = 0 FROM projects WHERE id = question.project_id) AS names_project
  FROM question
  JOIN answer ON answer.project_id = question.project_id
  JOIN input ON input.project_id = question.project_id`

/** Stores the questions (see `INSERT_QUESTIONS`); the rows stored, by project. */
export const insertQuestionRows = (sql: SqlClient.SqlClient) => (questions: ReadonlyArray<Question>) =>
  sql.unsafe(INSERT_QUESTIONS, [
    questions.map((question) => question.projectId),
    questions.map((question) => question.content),
    questions.map((question) => question.clientMessageId),
    questions.map((question) => question.contextLimit - 1)
  ]).pipe(
    // Under a burst the pool's wait (5 s) can pass before a connection is free: the
    // statement was not sent, so it waits its turn again.
    Effect.retry({ while: neverSent, times: 2, schedule: Schedule.exponential("200 millis") }),
    Effect.flatMap(decodeQuestionRows),
    Effect.map((rows) => new Map(rows.map((row) => [row.projectId, row])))
  )
