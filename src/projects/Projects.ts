import { SqlClient, SqlSchema } from "@effect/sql"
import { Effect, Option, Schema } from "effect"
import { orUnavailable } from "../db/SqlErrors.js"
import { ProjectNotFound } from "../domain/Errors.js"
import { ProjectId } from "../domain/Ids.js"
import { MESSAGE_ROW_COLUMNS, MessageRow } from "../domain/Message.js"
import { TRUSTED } from "../domain/Trusted.js"
import { DEFAULT_TITLE, Project, ProjectSummary, ProjectWithMessages } from "../domain/Project.js"

/** Who chose a title: the default is replaced by a generated one, a user's never is. */
export const TitleSource = Schema.Literal("default", "user", "generated")
export type TitleSource = typeof TitleSource.Type

/** A `projects` row as PostgreSQL returns it. */
export class ProjectRow extends Schema.Class<ProjectRow>("ProjectRow")({
  id: ProjectId,
  title: Schema.String,
  titleSource: TitleSource,
  messageCount: Schema.Int,
  createdAt: Schema.DateFromSelf,
  updatedAt: Schema.DateFromSelf
}) {
  get hasDefaultTitle(): boolean {
    return this.titleSource === "default"
  }

  toProject(): Project {
    return new Project({ id: this.id, title: this.title, createdAt: this.createdAt, updatedAt: this.updatedAt }, TRUSTED)
  }
}

const PROJECT_COLUMNS = "id, title, title_source, message_count, created_at, updated_at"

/** The projects repository: every query is parameterised; absent ids are `ProjectNotFound`. */
export class Projects extends Effect.Service<Projects>()("Projects", {
  effect: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const columns = sql.literal(PROJECT_COLUMNS)

    const insert = SqlSchema.single({
      Request: Schema.Struct({ title: Schema.String, titleSource: TitleSource }),
      Result: ProjectRow,
      execute: (request) => sql`INSERT INTO projects ${sql.insert(request)} RETURNING ${columns}`
    })

    const findAll = SqlSchema.findAll({
      Request: Schema.Void,
      Result: ProjectRow,
      execute: () => sql`SELECT ${columns} FROM projects ORDER BY updated_at DESC, id`
    })

    const findById = SqlSchema.findOne({
      Request: ProjectId,
      Result: ProjectRow,
      execute: (id) => sql`SELECT ${columns} FROM projects WHERE id = ${id}`
    })

    const findMessages = SqlSchema.findAll({
      Request: ProjectId,
      Result: MessageRow,
      execute: (id) =>
        sql`SELECT ${sql.literal(MESSAGE_ROW_COLUMNS)}
            FROM messages WHERE project_id = ${id} ORDER BY ordinal`
    })

    const updateTitle = SqlSchema.findOne({
      Request: Schema.Struct({ id: ProjectId, title: Schema.String, titleSource: TitleSource }),
      Result: ProjectRow,
      execute: ({ id, title, titleSource }) =>
        sql`UPDATE projects SET title = ${title}, title_source = ${titleSource}, updated_at = NOW()
            WHERE id = ${id} RETURNING ${columns}`
    })

    const updateDefaultTitle = SqlSchema.findOne({
      Request: Schema.Struct({ id: ProjectId, title: Schema.String }),
      Result: ProjectRow,
      execute: ({ id, title }) =>
        sql`UPDATE projects SET title = ${title}, title_source = 'generated'
            WHERE id = ${id} AND title_source = 'default' RETURNING ${columns}`
    })

    const deleteById = SqlSchema.findOne({
      Request: ProjectId,
      Result: Schema.Struct({ id: ProjectId }),
      execute: (id) => sql`DELETE FROM projects WHERE id = ${id} RETURNING id`
    })

    const orNotFound =
      (id: ProjectId) =>
      <A>(option: Option.Option<A>): Effect.Effect<A, ProjectNotFound> =>
        Option.match(option, {
          onNone: () => Effect.fail(new ProjectNotFound({ projectId: id })),
          onSome: Effect.succeed
        })

    const create = (title: string | undefined) =>
      insert({ title: title ?? DEFAULT_TITLE, titleSource: title === undefined ? "default" : "user" }).pipe(
        orUnavailable,
        Effect.map((row) => row.toProject()),
        Effect.withSpan("Projects.create")
      )

    const list = findAll(undefined).pipe(
      orUnavailable,
      Effect.map((rows) =>
        rows.map((row) => new ProjectSummary({ ...row.toProject(), messageCount: row.messageCount }, TRUSTED))
      ),
      Effect.withSpan("Projects.list")
    )

    const find = (id: ProjectId) =>
      findById(id).pipe(orUnavailable, Effect.flatMap(orNotFound(id)), Effect.withSpan("Projects.find"))

    const getWithMessages = (id: ProjectId) =>
      Effect.gen(function* () {
        const project = yield* findById(id)
        const messages = yield* findMessages(id)
        return Option.map(
          project,
          (row) => new ProjectWithMessages({ ...row.toProject(), messages: messages.map((m) => m.toMessage()) }, TRUSTED)
        )
      }).pipe(
        orUnavailable,
        Effect.flatMap(orNotFound(id)),
        Effect.withSpan("Projects.getWithMessages")
      )

    const rename = (id: ProjectId, title: string, titleSource: TitleSource = "user") =>
      updateTitle({ id, title, titleSource }).pipe(
        orUnavailable,
        Effect.flatMap(orNotFound(id)),
        Effect.map((row) => row.toProject()),
        Effect.withSpan("Projects.rename")
      )

    /** Sets a generated title unless someone (the user, or a faster generation) set one already. */
    const setGeneratedTitle = (id: ProjectId, title: string) =>
      updateDefaultTitle({ id, title }).pipe(
        orUnavailable,
        Effect.map(Option.map((row) => row.toProject())),
        Effect.withSpan("Projects.setGeneratedTitle")
      )

    const remove = (id: ProjectId) =>
      deleteById(id).pipe(
        orUnavailable,
        Effect.flatMap(orNotFound(id)),
        Effect.asVoid,
        Effect.withSpan("Projects.remove")
      )

    return { create, list, find, getWithMessages, rename, setGeneratedTitle, remove } as const
  })
}) {}
