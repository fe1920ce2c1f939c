import { HttpApiBuilder, HttpServerRequest, HttpServerResponse, Socket } from "@effect/platform"
import { NodeHttpServerRequest } from "@effect/platform-node"
import { Cause, Duration, Effect, Either, Option, Queue, Schedule, Schema, Scope } from "effect"
import { Chat } from "../chat/Chat.js"
import * as Events from "../chat/Events.js"
import type { Subscriber } from "../chat/Rooms.js"
import { AppConfig } from "../Config.js"
import { ClientFrame, ClientFrameType } from "../domain/ChatProtocol.js"
import { ForbiddenOrigin, InternalError, InvalidMessage, MessageTooLarge, ValidationError } from "../domain/Errors.js"
import { ProjectId } from "../domain/Ids.js"
import { Projects } from "../projects/Projects.js"

/** The `ws` connection under the platform's Socket: sending, protocol pings, closing. */
interface RawWebSocket {
  readonly readyState: number
  send(data: string): void
  close(code: number, reason: string): void
  ping(): void
  terminate(): void
  on(event: "pong", listener: () => void): void
}

const OPEN = 1

const isRawWebSocket = (value: unknown): value is RawWebSocket =>
  typeof value === "object" && value !== null &&
  "readyState" in value && typeof value.readyState === "number" &&
  ["send", "close", "ping", "terminate", "on"].every((method) => typeof Reflect.get(value, method) === "function")

/**
 * One connection's outbound side. Events go straight to the socket (`ws` keeps them in
 * order and buffers them), so a chunk costs one send and no fiber hop; events raised
 * before the socket is open (a rejoin's catch-up) wait in a list until it is.
 */
const makeOutbox = () => {
  let socket: RawWebSocket | undefined
  const early: Array<string | { readonly code: number; readonly reason: string }> = []
  const subscriber: Subscriber = {
    send: (json) => {
      if (socket === undefined) early.push(json)
      else if (socket.readyState === OPEN) socket.send(json)
    },
    close: (code, reason) => {
      if (socket === undefined) early.push({ code, reason })
      else if (socket.readyState === OPEN) socket.close(code, reason)
    }
  }
  const attach = (raw: RawWebSocket) => {
    socket = raw
    for (const item of early.splice(0)) {
      if (typeof item === "string") subscriber.send(item)
      else subscriber.close(item.code, item.reason)
    }
  }
  return { subscriber, attach }
}

/**
 * The `ws` connection behind an upgraded request: `ws` keeps it on the TCP socket under
 * its `websocket` symbol. Heartbeat pings need it (DESIGN §9); without it, app-level
 * ping/pong still works.
 */
const rawWebSocketOf = (request: HttpServerRequest.HttpServerRequest): Option.Option<RawWebSocket> => {
  const socket: object = NodeHttpServerRequest.toIncomingMessage(request).socket
  const key = Object.getOwnPropertySymbols(socket).find((symbol) => symbol.description === "websocket")
  const candidate: unknown = key === undefined ? undefined : Reflect.get(socket, key)
  return isRawWebSocket(candidate) ? Option.some(candidate) : Option.none()
}

const decodeClientFrame = Schema.decodeUnknownEither(ClientFrame, { errors: "first", onExcessProperty: "ignore" })
const isKnownType = Schema.is(ClientFrameType)

/** Parses a text frame into a client message, with the protocol's error for anything else. */
export const parseFrame = (
  data: string | Uint8Array,
  maxFrameBytes: number
): Either.Either<ClientFrame, InvalidMessage | MessageTooLarge | ValidationError> => {
  if (typeof data !== "string") return Either.left(new InvalidMessage({ message: "binary frames are not supported; send JSON text" }))
  if (Buffer.byteLength(data, "utf8") > maxFrameBytes) return Either.left(new MessageTooLarge({ limit: maxFrameBytes, unit: "bytes" }))
  let json: unknown
  try {
    json = JSON.parse(data)
  } catch {
    return Either.left(new InvalidMessage({ message: "frame is not valid JSON" }))
  }
  const type = typeof json === "object" && json !== null && "type" in json ? json.type : undefined
  if (!isKnownType(type)) {
    return Either.left(new InvalidMessage({ message: `unknown message type; expected one of ${ClientFrameType.literals.join(", ")}` }))
  }
  return Either.mapLeft(decodeClientFrame(json), (error) => new ValidationError({ message: error.message }))
}

/** Origins allowed by CORS_ORIGINS; a browser's cross-site socket is refused like its fetch would be. */
const checkOrigin = (allowed: ReadonlyArray<string>, origin: string | undefined) =>
  allowed.length === 0 || origin === undefined || allowed.includes(origin)
    ? Effect.void
    : Effect.fail(new ForbiddenOrigin({ origin }))

/**
 * `GET /ws/chat?projectId=…`: checks the handshake (UUID, origin, project), then serves
 * one connection. Frames are queued as they arrive and handled one at a time, in order;
 * events go straight to the socket; pings run beside both.
 */
export const ChatSocketRoute = HttpApiBuilder.Router.use((router) =>
  Effect.gen(function* () {
    const chat = yield* Chat
    const projects = yield* Projects
    const config = yield* AppConfig
    // A chat message of MAX_MESSAGE_CHARS, JSON-escaped in the worst case, plus its envelope.
    const maxFrameBytes = config.maxMessageChars * 6 + 4096

    // One heartbeat for every connection (a timer per socket costs memory and idle CPU):
    // each tick pings every socket and cuts those silent for longer than WS_PONG_TIMEOUT.
    const lastPongs = new Map<RawWebSocket, number>()
    const pongTimeout = Duration.toMillis(config.wsPongTimeout)
    yield* Effect.sync(() => {
      const now = Date.now()
      for (const [raw, lastPong] of lastPongs) {
        if (now - lastPong > pongTimeout) raw.terminate()
        else if (raw.readyState === OPEN) raw.ping()
      }
    }).pipe(Effect.repeat(Schedule.spaced(config.wsPingInterval)), Effect.delay(config.wsPingInterval), Effect.forkScoped)

    const watch = (raw: RawWebSocket) =>
      Effect.acquireRelease(
        Effect.sync(() => {
          lastPongs.set(raw, Date.now())
          raw.on("pong", () => lastPongs.set(raw, Date.now()))
        }),
        () => Effect.sync(() => lastPongs.delete(raw))
      )

    const serve = (projectId: ProjectId, request: HttpServerRequest.HttpServerRequest, socket: Socket.Socket) =>
      Effect.gen(function* () {
        const frames = yield* Queue.unbounded<string | Uint8Array>()
        const { subscriber, attach } = makeOutbox()
        const scope = yield* Effect.scope
        const onOpen = Effect.suspend(() =>
          Option.match(rawWebSocketOf(request), {
            // The Node platform always serves WebSockets with `ws`; anything else is a bug here.
            onNone: () => Effect.dieMessage("the upgraded connection is not a `ws` WebSocket"),
            onSome: (raw) =>
              Effect.sync(() => attach(raw)).pipe(Effect.zipRight(Scope.extend(watch(raw), scope)))
          })
        )

        const handle = (data: string | Uint8Array) =>
          Either.match(parseFrame(data, maxFrameBytes), {
            onLeft: (error) => Effect.sync(() => subscriber.send(Events.failure(error))),
            onRight: (frame) => {
              switch (frame.type) {
                case "ping":
                  return Effect.sync(() => subscriber.send(Events.pong()))
                case "cancel":
                  return chat.cancel(projectId, frame.messageId)
                case "continue":
                  return chat.continueAnswer(projectId, frame, subscriber).pipe(
                    Effect.catchAll((error) => Effect.sync(() => subscriber.send(Events.failure(error))))
                  )
                case "chat_message":
                  return chat.send(projectId, frame, subscriber).pipe(
                    Effect.catchAll((error) => Effect.sync(() => subscriber.send(Events.failure(error))))
                  )
              }
            }
          })
        // A bug while handling one frame is reported to the client and logged; the loop goes on.
        const handleSafely = (data: string | Uint8Array) =>
          handle(data).pipe(
            Effect.catchAllCause((cause) =>
              Cause.isInterruptedOnly(cause)
                ? Effect.failCause(cause)
                : Effect.logError("unhandled error while handling a chat frame", cause).pipe(
                  Effect.zipRight(Effect.sync(() => subscriber.send(Events.failure(new InternalError()))))
                )
            )
          )
        yield* Queue.take(frames).pipe(Effect.flatMap(handleSafely), Effect.forever, Effect.forkScoped)

        yield* chat.connect(projectId, subscriber)
        yield* Effect.logDebug("chat socket connected")
        // The handler returns nothing, so it runs in the socket's event callback: frames keep their order.
        yield* socket
          .runRaw<void, never, never>((data) => void frames.unsafeOffer(data), { onOpen })
          .pipe(Effect.catchAll((error) => Effect.logDebug("chat socket closed with an error", error)))
      }).pipe(Effect.scoped, Effect.annotateLogs("projectId", projectId))

    yield* router.get(
      "/ws/chat",
      Effect.gen(function* () {
        const request = yield* HttpServerRequest.HttpServerRequest
        const search = yield* HttpServerRequest.ParsedSearchParams
        const projectId = yield* Schema.decodeUnknown(ProjectId)(search["projectId"]).pipe(
          Effect.mapError(() => new ValidationError({ message: "projectId must be a UUID" }))
        )
        yield* checkOrigin(config.corsOrigins, request.headers["origin"])
        yield* projects.find(projectId)
        const socket = yield* request.upgrade
        yield* serve(projectId, request, socket)
        return HttpServerResponse.empty()
      })
    )
  })
)
