import type { MessageId, ProjectId } from "../domain/Ids.js"

/** One connection's outbound side; both calls are synchronous and never block the caller. */
export interface Subscriber {
  /** Queues an already-encoded event. */
  readonly send: (json: string) => void
  /** Queues a close after every event queued before it. */
  readonly close: (code: number, reason: string) => void
}

/** An answer being generated: the text so far is what a rejoining client catches up with. */
export interface Generation {
  readonly messageId: MessageId
  readonly userMessageId: MessageId
  readonly clientMessageId: string | null
  text: string
  /** Chunks sent so far. */
  seq: number
  /** `performance.now()` when the answer started, and when its first chunk arrived. */
  readonly startedAt: number
  firstChunkAt: number | undefined
  /** Ends the answer early: `cancelled` by a user, `interrupted` by a shutdown. */
  readonly stop: (reason: "cancelled" | "interrupted") => void
}

/** A project's live state: who listens, and the answer streaming (or about to), if any. */
export interface Room {
  readonly subscribers: Set<Subscriber>
  generation: Generation | undefined
  /** A send is between its checks and its generation starting: the project is busy. */
  reserved: boolean
}

/**
 * The in-memory registry of rooms. Every method is synchronous, so a check and the change
 * it guards happen with nothing in between (JavaScript runs one at a time): a rejoining
 * client's snapshot and subscription cannot miss or repeat a chunk.
 */
export class Rooms {
  private readonly rooms = new Map<ProjectId, Room>()

  room(projectId: ProjectId): Room {
    let room = this.rooms.get(projectId)
    if (room === undefined) {
      room = { subscribers: new Set(), generation: undefined, reserved: false }
      this.rooms.set(projectId, room)
    }
    return room
  }

  /** Forgets a room nobody uses, so the map does not grow with every project ever opened. */
  release(projectId: ProjectId): void {
    const room = this.rooms.get(projectId)
    if (room !== undefined && room.subscribers.size === 0 && room.generation === undefined && !room.reserved) {
      this.rooms.delete(projectId)
    }
  }

  broadcast(projectId: ProjectId, json: string): void {
    const room = this.rooms.get(projectId)
    if (room === undefined) return
    for (const subscriber of room.subscribers) subscriber.send(json)
  }

  generations(): ReadonlyArray<Generation> {
    const running: Array<Generation> = []
    for (const room of this.rooms.values()) if (room.generation !== undefined) running.push(room.generation)
    return running
  }

  isIdle(): boolean {
    for (const room of this.rooms.values()) if (room.generation !== undefined || room.reserved) return false
    return true
  }

  hasSubscribers(): boolean {
    for (const room of this.rooms.values()) if (room.subscribers.size > 0) return true
    return false
  }

  closeAll(code: number, reason: string): void {
    for (const room of this.rooms.values()) for (const subscriber of room.subscribers) subscriber.close(code, reason)
  }
}
