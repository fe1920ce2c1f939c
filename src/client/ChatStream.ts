import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { type ChatConnectionOptions, ChatConnection, type ChatEvent } from "./ChatConnection.js"

/** A chat connection for the scope's lifetime: opened now, closed when the scope closes. */
export const chatConnection = (options: ChatConnectionOptions) =>
  Effect.acquireRelease(
    Effect.sync(() => new ChatConnection(options)),
    (connection) => Effect.sync(() => connection.close())
  )

/** The connection's events from now on as an Effect `Stream` (ends when the connection closes). */
export const chatEvents = (connection: ChatConnection): Stream.Stream<ChatEvent> =>
  Stream.async<ChatEvent>((emit) => {
    const unsubscribe = connection.subscribe((event) => {
      void emit.single(event)
      if (event._tag === "Connection" && event.state === "closed") void emit.end()
    })
    return Effect.sync(unsubscribe)
  })
