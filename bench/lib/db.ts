/**
 * The benchmark's database: a fresh database on the server at BENCH_DATABASE_URL (dropped
 * afterwards), or an embedded PostgreSQL in the run's folder (stopped afterwards); plus the
 * REST scenario's seed, written with set-based SQL.
 */
import { Reactivity } from "@effect/experimental"
import { PgClient } from "@effect/sql-pg"
import { Effect, Exit, Logger, LogLevel, Redacted, Scope } from "effect"
import { startEmbeddedPostgres } from "../../src/db/EmbeddedPostgres.js"
import { extractCodeBlocks } from "../../src/markdown/CodeBlocks.js"

export interface BenchDatabase {
  readonly kind: "external" | "embedded"
  readonly url: string
  /** Drops the database or stops the embedded server; never throws. */
  readonly close: () => Promise<void>
}

const quiet = <A, E>(effect: Effect.Effect<A, E>) => effect.pipe(Effect.provide(Logger.minimumLogLevel(LogLevel.Warning)))

/** Runs `use` with a one-connection client on `url`. */
export const withSql = <A>(url: string, use: (sql: PgClient.PgClient) => Effect.Effect<A, unknown>): Promise<A> =>
  Effect.runPromise(
    Effect.gen(function* () {
      const sql = yield* PgClient.make({ url: Redacted.make(url), maxConnections: 1 })
      return yield* use(sql)
    }).pipe(Effect.scoped, Effect.provide(Reactivity.layer), quiet)
  )

const withDatabase = (url: string, database: string) => {
  const parsed = new URL(url)
  parsed.pathname = `/${database}`
  return parsed.toString()
}

export const openBenchDatabase = async (options: { readonly externalUrl: string | undefined; readonly dataDir: string; readonly port: number }): Promise<BenchDatabase> => {
  if (options.externalUrl !== undefined) {
    const admin = options.externalUrl
    const name = `gochat_bench_${process.pid}_${Date.now()}`
    await withSql(admin, (sql) => sql.unsafe(`CREATE DATABASE "${name}"`))
    return {
      kind: "external",
      url: withDatabase(admin, name),
      close: () =>
        withSql(admin, (sql) => sql.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)).then(
          () => undefined,
          (error: unknown) => console.error(`could not drop ${name}:`, error)
        )
    }
  }
  const scope = Effect.runSync(Scope.make())
  const started = await Effect.runPromiseExit(
    quiet(Scope.extend(startEmbeddedPostgres({ dataDir: options.dataDir, port: options.port, database: "bench" }), scope))
  )
  if (Exit.isFailure(started)) {
    await Effect.runPromise(Scope.close(scope, Exit.void))
    throw new Error(`embedded PostgreSQL did not start: ${String(started.cause)}`)
  }
  return {
    kind: "embedded",
    url: Redacted.value(started.value.url),
    close: () => Effect.runPromise(quiet(Scope.close(scope, Exit.void)))
  }
}

const USER_TEXT = "Add a page where I can see every item, sorted by name, with a search box at the top."
const ASSISTANT_TEXT = [
  "Here is the updated page. It lists every item sorted by name and filters as you type.",
  "",
  "```python",
  "from flask import Flask, render_template, request",
  "",
  "app = Flask(__name__)",
  "",
  "@app.route('/items')",
  "def items():",
  "    query = request.args.get('q', '').lower()",
  "    rows = sorted(load_items(), key=lambda item: item.name)",
  "    return render_template('items.html', items=[r for r in rows if query in r.name.lower()])",
  "```",
  "",
  "Open /items in your browser and type in the box to search."
].join("\n")

export interface Seeded {
  readonly projectIds: ReadonlyArray<string>
  /** A project with `messagesPerProject` messages. */
  readonly sampleProjectId: string
  readonly seconds: number
}

/**
 * `projects` projects with `messagesPerProject` messages each, alternating user and
 * assistant (with a code block). The message-count trigger is disabled while seeding (one
 * UPDATE instead of one per row) when the role may do so.
 */
export const seed = (url: string, projects: number, messagesPerProject: number): Promise<Seeded> =>
  withSql(url, (sql) =>
    Effect.gen(function* () {
      const startedAt = performance.now()
      const codeBlocks = JSON.stringify(extractCodeBlocks(ASSISTANT_TEXT))
      const triggerOff = yield* sql.unsafe("ALTER TABLE messages DISABLE TRIGGER messages_touch_project").pipe(
        Effect.as(true),
        Effect.orElseSucceed(() => false)
      )
      yield* sql.unsafe(
        `INSERT INTO projects (title, title_source, created_at, updated_at)
         SELECT 'Seeded project ' || g, 'user', NOW() - make_interval(mins => g), NOW() - make_interval(mins => g)
         FROM generate_series(1, $1::int) g`,
        [projects]
      )
      yield* sql.unsafe(
        `INSERT INTO messages (project_id, role, content, status, code_blocks, created_at, updated_at)
         SELECT p.id,
                CASE WHEN m % 2 = 1 THEN 'user' ELSE 'assistant' END,
                CASE WHEN m % 2 = 1 THEN $1 ELSE $2 END,
                'complete',
                CASE WHEN m % 2 = 1 THEN '[]'::jsonb ELSE $3::jsonb END,
                p.created_at + make_interval(secs => m),
                p.created_at + make_interval(secs => m)
         FROM projects p CROSS JOIN generate_series(1, $4::int) m
         WHERE p.title LIKE 'Seeded project %'
         ORDER BY p.id, m`,
        [USER_TEXT, ASSISTANT_TEXT, codeBlocks, messagesPerProject]
      )
      if (triggerOff) {
        yield* sql.unsafe("UPDATE projects SET message_count = $1 WHERE title LIKE 'Seeded project %'", [messagesPerProject])
        yield* sql.unsafe("ALTER TABLE messages ENABLE TRIGGER messages_touch_project")
      }
      yield* sql.unsafe("ANALYZE projects")
      yield* sql.unsafe("ANALYZE messages")
      const rows = yield* sql.unsafe<{ id: string }>("SELECT id FROM projects WHERE title LIKE 'Seeded project %' ORDER BY id")
      const counted = yield* sql.unsafe<{ n: string }>("SELECT count(*)::text AS n FROM messages")
      if (Number(counted[0]?.n) < projects * messagesPerProject) {
        return yield* Effect.fail(new Error(`seed wrote ${counted[0]?.n} messages, expected ${projects * messagesPerProject}`))
      }
      const ids = rows.map((row) => row.id)
      return { projectIds: ids, sampleProjectId: ids[0] ?? "", seconds: (performance.now() - startedAt) / 1000 }
    })
  )
