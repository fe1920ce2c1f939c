/**
 * The two REST reads, answered by PostgreSQL as JSON text: the rows are never decoded and
 * re-encoded in Node. The text is byte for byte what `JSON.stringify` of the Schema-encoded
 * `ProjectList` / `ProjectWithMessages` gives (same key order, no spaces, timestamps as
 * `Date#toISOString` writes them), which `test/projectsJson.test.ts` checks.
 *
 * Each statement also computes an entity tag from the rows it reads — their count and the
 * `xmin` of every row (any UPDATE writes a new row version with a new `xmin`) — and builds
 * the body only when that tag is not one the client already holds (the body is a lazily
 * evaluated sub-plan: a 304 costs the tag alone).
 *
 * A message's object is kept on its row once it has ended (`api_json`, by a trigger of
 * sql/0005_message_json.sql, which also defines its shape); a streaming one is rendered by
 * the same function when read.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type { Validators, PageRequest } from "./Paging.js"
import type { MessagesCursor, ProjectsCursor } from "./Paging.js"

/** `Date#toISOString` in SQL: UTC, milliseconds truncated like the `pg` driver's parser does. */
const iso = (column: string) => `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`

const PROJECT_SUMMARY_JSON = `'{"id":"' || id || '","title":' || to_json(title)::text
  || ',"createdAt":"' || ${iso("created_at")} || '","updatedAt":"' || ${iso("updated_at")}
  || '","messageCount":' || message_count || '}'`

/** The `Usage` object from four token columns (or sums) in the API's key order. */
const usageJson = (input: string, output: string, cacheRead: string, cacheCreation: string) =>
  `'{"inputTokens":' || ${input} || ',"outputTokens":' || ${output}
  || ',"cacheReadInputTokens":' || ${cacheRead} || ',"cacheCreationInputTokens":' || ${cacheCreation} || '}'`

/** The project's totals over every message (not only the page's). */
const projectUsageJson = (projectId: string) =>
  `(SELECT ${
    usageJson(
      "coalesce(sum(input_tokens), 0)",
      "coalesce(sum(output_tokens), 0)",
      "coalesce(sum(cache_read_input_tokens), 0)",
      "coalesce(sum(cache_creation_input_tokens), 0)"
    )
  } FROM messages WHERE project_id = ${projectId})`

/** Order-independent digest of a set of row versions. */
const ROWS_DIGEST = `count(*) || ':' || coalesce(sum(hashtextextended(id::text, xmin::text::bigint)), 0)`

const TIMESTAMP_MICROS = `to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`

/** The client's copy is current: no body. */
const isCurrent = (sql: SqlClient.SqlClient, validators: Validators) =>
  sql`(${validators.any} OR tag.etag = ANY(string_to_array(${validators.tags.join(",")}, ',')))`

/** What a page's tag depends on besides the rows: the same rows under other parameters are another body. */
const variantOf = (page: PageRequest<unknown>) => `${page.limit ?? "all"}:${JSON.stringify(page.cursor)}:`

export interface ListRow {
  readonly etag: string
  /** The `projects` array, or null when the client's copy is current. */
  readonly items: string | null
  readonly nextUpdatedAt: string | null
  readonly nextId: string | null
}

/** Projects, most recently updated first, from after the cursor; one row. */
export const listQuery = (sql: SqlClient.SqlClient, page: PageRequest<ProjectsCursor>, validators: Validators) => {
  const after = page.cursor === null
    ? sql`TRUE`
    : sql`(updated_at < ${page.cursor.u}::timestamptz OR (updated_at = ${page.cursor.u}::timestamptz AND id > ${page.cursor.i}::uuid))`
  // One row more than the page tells whether there is a next page.
  const fetch = page.limit === null ? null : page.limit + 1
  return sql<ListRow>`
    WITH page AS MATERIALIZED (
      SELECT id, title, message_count, created_at, updated_at, xmin,
             row_number() OVER (ORDER BY updated_at DESC, id) AS n
      FROM projects WHERE ${after}
      ORDER BY updated_at DESC, id
      LIMIT ${fetch}
    ), tag AS (
      SELECT md5(${variantOf(page)} || ${sql.literal(ROWS_DIGEST)}) AS etag FROM page
    )
    SELECT tag.etag,
      CASE WHEN ${isCurrent(sql, validators)} THEN NULL ELSE (
        SELECT '[' || coalesce(string_agg(${sql.literal(PROJECT_SUMMARY_JSON)}, ',' ORDER BY n), '') || ']'
        FROM page WHERE ${page.limit}::int IS NULL OR n <= ${page.limit}::int
      ) END AS items,
      next.updated_at AS next_updated_at, next.id::text AS next_id
    FROM tag LEFT JOIN (
      SELECT ${sql.literal(TIMESTAMP_MICROS)} AS updated_at, id FROM page
      WHERE n = ${page.limit}::int AND EXISTS (SELECT 1 FROM page WHERE n > ${page.limit}::int)
    ) next ON TRUE`
}

export interface ProjectRowJson {
  readonly etag: string
  /** `{"id":…,"updatedAt":…,"messages":[…],"usage":{…}` (to be closed), or null when the client's copy is current. */
  readonly head: string | null
  readonly nextBefore: string | null
}

/** A project and its messages (the newest page of them, older than the cursor), oldest first; no row when absent. */
export const projectQuery = (
  sql: SqlClient.SqlClient,
  projectId: string,
  page: PageRequest<MessagesCursor>,
  validators: Validators
) => {
  const before = page.cursor === null ? sql`TRUE` : sql`ordinal < ${page.cursor.o}`
  const fetch = page.limit === null ? null : page.limit + 1
  return sql<ProjectRowJson>`
    WITH project AS (
      SELECT id, title, created_at, updated_at, xmin::text AS version FROM projects WHERE id = ${projectId}
    ), page AS MATERIALIZED (
      SELECT m.id, m.ordinal, m.xmin, coalesce(m.api_json, message_api_json(m)) AS json,
             row_number() OVER (ORDER BY m.ordinal DESC) AS n
      FROM messages m WHERE m.project_id = ${projectId} AND ${before}
      ORDER BY m.ordinal DESC
      LIMIT ${fetch}
    ), tag AS (
      SELECT project.*, md5(${variantOf(page)} || project.version || ':' || (SELECT ${sql.literal(ROWS_DIGEST)} FROM page)) AS etag
      FROM project
    )
    SELECT tag.etag,
      CASE WHEN ${isCurrent(sql, validators)} THEN NULL ELSE
        '{"id":"' || tag.id || '","title":' || to_json(tag.title)::text
        || ',"createdAt":"' || ${sql.literal(iso("tag.created_at"))} || '","updatedAt":"' || ${sql.literal(iso("tag.updated_at"))}
        || '","messages":[' || coalesce((
          SELECT string_agg(json, ',' ORDER BY ordinal)
          FROM page WHERE ${page.limit}::int IS NULL OR n <= ${page.limit}::int
        ), '') || '],"usage":' || ${sql.literal(projectUsageJson("tag.id"))}
      END AS head,
      (SELECT ordinal::text FROM page
       WHERE n = ${page.limit}::int AND EXISTS (SELECT 1 FROM page WHERE n > ${page.limit}::int)) AS next_before
    FROM tag`
}
