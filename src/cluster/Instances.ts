import * as SqlClient from "@effect/sql/SqlClient"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import { Lifecycle } from "../Lifecycle.js"
import { Bus } from "./Bus.js"

/** How often an instance says it is alive; one unseen for PEER_TIMEOUT is gone. */
const HEARTBEAT = Duration.millis(500)
const PEER_TIMEOUT_SECONDS = 3
/** Rows of instances unseen this long are deleted (a SIGKILL leaves its row behind). */
const FORGET_AFTER_SECONDS = 60

/**
 * The other instances on this database, from a heartbeat row each (`instances`). Read
 * synchronously on the hot path (`hasPeers`: whether live events go to the bus at all), so
 * a lone instance pays one small write per heartbeat and nothing per event.
 */
export class Instances extends Effect.Service<Instances>()("Instances", {
  scoped: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const bus = yield* Bus
    const lifecycle = yield* Lifecycle
    const id = bus.instanceId
    let livePeers = 0
    /** The other instances seen within PEER_TIMEOUT at the last heartbeat. */
    let peerIds: ReadonlySet<string> = new Set()
    /** When a message of another instance last arrived on the bus (ms, monotonic). */
    let peerSignalAt = Number.NEGATIVE_INFINITY

    const beat = Effect.gen(function* () {
      const draining = yield* lifecycle.isDraining
      const rows = yield* sql<{ livePeers: number; ids: ReadonlyArray<string> | null }>`
        WITH me AS (
          INSERT INTO instances (id, seen_at, draining) VALUES (${id}, NOW(), ${draining})
          ON CONFLICT (id) DO UPDATE SET seen_at = NOW(), draining = EXCLUDED.draining
        ), forgotten AS (
          DELETE FROM instances WHERE seen_at < NOW() - make_interval(secs => ${FORGET_AFTER_SECONDS})
        )
        SELECT (count(*) FILTER (WHERE NOT draining))::int AS live_peers, array_agg(id) AS ids FROM instances
        WHERE id <> ${id} AND seen_at > NOW() - make_interval(secs => ${PEER_TIMEOUT_SECONDS})`
      livePeers = rows[0]?.livePeers ?? 0
      peerIds = new Set(rows[0]?.ids ?? [])
    })
    // Once before serving: a new instance knows its peers before its first socket.
    yield* beat.pipe(Effect.ignore)
    yield* beat.pipe(Effect.ignore, Effect.repeat(Schedule.spaced(HEARTBEAT)), Effect.forkScoped)
    yield* Effect.addFinalizer(() => sql`DELETE FROM instances WHERE id = ${id}`.pipe(Effect.ignore))

    return {
      id,
      /** Another instance may listen: live events go to the bus. */
      hasPeers: (): boolean => peerIds.size > 0 || performance.now() - peerSignalAt < PEER_TIMEOUT_SECONDS * 1000,
      /** The other instances alive at the last heartbeat (a message from one not listed yet may be newer). */
      peerIds: (): ReadonlySet<string> => peerIds,
      /** A message of another instance arrived: it is alive, whatever the last heartbeat said. */
      sawPeer: (): void => {
        peerSignalAt = performance.now()
      },
      /** Another instance is alive and not shutting down (asked of the database now): it can take answers over. */
      livePeerExists: beat.pipe(Effect.map(() => livePeers > 0), Effect.orElseSucceed(() => false)),
      status: Effect.sync(() => ({ id, peers: peerIds.size, livePeers }))
    } as const
  })
}) {}
