/**
 * Answer ownership across instances (src/cluster/Ownership.ts) on a real PostgreSQL: each
 * `startOwnership` is one instance's (its own layer, its own lock connection).
 */
import { describe, expect, it } from "@effect/vitest"
import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Context, Duration, Effect, Fiber, Layer, Redacted, Schedule } from "effect"
import { randomUUID } from "node:crypto"
import { Ownership } from "../src/cluster/Ownership.js"
import { DatabaseUrl } from "../src/db/Database.js"
import type { ProjectId } from "../src/domain/Ids.js"
import { TcpProxyScoped, targetOf } from "./support/TcpProxy.js"
import { freshDatabase } from "./support/TestDatabase.js"

/** Liveness bound only: a loaded machine is slow, not red. */
const LIVENESS = Duration.seconds(30)

const startOwnership = (url: string) =>
  Layer.build(Ownership.Default.pipe(Layer.provide(Layer.succeed(DatabaseUrl, Redacted.make(url))))).pipe(
    Effect.map((context) => Context.get(context, Ownership))
  )

const sqlOn = (url: string) =>
  Layer.build(PgClient.layer({ url: Redacted.make(url), maxConnections: 1 })).pipe(
    Effect.map((context) => Context.get(context, SqlClient.SqlClient))
  )

const projects = (n: number) => Array.from({ length: n }, () => randomUUID() as ProjectId)

/** Advisory locks held by the ownership connections (application_name go-chat-ownership). */
const heldLocks = (sql: SqlClient.SqlClient) =>
  sql<{ n: number }>`
    SELECT count(*)::int AS n FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE l.locktype = 'advisory' AND l.granted AND a.application_name = 'go-chat-ownership'`.pipe(
    Effect.map((rows) => rows[0]?.n ?? -1),
    Effect.orDie
  )

const eventually = <A>(effect: Effect.Effect<A>, done: (a: A) => boolean) =>
  effect.pipe(
    Effect.repeat({ until: done, schedule: Schedule.spaced(Duration.millis(20)) }),
    Effect.timeoutFail({ duration: LIVENESS, onTimeout: () => new Error("condition not met") }),
    Effect.orDie
  )

describe("Ownership", () => {
  it.scopedLive("claims that arrive together go to PostgreSQL together, and each is answered", () =>
    Effect.gen(function* () {
      const url = yield* freshDatabase
      const proxy = yield* TcpProxyScoped(targetOf(url))
      const ownership = yield* startOwnership(proxy.urlFor(url))
      const sql = yield* sqlOn(url)

      // The first claim's statement is held on its way back: the claims after it wait together.
      proxy.holdReplies()
      const [first, ...rest] = projects(301)
      const before = proxy.bytesFromClients()
      const firstClaim = yield* Effect.fork(ownership.claim(first!))
      yield* eventually(Effect.sync(() => proxy.bytesFromClients()), (bytes) => bytes > before)
      const sentFirst = proxy.bytesFromClients()
      const restClaims = yield* Effect.fork(Effect.forEach(rest, ownership.claim, { concurrency: "unbounded" }))
      yield* Effect.sleep(Duration.millis(100))
      proxy.releaseReplies()
      const won = yield* Fiber.join(restClaims).pipe(Effect.timeout(LIVENESS), Effect.orDie)
      expect(yield* Fiber.join(firstClaim).pipe(Effect.orDie)).toBe(true)
      expect(won.every((claimed) => claimed)).toBe(true)
      // One statement for the 300 (their ids and one query text), not 300 statements.
      const perClaim = (proxy.bytesFromClients() - sentFirst) / rest.length
      expect(perClaim).toBeLessThan(60)
      expect(yield* heldLocks(sql)).toBe(301)

      // Released together too; every lock is gone.
      yield* Effect.forEach([first!, ...rest], ownership.release, { concurrency: "unbounded" })
      expect(yield* heldLocks(sql)).toBe(0)
    }))

  it.scopedLive("one instance wins a project; the other gets it once the first releases it", () =>
    Effect.gen(function* () {
      const url = yield* freshDatabase
      const a = yield* startOwnership(url)
      const b = yield* startOwnership(url)
      const mine = projects(50)
      const both = yield* Effect.all([
        Effect.forEach(mine, a.claim, { concurrency: "unbounded" }),
        Effect.forEach(mine, b.claim, { concurrency: "unbounded" })
      ], { concurrency: "unbounded" }).pipe(Effect.orDie)
      // Exactly one winner per project, whatever the interleaving.
      mine.forEach((_, i) => expect(both[0][i] !== both[1][i]).toBe(true))
      const wonByA = mine.filter((_, i) => both[0][i])
      yield* Effect.forEach(wonByA, a.release, { concurrency: "unbounded" })
      const claimedByB = yield* Effect.forEach(wonByA, b.claim, { concurrency: "unbounded" }).pipe(Effect.orDie)
      expect(claimedByB.every((claimed) => claimed)).toBe(true)
      expect(mine.every((projectId) => b.holds(projectId))).toBe(true)
    }))
})
