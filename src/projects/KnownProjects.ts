import * as Cache from "effect/Cache"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Schedule from "effect/Schedule"
import type { ProjectId } from "../domain/Ids.js"
import { Projects } from "./Projects.js"

/** How long a project found by a handshake is taken to exist without asking PostgreSQL again. */
const KNOWN_PROJECT_TTL = Duration.seconds(5)

/**
 * Which projects exist, for WebSocket handshakes: a storm of sockets to a few projects asks
 * PostgreSQL once per project, not once per socket. Deleting a project forgets it at once,
 * so no handshake is accepted for a project that is gone.
 */
export class KnownProjects extends Effect.Service<KnownProjects>()("KnownProjects", {
  effect: Effect.gen(function* () {
    const projects = yield* Projects
    const cache = yield* Cache.makeWith({
      capacity: 10_000,
      // A pool that is slow to hand out connections (a storm right after a restart) is not
      // an outage: one failed lookup would refuse every handshake waiting on it.
      lookup: (projectId: ProjectId) =>
        projects.find(projectId).pipe(
          Effect.retry({ times: 3, schedule: Schedule.exponential("100 millis"), while: (error) => error._tag === "DatabaseUnavailable" })
        ),
      timeToLive: Exit.match({ onFailure: () => Duration.zero, onSuccess: () => KNOWN_PROJECT_TTL })
    })
    return {
      /** The project, or ProjectNotFound / DatabaseUnavailable. */
      find: (projectId: ProjectId) => cache.get(projectId),
      forget: (projectId: ProjectId) => cache.invalidate(projectId)
    } as const
  })
}) {}
