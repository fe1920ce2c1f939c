import type { ProjectId } from "../domain/Ids.js"

/** An instance neither in the heartbeat table nor heard from this long no longer follows anything. */
export const FORGET_FOLLOWER_MS = 10_000
/** How long after an answer starts its events go to the bus whether or not a follower is known. */
export const UNSURE_OF_FOLLOWERS_MS = 1_000

/**
 * Which other instances follow which project (they have sockets on it), as they said on the
 * bus: a project's events go to the bus only while someone follows it.
 */
export class Followers {
  private readonly byProject = new Map<ProjectId, Set<string>>()
  /** When each other instance was last heard from (ms, monotonic). */
  private readonly heardFrom = new Map<string, number>()

  /** A notification of `instance` arrived. */
  heard(instance: string): void {
    this.heardFrom.set(instance, performance.now())
  }

  /** Whether another instance follows the project. */
  any(projectId: ProjectId): boolean {
    return (this.byProject.get(projectId)?.size ?? 0) > 0
  }

  /** Records that `instance` follows the project; true when it was not known to. */
  add(projectId: ProjectId, instance: string): boolean {
    let set = this.byProject.get(projectId)
    if (set === undefined) this.byProject.set(projectId, (set = new Set()))
    if (set.has(instance)) return false
    set.add(instance)
    return true
  }

  remove(projectId: ProjectId, instance: string): void {
    const set = this.byProject.get(projectId)
    if (set === undefined) return
    set.delete(instance)
    if (set.size === 0) this.byProject.delete(projectId)
  }

  /** Instances that died (a SIGKILL says no `u`) stop counting: those not `alive` and not heard from lately. */
  forgetGone(alive: ReadonlySet<string>): void {
    const now = performance.now()
    const gone = new Set<string>()
    for (const [id, at] of this.heardFrom) if (!alive.has(id) && now - at > FORGET_FOLLOWER_MS) gone.add(id)
    if (gone.size === 0) return
    for (const id of gone) this.heardFrom.delete(id)
    for (const [projectId, set] of this.byProject) {
      for (const id of gone) set.delete(id)
      if (set.size === 0) this.byProject.delete(projectId)
    }
  }
}
