import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import pg from "pg"
import { DatabaseUrl } from "../db/Database.js"
import { DatabaseUnavailable } from "../domain/Errors.js"
import type { ProjectId } from "../domain/Ids.js"

const RECONNECT_EVERY = Duration.seconds(1)
const LOCK = "pg_try_advisory_lock(hashtextextended(p, 12))"
const UNLOCK = "pg_advisory_unlock(hashtextextended(u, 12))"

/**
 * Which instance generates a project's answer: the one holding the project's session-level
 * advisory lock, on a connection of its own. PostgreSQL releases the lock the moment that
 * connection dies (a SIGKILL, a network cut), so another instance can take the answer over
 * within a scan. When this instance's connection dies, it goes on with its answers (the
 * database may be away for everyone) and claims their locks again once reconnected; those
 * another instance took meanwhile are reported (`onLost`) and stopped here.
 */
export class Ownership extends Effect.Service<Ownership>()("Ownership", {
  scoped: Effect.gen(function* () {
    const scope = yield* Effect.scope
    const url = Redacted.value(yield* DatabaseUrl)
    /** Projects this instance owns, with how many claims (a new answer's claim may come before the last one's release). */
    const held = new Map<ProjectId, number>()
    const lostListeners = new Set<(projectId: ProjectId) => void>()
    let client: pg.Client | undefined
    /** The connection died: the locks of `held` must be claimed again before anything else. */
    let reclaim = false
    let closing = false

    const lose = (lost: pg.Client) => {
      if (client !== lost) return
      client = undefined
      reclaim = true
    }
    const lockAll = (connection: pg.Client, projectIds: ReadonlyArray<ProjectId>) =>
      connection.query<{ p: ProjectId }>(`SELECT p FROM unnest($1::text[]) AS p WHERE ${LOCK}`, [projectIds])
        .then((result) => new Set(result.rows.map((row) => row.p)))
    const connect = async () => {
      const next = new pg.Client({ connectionString: url, application_name: "go-chat-ownership" })
      next.on("error", () => lose(next))
      next.on("end", () => lose(next))
      await next.connect()
      if (reclaim) {
        const owned = [...held.keys()]
        const regained = await lockAll(next, owned).catch(async (error: unknown) => {
          await next.end().catch(() => undefined)
          throw error
        })
        reclaim = false
        for (const projectId of owned) {
          if (regained.has(projectId)) continue
          held.delete(projectId)
          for (const listener of lostListeners) listener(projectId)
        }
      }
      return next
    }
    /** One connection attempt at a time, whoever asks (the reconnect loop, or a claim that finds none). */
    let opening: Promise<pg.Client> | undefined
    const ensureOpen = Effect.suspend(() =>
      client !== undefined || closing
        ? Effect.void
        : Effect.tryPromise({
          try: () => (opening ??= connect().finally(() => (opening = undefined))),
          catch: (cause) => new DatabaseUnavailable({ cause })
        }).pipe(Effect.map((next) => void (client = next)))
    )
    yield* ensureOpen.pipe(Effect.ignore)
    yield* ensureOpen.pipe(Effect.ignore, Effect.repeat(Schedule.spaced(RECONNECT_EVERY)), Effect.forkScoped)
    yield* Effect.addFinalizer(() =>
      Effect.promise(async () => {
        closing = true
        const last = client
        client = undefined
        await last?.end().catch(() => undefined)
      })
    )

    const connected = Effect.flatMap(ensureOpen, () =>
      client === undefined ? Effect.fail(new DatabaseUnavailable({ cause: "ownership connection down" })) : Effect.succeed(client)
    )

    /**
     * Claims and releases wait here and go to PostgreSQL together, one statement at a time on
     * the connection: a thousand answers starting at once are a few round trips, not a
     * thousand queued ones. (A semaphore in front of the connection did that queueing before:
     * with hundreds of waiters, every release woke them all and each loser re-queued one
     * frame deeper, quadratic in time and memory.) Session locks are reentrant, so a release
     * and a claim of one project in the same statement end with it held whichever runs first.
     */
    const toClaim = new Map<ProjectId, Deferred.Deferred<boolean, DatabaseUnavailable>>()
    const toRelease = new Map<ProjectId, Deferred.Deferred<void>>()
    let flushing = false
    /** One statement for everything waiting; its waiters get their answers (whole, even if interrupted). */
    const flushOnce = Effect.gen(function* () {
      const claims = [...toClaim]
      const releases = [...toRelease]
      toClaim.clear()
      toRelease.clear()
      const locked = yield* connected.pipe(
        Effect.flatMap((connection) =>
          Effect.tryPromise({
            try: () =>
              connection.query<{ locked: ReadonlyArray<ProjectId> }>(
                `SELECT (SELECT count(*) FROM unnest($1::text[]) AS u WHERE ${UNLOCK}) AS unlocked,
                        array(SELECT p FROM unnest($2::text[]) AS p WHERE ${LOCK}) AS locked`,
                [releases.map(([projectId]) => projectId), claims.map(([projectId]) => projectId)]
              ),
            catch: (cause) => new DatabaseUnavailable({ cause })
          })
        ),
        Effect.map((result) => new Set(result.rows[0]?.locked ?? [])),
        Effect.either
      )
      for (const [, done] of releases) Deferred.unsafeDone(done, Exit.void)
      for (const [projectId, done] of claims) {
        Deferred.unsafeDone(done, Either.match(locked, { onLeft: Exit.fail, onRight: (set) => Exit.succeed(set.has(projectId)) }))
      }
    }).pipe(Effect.uninterruptible)
    const flush = Effect.whileLoop({
      while: () => toClaim.size > 0 || toRelease.size > 0,
      body: () => flushOnce,
      step: () => {}
    }).pipe(
      // Interrupted (the service is stopping): whoever still waits is answered, not left hanging.
      Effect.ensuring(Effect.sync(() => {
        flushing = false
        for (const [, done] of toRelease) Deferred.unsafeDone(done, Exit.void)
        for (const [, done] of toClaim) Deferred.unsafeDone(done, Exit.fail(new DatabaseUnavailable({ cause: "ownership closing" })))
        toRelease.clear()
        toClaim.clear()
      }))
    )
    const startFlush = Effect.suspend(() => {
      if (flushing) return Effect.void
      flushing = true
      return Effect.asVoid(Effect.forkIn(flush, scope))
    })
    /** The project's place in the next statement (one per project however many ask). */
    const enqueue = <A, E>(waiting: Map<ProjectId, Deferred.Deferred<A, E>>, projectId: ProjectId) => {
      let done = waiting.get(projectId)
      if (done === undefined) {
        done = Deferred.unsafeMake<A, E>(FiberId.none)
        waiting.set(projectId, done)
      }
      return done
    }

    /** Claims those of the projects no instance holds; returns them. */
    const claimAll = Effect.fn("Ownership.claimAll")((projectIds: ReadonlyArray<ProjectId>) =>
      Effect.gen(function* () {
        const candidates = projectIds.filter((projectId) => !held.has(projectId))
        if (candidates.length === 0) return []
        for (const projectId of candidates) held.set(projectId, 1)
        const waits = candidates.map((projectId) => enqueue(toClaim, projectId))
        yield* startFlush
        const claimed = yield* Effect.forEach(waits, Deferred.await).pipe(
          Effect.tapError(() => Effect.sync(() => candidates.forEach((projectId) => held.delete(projectId))))
        )
        candidates.forEach((projectId, i) => {
          if (!claimed[i]) held.delete(projectId)
        })
        return candidates.filter((_, i) => claimed[i])
      }))

    /**
     * Claims the project for an answer of this instance; false when another instance holds it.
     * The caller has reserved the project here, so one this instance holds is between an
     * answer's end and its release: the new answer shares the lock.
     */
    const claim = (projectId: ProjectId) =>
      Effect.suspend(() => {
        const count = held.get(projectId)
        if (count === undefined) return Effect.map(claimAll([projectId]), (claimed) => claimed.length > 0)
        if (reclaim) return Effect.succeed(false)
        held.set(projectId, count + 1)
        return Effect.succeed(true)
      })

    /** Gives a claim up (its answer is stored, or handed over); the last one unlocks. Never fails. */
    const release = (projectId: ProjectId) =>
      Effect.suspend(() => {
        const count = held.get(projectId)
        if (count === undefined) return Effect.void
        if (count > 1) return Effect.sync(() => held.set(projectId, count - 1))
        held.delete(projectId)
        const done = enqueue(toRelease, projectId)
        return Effect.zipRight(startFlush, Deferred.await(done))
      })

    return {
      claim,
      claimAll,
      release,
      holds: (projectId: ProjectId): boolean => held.has(projectId),
      /** Called for each project whose lock another instance took while this one was disconnected. */
      onLost: (listener: (projectId: ProjectId) => void): void => void lostListeners.add(listener)
    } as const
  })
}) {}
