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
 * Messages columns are spelled out here, not taken from `src/messages`: this is the only
 * place that turns them into the REST shape.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type { Validators, PageRequest } from "./Paging.js"
import type { MessagesCursor, ProjectsCursor } from "./Paging.js"

/** `Date#toISOString` in SQL: UTC, milliseconds truncated like the `pg` driver's parser does. */
const iso = (column: string) => `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`

const PROJECT_SUMMARY_JSON = `'{"id":"' || id || '","title":' || to_json(title)::text
  || ',"createdAt":"' || ${iso("created_at")} || '","updatedAt":"' || ${iso("updated_at")}
  || '","messageCount":' || message_count || '}'`

/**
 * Code blocks are stored as `jsonb`, which reorders keys: each is rebuilt in the API's key
 * order, decoded once per block by `jsonb_to_recordset` (cheaper than six `->` lookups).
 */
const CODE_BLOCKS_JSON = `CASE WHEN code_blocks = '[]'::jsonb THEN '[]' ELSE (
  SELECT '[' || string_agg('{"language":' || coalesce(to_json(b.language)::text, 'null') || ',"code":' || to_json(b.code)::text
    || ',"startIndex":' || b.start_index || ',"endIndex":' || b.end_index
    || ',"startLine":' || b.start_line || ',"endLine":' || b.end_line || '}', ',' ORDER BY b.k) || ']'
  FROM ROWS FROM (jsonb_to_recordset(code_blocks)
         AS ("language" text, "code" text, "startIndex" bigint, "endIndex" bigint, "startLine" bigint, "endLine" bigint))
       WITH ORDINALITY AS b(language, code, start_index, end_index, start_line, end_line, k)) END`

/** The `Usage` object from four token columns (or sums) in the API's key order. */
const usageJson = (input: string, output: string, cacheRead: string, cacheCreation: string) =>
  `'{"inputTokens":' || ${input} || ',"outputTokens":' || ${output}
  || ',"cacheReadInputTokens":' || ${cacheRead} || ',"cacheCreationInputTokens":' || ${cacheCreation} || '}'`

/** An answer's usage, null when it has none (stored before usage was kept, or none reported). */
const MESSAGE_USAGE_JSON = `CASE WHEN input_tokens IS NULL THEN 'null' ELSE ${
  usageJson("input_tokens", "coalesce(output_tokens, 0)", "coalesce(cache_read_input_tokens, 0)", "coalesce(cache_creation_input_tokens, 0)")
} END`

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

/** Role and status are constrained to known words by the table, ids are UUIDs: only text needs escaping. */
const MESSAGE_JSON = `'{"id":"' || id || '","role":"' || role || '","content":' || to_json(content)::text
  || ',"status":"' || status || '"'
  || CASE WHEN role = 'assistant' THEN ',"codeBlocks":' || ${CODE_BLOCKS_JSON}
    || ',"stopReason":' || coalesce(to_json(stop_reason)::text, 'null') || ',"continuations":' || continuations
    || ',"usage":' || ${MESSAGE_USAGE_JSON} ELSE '' END
  || ',"createdAt":"' || ${iso("created_at")} || '"}'`

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
      SELECT id, role, content, status, code_blocks, stop_reason, continuations,
             input_tokens, output_tokens, cache_read_input_tokens, cache_creation_input_tokens, created_at, ordinal, xmin,
             row_number() OVER (ORDER BY ordinal DESC) AS n
      FROM messages WHERE project_id = ${projectId} AND ${before}
      ORDER BY ordinal DESC
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
          SELECT string_agg(${sql.literal(MESSAGE_JSON)}, ',' ORDER BY ordinal)
          FROM page WHERE ${page.limit}::int IS NULL OR n <= ${page.limit}::int
        ), '') || '],"usage":' || ${sql.literal(projectUsageJson("tag.id"))}
      END AS head,
      (SELECT ordinal::text FROM page
       WHERE n = ${page.limit}::int AND EXISTS (SELECT 1 FROM page WHERE n > ${page.limit}::int)) AS next_before
    FROM tag`
}
