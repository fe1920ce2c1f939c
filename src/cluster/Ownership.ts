import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import pg from "pg"
import { DatabaseUrl } from "../db/Database.js"
import { DatabaseUnavailable } from "../domain/Errors.js"
import type { ProjectId } from "../domain/Ids.js"

const RECONNECT_EVERY = Duration.seconds(1)
const LOCK = "pg_try_advisory_lock(hashtextextended(p, 12))"

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

    // pg queues concurrent queries on a client, but that use is deprecated: one at a time here.
    const serially = (yield* Effect.makeSemaphore(1)).withPermits(1)
    const connected = Effect.flatMap(ensureOpen, () =>
      client === undefined ? Effect.fail(new DatabaseUnavailable({ cause: "ownership connection down" })) : Effect.succeed(client)
    )

    /** Claims those of the projects no instance holds, in one round trip; returns them. */
    const claimAll = Effect.fn("Ownership.claimAll")((projectIds: ReadonlyArray<ProjectId>) =>
      Effect.gen(function* () {
        const candidates = projectIds.filter((projectId) => !held.has(projectId))
        if (candidates.length === 0) return []
        const connection = yield* connected
        for (const projectId of candidates) held.set(projectId, 1)
        const claimed = yield* serially(Effect.tryPromise({
          try: () => lockAll(connection, candidates),
          catch: (cause) => new DatabaseUnavailable({ cause })
        })).pipe(Effect.tapError(() => Effect.sync(() => candidates.forEach((projectId) => held.delete(projectId)))))
        for (const projectId of candidates) if (!claimed.has(projectId)) held.delete(projectId)
        return candidates.filter((projectId) => claimed.has(projectId))
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
        return connected.pipe(
          Effect.flatMap((connection) =>
            serially(Effect.tryPromise(() => connection.query("SELECT pg_advisory_unlock(hashtextextended($1, 12))", [projectId])))
          ),
          Effect.ignore
        )
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
