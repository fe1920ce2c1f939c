import * as Effect from "effect/Effect"
import type { ProjectId } from "../domain/Ids.js"
import * as Events from "./Events.js"
import type { Generation } from "./Generation.js"

/** One connection's outbound side; both calls are synchronous and never block the caller. */
export interface Subscriber {
  /** Queues an already-encoded event. */
  readonly send: (json: string) => void
  /** Queues a close after every event queued before it. */
  readonly close: (code: number, reason: string) => void
}

/** A project's live state: who listens, and the answer streaming (or about to), if any. */
interface Room {
  readonly subscribers: Set<Subscriber>
  generation: Generation | undefined
  /** A send is between its checks and its answer starting: the project is busy. */
  reserved: boolean
  /** The `clientMessageId` of that send, if it has one: its retries wait for its start. */
  reservedFor: string | null
}

/**
 * Who listens to which project, and which answer each project is generating. Every method
 * is synchronous, so a check and the change it guards happen with nothing in between
 * (JavaScript runs one at a time): a rejoining client's catch-up and its subscription
 * cannot miss or repeat a chunk. Each method forgets a room once nothing uses it, so the
 * map does not grow with every project ever opened and no caller has to remember to.
 */
export class Rooms extends Effect.Service<Rooms>()("Rooms", {
  sync: () => {
    const rooms = new Map<ProjectId, Room>()

    const roomOf = (projectId: ProjectId): Room => {
      let room = rooms.get(projectId)
      if (room === undefined) {
        room = { subscribers: new Set(), generation: undefined, reserved: false, reservedFor: null }
        rooms.set(projectId, room)
      }
      return room
    }

    const releaseIfUnused = (projectId: ProjectId, room: Room) => {
      if (room.subscribers.size === 0 && room.generation === undefined && !room.reserved) rooms.delete(projectId)
    }

    /** To this instance's connections only. */
    const deliver = (projectId: ProjectId, json: string): void => {
      const room = rooms.get(projectId)
      if (room !== undefined) for (const subscriber of room.subscribers) subscriber.send(json)
    }
    /** Where this instance's events go besides its own connections (the other instances). */
    let relay: (projectId: ProjectId, json: string) => void = () => {}
    /** To the project's connections on every instance. */
    const broadcast = (projectId: ProjectId, json: string): void => {
      deliver(projectId, json)
      relay(projectId, json)
    }

    return {
      /** Subscribes a connection; one joining mid-answer first gets the catch-up. */
      join: (projectId: ProjectId, subscriber: Subscriber): void => {
        const room = roomOf(projectId)
        room.subscribers.add(subscriber)
        if (room.generation !== undefined) for (const json of room.generation.catchUp()) subscriber.send(json)
      },
      leave: (projectId: ProjectId, subscriber: Subscriber): void => {
        const room = rooms.get(projectId)
        if (room === undefined) return
        room.subscribers.delete(subscriber)
        releaseIfUnused(projectId, room)
      },
      /** The answer streaming in the project, if any. */
      running: (projectId: ProjectId): Generation | undefined => rooms.get(projectId)?.generation,
      /** Claims the project for a new answer (of the send `clientMessageId`); false when it is busy. */
      reserve: (projectId: ProjectId, clientMessageId: string | null = null): boolean => {
        const room = roomOf(projectId)
        if (room.generation !== undefined || room.reserved) return false
        room.reserved = true
        room.reservedFor = clientMessageId
        return true
      },
      /** Whether the project is reserved for the send `clientMessageId` (its answer is about to start). */
      isReservedFor: (projectId: ProjectId, clientMessageId: string): boolean => rooms.get(projectId)?.reservedFor === clientMessageId,
      /** Gives up a claim that did not become an answer (harmless after `begin`). */
      unreserve: (projectId: ProjectId): void => {
        const room = rooms.get(projectId)
        if (room === undefined) return
        room.reserved = false
        room.reservedFor = null
        releaseIfUnused(projectId, room)
      },
      /**
       * The reserved project's answer starts: every connection hears `message_start` (with
       * `resumed` and the text so far when it goes on from stored text).
       */
      begin: (projectId: ProjectId, generation: Generation): void => {
        const room = roomOf(projectId)
        room.reserved = false
        room.reservedFor = null
        room.generation = generation
        const start = generation.isResumed
          ? generation.catchUp()
          : [Events.messageStart(generation.messageId, generation.userMessageId, false)]
        for (const json of start) broadcast(projectId, json)
      },
      /** The answer is over: every connection hears its last event, and the project is free. */
      end: (projectId: ProjectId, generation: Generation, lastEvent: string): void => {
        const room = rooms.get(projectId)
        if (room === undefined || room.generation !== generation) return
        room.generation = undefined
        broadcast(projectId, lastEvent)
        releaseIfUnused(projectId, room)
      },
      /**
       * The answer goes on elsewhere (handed to another instance): the project is free here,
       * and its connections hear the rest from the instance that takes it over.
       */
      release: (projectId: ProjectId, generation: Generation): void => {
        const room = rooms.get(projectId)
        if (room === undefined || room.generation !== generation) return
        room.generation = undefined
        releaseIfUnused(projectId, room)
      },
      broadcast,
      deliver,
      relayTo: (to: (projectId: ProjectId, json: string) => void): void => {
        relay = to
      },
      generations: (): ReadonlyArray<Generation> => {
        const running: Array<Generation> = []
        for (const room of rooms.values()) if (room.generation !== undefined) running.push(room.generation)
        return running
      },
      /** Answers streaming or about to start, in every project. */
      activeCount: (): number => {
        let count = 0
        for (const room of rooms.values()) if (room.generation !== undefined || room.reserved) count++
        return count
      },
      /** No answer is streaming or about to start. */
      isIdle: (): boolean => {
        for (const room of rooms.values()) if (room.generation !== undefined || room.reserved) return false
        return true
      },
      hasSubscribers: (): boolean => {
        for (const room of rooms.values()) if (room.subscribers.size > 0) return true
        return false
      },
      /** Tells every connection of the project `lastEvent`, then closes them. */
      closeRoom: (projectId: ProjectId, lastEvent: string, code: number, reason: string): void => {
        const room = rooms.get(projectId)
        if (room === undefined) return
        for (const subscriber of room.subscribers) {
          subscriber.send(lastEvent)
          subscriber.close(code, reason)
        }
      },
      closeAll: (code: number, reason: string): void => {
        for (const room of rooms.values()) for (const subscriber of room.subscribers) subscriber.close(code, reason)
      }
    } as const
  }
}) {}
