import { Duration, Effect, Redacted, Schedule } from "effect"
import pg from "pg"
import { DatabaseUrl } from "../db/Database.js"
import { DatabaseUnavailable } from "../domain/Errors.js"
import type { ProjectId } from "../domain/Ids.js"

const RECONNECT_EVERY = Duration.seconds(1)

/**
 * Which instance generates a project's answer: the one holding the project's session-level
 * advisory lock, on a connection of its own. PostgreSQL releases the lock the moment that
 * connection dies (a SIGKILL, a network cut), so another instance can take the answer over
 * within a scan; an instance whose connection died stops its answers (`onLost`) for the same reason.
 */
export class Ownership extends Effect.Service<Ownership>()("Ownership", {
  scoped: Effect.gen(function* () {
    const url = Redacted.value(yield* DatabaseUrl)
    const held = new Set<ProjectId>()
    const lostListeners = new Set<() => void>()
    let client: pg.Client | undefined
    let closing = false

    const lose = (lost: pg.Client) => {
      if (client !== lost) return
      client = undefined
      held.clear()
      for (const listener of lostListeners) listener()
    }
    const open = Effect.tryPromise({
      try: async () => {
        const next = new pg.Client({ connectionString: url, application_name: "go-chat-ownership" })
        next.on("error", () => lose(next))
        next.on("end", () => lose(next))
        await next.connect()
        return next
      },
      catch: (cause) => new DatabaseUnavailable({ cause })
    })
    const ensureOpen = Effect.suspend(() =>
      client !== undefined || closing ? Effect.void : Effect.map(open, (next) => void (client = next))
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

    const query = <Row extends pg.QueryResultRow>(text: string, value: ProjectId | ReadonlyArray<ProjectId>) =>
      Effect.suspend(() => {
        const current = client
        if (current === undefined) return Effect.fail(new DatabaseUnavailable({ cause: "ownership connection down" }))
        return Effect.tryPromise({
          try: () => current.query<Row>(text, [value]),
          catch: (cause) => new DatabaseUnavailable({ cause })
        })
      })

    /** Claims the project for this instance; false when an instance (this one included) holds it. */
    const claim = Effect.fn("Ownership.claim")((projectId: ProjectId) =>
      held.has(projectId)
        ? Effect.succeed(false)
        : Effect.gen(function* () {
          held.add(projectId)
          const result = yield* query<{ locked: boolean }>("SELECT pg_try_advisory_lock(hashtextextended($1, 12)) AS locked", projectId).pipe(
            Effect.tapError(() => Effect.sync(() => held.delete(projectId)))
          )
          const locked = result.rows[0]?.locked === true
          if (!locked) held.delete(projectId)
          return locked
        }))

    /** Claims those of the projects no instance holds, in one round trip; returns them. */
    const claimAll = Effect.fn("Ownership.claimAll")((projectIds: ReadonlyArray<ProjectId>) =>
      Effect.gen(function* () {
        const candidates = projectIds.filter((projectId) => !held.has(projectId))
        if (candidates.length === 0) return []
        for (const projectId of candidates) held.add(projectId)
        const result = yield* query<{ projectId: ProjectId }>(
          `SELECT p AS "projectId" FROM unnest($1::text[]) AS p WHERE pg_try_advisory_lock(hashtextextended(p, 12))`,
          candidates
        ).pipe(Effect.tapError(() => Effect.sync(() => candidates.forEach((projectId) => held.delete(projectId)))))
        const claimed = new Set(result.rows.map((row) => row.projectId))
        for (const projectId of candidates) if (!claimed.has(projectId)) held.delete(projectId)
        return candidates.filter((projectId) => claimed.has(projectId))
      }))

    /** Gives the project up (its answer is stored, or handed over). Never fails. */
    const release = (projectId: ProjectId) =>
      Effect.suspend(() => {
        if (!held.delete(projectId)) return Effect.void
        return query("SELECT pg_advisory_unlock(hashtextextended($1, 12)) AS locked", projectId).pipe(Effect.ignore)
      })

    return {
      claim,
      claimAll,
      release,
      holds: (projectId: ProjectId): boolean => held.has(projectId),
      /** Called when the connection (and with it every lock) is lost. */
      onLost: (listener: () => void): void => void lostListeners.add(listener),
      isConnected: (): boolean => client !== undefined
    } as const
  })
}) {}
