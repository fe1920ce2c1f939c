import * as SqlClient from "@effect/sql/SqlClient"
import * as SqlSchema from "@effect/sql/SqlSchema"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { DatabasePool } from "../db/Pool.js"
import { runPrepared } from "../db/Prepared.js"
import { orUnavailable } from "../db/SqlErrors.js"
import { ProjectNotFound } from "../domain/Errors.js"
import { ProjectId } from "../domain/Ids.js"
import { TRUSTED } from "../domain/Trusted.js"
import { DEFAULT_TITLE, Project } from "../domain/Project.js"
import {
  encodeMessagesCursor,
  encodeProjectsCursor,
  type JsonRead,
  type MessagesCursor,
  type PageRequest,
  type ProjectsCursor,
  type Validators
} from "./Paging.js"
import { listQuery, projectQuery } from "./ProjectsJson.js"
import { ReadCache } from "./ReadCache.js"
import { AppConfig } from "../Config.js"

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
    const pool = yield* DatabasePool
    const cache = new ReadCache((yield* AppConfig).restCacheBytes)
    const columns = sql.literal(PROJECT_COLUMNS)

    const insert = SqlSchema.single({
      Request: Schema.Struct({ title: Schema.String, titleSource: TitleSource }),
      Result: ProjectRow,
      execute: (request) => sql`INSERT INTO projects ${sql.insert(request)} RETURNING ${columns}`
    })

    const findById = SqlSchema.findOne({
      Request: ProjectId,
      Result: ProjectRow,
      execute: (id) => sql`SELECT ${columns} FROM projects WHERE id = ${id}`
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

    const create = Effect.fn("Projects.create")((title: string | undefined) =>
      insert({ title: title ?? DEFAULT_TITLE, titleSource: title === undefined ? "default" : "user" }).pipe(
        orUnavailable,
        Effect.map((row) => row.toProject())
      ))

    const ListRow = Schema.Struct({
      etag: Schema.String,
      items: Schema.NullOr(Schema.String),
      nextUpdatedAt: Schema.NullOr(Schema.String),
      nextId: Schema.NullOr(ProjectId)
    })
    const ProjectJsonRow = Schema.Struct({
      etag: Schema.String,
      head: Schema.NullOr(Schema.String),
      nextBefore: Schema.NullOr(Schema.NumberFromString)
    })
    // Built once: a schema constructed per request costs more than decoding one row.
    const decodeListRows = Schema.decodeUnknown(Schema.Tuple(ListRow))
    const decodeProjectRows = Schema.decodeUnknown(Schema.Array(ProjectJsonRow))

    /** `nextCursor` / `nextBefore` only on a paginated read, so the PRD's bodies stay as they were. */
    const nextField = (name: string, page: PageRequest<unknown>, cursor: string | null) =>
      page.limit === null ? "" : `,"${name}":${cursor === null ? "null" : JSON.stringify(cursor)}`

    const pageKey = (page: PageRequest<unknown>) => `${page.limit ?? "all"}:${JSON.stringify(page.cursor)}`

    /**
     * Runs a read with the client's tags and the cached body's (`ReadCache`): no body comes
     * back when either is current. The client's match is a 304; ours serves the cached body.
     */
    const cachedRead = <E>(
      key: string,
      validators: Validators,
      read: (asked: Validators) => Effect.Effect<{ readonly etag: string; readonly body: string | null }, E>
    ) =>
      Effect.gen(function* () {
        const cached = cache.get(key)
        const asked = cached === undefined ? validators : { any: validators.any, tags: [...validators.tags, cached.etag] }
        const { etag, body } = yield* read(asked)
        if (body !== null) {
          const bytes = Buffer.from(body, "utf8")
          cache.set(key, { etag, body: bytes })
          return { etag, body: bytes } satisfies JsonRead
        }
        if (validators.any || validators.tags.includes(etag)) return { etag, body: null } satisfies JsonRead
        if (cached?.etag === etag) return { etag, body: cached.body } satisfies JsonRead
        return yield* Effect.dieMessage("the database sent no body although no tag it was given is current")
      })

    /** `GET /api/projects` as JSON text built by PostgreSQL; no body when the client's tag matches. */
    const listJson = Effect.fn("Projects.listJson")((page: PageRequest<ProjectsCursor>, validators: Validators) =>
      cachedRead(`list:${pageKey(page)}`, validators, (asked) =>
        Effect.gen(function* () {
          const rows = yield* runPrepared(pool, listQuery(sql, page, asked)).pipe(Effect.flatMap(decodeListRows), orUnavailable)
          const [row] = rows
          const next = row.nextUpdatedAt === null || row.nextId === null
            ? null
            : encodeProjectsCursor({ u: row.nextUpdatedAt, i: row.nextId })
          const body = row.items === null ? null : `{"projects":${row.items}${nextField("nextCursor", page, next)}}`
          return { etag: row.etag, body }
        })))

    /** `GET /api/projects/:id` as JSON text built by PostgreSQL; no body when the client's tag matches. */
    const getJson = Effect.fn("Projects.getJson")((id: ProjectId, page: PageRequest<MessagesCursor>, validators: Validators) =>
      cachedRead(`project:${id}:${pageKey(page)}`, validators, (asked) =>
        Effect.gen(function* () {
          const rows = yield* runPrepared(pool, projectQuery(sql, id, page, asked)).pipe(
            Effect.flatMap(decodeProjectRows),
            orUnavailable
          )
          const row = rows[0]
          if (row === undefined) return yield* new ProjectNotFound({ projectId: id })
          const next = row.nextBefore === null ? null : encodeMessagesCursor({ o: row.nextBefore })
          const body = row.head === null ? null : `${row.head}${nextField("nextBefore", page, next)}}`
          return { etag: row.etag, body }
        })))

    const find = Effect.fn("Projects.find")((id: ProjectId) => findById(id).pipe(orUnavailable, Effect.flatMap(orNotFound(id))))

    /** The user's rename: the title is the user's from now on, never replaced by a generated one. */
    const rename = Effect.fn("Projects.rename")((id: ProjectId, title: string) =>
      updateTitle({ id, title, titleSource: "user" }).pipe(
        orUnavailable,
        Effect.flatMap(orNotFound(id)),
        Effect.map((row) => row.toProject())
      ))

    /** Sets a generated title unless someone (the user, or a faster generation) set one already. */
    const setGeneratedTitle = Effect.fn("Projects.setGeneratedTitle")((id: ProjectId, title: string) =>
      updateDefaultTitle({ id, title }).pipe(
        orUnavailable,
        Effect.map(Option.map((row) => row.toProject()))
      ))

    const remove = Effect.fn("Projects.remove")((id: ProjectId) =>
      deleteById(id).pipe(orUnavailable, Effect.flatMap(orNotFound(id)), Effect.asVoid))

    return { create, listJson, find, getJson, rename, setGeneratedTitle, remove } as const
  })
}) {}
