import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as FiberRef from "effect/FiberRef"
import * as HashMap from "effect/HashMap"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import { WebSocket } from "ws"
import { Chat } from "../chat/Chat.js"
import * as Events from "../chat/Events.js"
import { AppConfig } from "../Config.js"
import type { ChatMessageFrame } from "../domain/ChatProtocol.js"
import { ForbiddenOrigin, InternalError, RateLimited, ValidationError } from "../domain/Errors.js"
import { ProjectId } from "../domain/Ids.js"
import { KnownProjects } from "../projects/KnownProjects.js"
import { AccessToken, bearerTokenOf, queryTokenOf } from "./Auth.js"
import { parseFrame } from "./FrameParser.js"
import { makeOutbox } from "./Outbox.js"
import { SocketServer } from "./SocketServer.js"

/** Policy violation: the close code of a client that floods the server with frames. */
const CLOSE_POLICY = 1008
/** The server failed; the client may reconnect. */
const CLOSE_SERVER_ERROR = 1011

/** Origins allowed by CORS_ORIGINS; a browser's cross-site socket is refused like its fetch would be. */
const checkOrigin = (allowed: ReadonlyArray<string>, origin: string | undefined) =>
  allowed.length === 0 || origin === undefined || allowed.includes(origin)
    ? Effect.void
    : Effect.fail(new ForbiddenOrigin({ origin }))

/** At most `limit` sends in any minute on one connection: the times of the last `limit` sends. */
const makeRateLimit = (limit: number) => {
  const sentAt: Array<number> = []
  return () => {
    const now = Date.now()
    while (sentAt.length > 0 && (sentAt[0] ?? now) <= now - 60_000) sentAt.shift()
    if (sentAt.length >= limit) return false
    sentAt.push(now)
    return true
  }
}

const EMPTY_BINARY_FRAME = new Uint8Array(0)

/**
 * `GET /ws/chat?projectId=…`: checks the handshake (token, UUID, origin, project), then
 * serves one connection on `ws`'s callbacks: no fiber waits while the socket is idle. A
 * frame is queued as it arrives (bounded) and handled in a fiber of its own, one at a
 * time and in order; events go straight to the socket.
 */
export const ChatSocketRoute = HttpApiBuilder.Router.use((router) =>
  Effect.gen(function* () {
    const chat = yield* Chat
    const config = yield* AppConfig
    const sockets = yield* SocketServer
    const accessToken = yield* AccessToken
    const maxQueuedBytes = 2 * sockets.maxPayload
    const knownProjects = yield* KnownProjects
    // The service's runtime (logger, tracer, services), not a request's: a socket keeps
    // nothing of the request that opened it but its log annotations.
    const runtime = yield* Effect.runtime<never>()
    const runFork = Runtime.runFork(runtime)

    const serve = (projectId: ProjectId, ws: WebSocket, annotations: HashMap.HashMap<string, unknown>) => {
      const logAnnotations = HashMap.set(annotations, "projectId", projectId)
      const run = <A, E>(effect: Effect.Effect<A, E>) => runFork(Effect.locally(effect, FiberRef.currentLogAnnotations, logAnnotations))
      const outbox = makeOutbox(ws, config.wsMaxBufferedBytes)
      const { subscriber } = outbox
      const reply = (error: Events.ChatFailure) => Effect.sync(() => subscriber.send(Events.failure(error)))
      const withinRate = makeRateLimit(config.wsMessagesPerMinute)
      const rateLimited = Effect.sync(() => {
        const limited = new RateLimited({ limitPerMinute: config.wsMessagesPerMinute })
        subscriber.send(Events.errorEvent(limited.code, limited.message))
      })
      // Acknowledgements of a repeated clientMessageId still being written to this socket:
      // a repeat is dropped until the socket has drained (a client that does not read
      // cannot make the server copy one answer again and again).
      const unsentAcks = new Set<string>()

      const send = (frame: ChatMessageFrame) => {
        const clientMessageId = frame.clientMessageId
        if (ws.bufferedAmount === 0) unsentAcks.clear()
        if (clientMessageId !== undefined && unsentAcks.has(clientMessageId)) return Effect.void
        if (!withinRate()) return rateLimited
        return chat.send(projectId, frame, subscriber).pipe(
          Effect.catchAll(reply),
          Effect.ensuring(Effect.sync(() => {
            if (clientMessageId !== undefined && ws.bufferedAmount > 0) unsentAcks.add(clientMessageId)
          }))
        )
      }

      const handle = (data: string | Uint8Array) =>
        Effect.suspend(() =>
          Either.match(parseFrame(data, sockets.maxFrameBytes), {
            onLeft: reply,
            onRight: (frame) => {
              switch (frame.type) {
                case "ping":
                  return Effect.sync(() => subscriber.send(Events.pong()))
                case "cancel":
                  return chat.cancel(projectId, frame.messageId)
                case "continue":
                  // A continuation costs a Claude request too: it counts against the rate limit.
                  return withinRate()
                    ? chat.continueAnswer(projectId, frame, subscriber).pipe(Effect.catchAll(reply))
                    : rateLimited
                case "chat_message":
                  return send(frame)
              }
            }
          })
        )
      // A bug while handling one frame is reported to the client and logged; the connection goes on.
      const handleSafely = (data: string | Uint8Array) =>
        handle(data).pipe(
          Effect.catchAllCause((cause) =>
            Cause.isInterruptedOnly(cause)
              ? Effect.failCause(cause)
              : Effect.logError("unhandled error while handling a chat frame", cause).pipe(
                Effect.zipRight(reply(new InternalError()))
              )
          )
        )

      const queued: Array<string | Uint8Array> = []
      let queuedBytes = 0
      let handling: Fiber.RuntimeFiber<void, never> | undefined
      let open = true
      /** Starts the next queued frame's fiber when the one before it has ended. */
      const handleNext = (): void => {
        const data = queued.shift()
        handling = undefined
        if (data === undefined || !open) return
        queuedBytes -= data.length
        const fiber = run(handleSafely(data))
        handling = fiber
        fiber.addObserver((exit) => {
          if (Exit.isSuccess(exit) || Exit.isInterrupted(exit)) return handleNext()
          // Unreachable unless handleSafely has a bug: the socket is closed rather than left deaf.
          run(Effect.logError("chat socket reader stopped", exit))
          outbox.closeFor("reader_failed", CLOSE_SERVER_ERROR)
        })
      }
      ws.on("message", (data, isBinary) => {
        // Binary frames are refused whatever they hold: their bytes need not be kept.
        const frame = isBinary ? EMPTY_BINARY_FRAME : data.toString()
        if (queued.length + 1 > config.wsMaxQueuedFrames || queuedBytes + frame.length > maxQueuedBytes) {
          outbox.closeFor("queue_full", CLOSE_POLICY)
          return
        }
        queued.push(frame)
        queuedBytes += frame.length
        if (handling === undefined) handleNext()
      })

      const scope = Effect.runSync(Scope.make())
      ws.once("close", () => {
        open = false
        queued.length = 0
        handling?.unsafeInterruptAsFork(FiberId.none)
        const cut = outbox.cut()
        run(Scope.close(scope, Exit.void).pipe(
          Effect.zipRight(cut === undefined ? Effect.void : Effect.logWarning("chat socket closed by the server").pipe(Effect.annotateLogs({ ...cut })))
        ))
      })
      Runtime.runSync(runtime)(Scope.extend(chat.connect(projectId, subscriber), scope))
    }

    yield* router.get(
      "/ws/chat",
      Effect.gen(function* () {
        const request = yield* HttpServerRequest.HttpServerRequest
        const search = yield* HttpServerRequest.ParsedSearchParams
        const incoming = NodeHttpServerRequest.toIncomingMessage(request)
        yield* accessToken.verify(Option.orElse(bearerTokenOf(request.headers["authorization"]), () => queryTokenOf(incoming)))
        const projectId = yield* Schema.decodeUnknown(ProjectId)(search["projectId"]).pipe(
          Effect.mapError(() => new ValidationError({ message: "projectId must be a UUID" }))
        )
        yield* checkOrigin(config.corsOrigins, request.headers["origin"])
        yield* knownProjects.find(projectId)
        const annotations = yield* FiberRef.get(FiberRef.currentLogAnnotations)
        yield* sockets.upgrade(request, (ws) => serve(projectId, ws, annotations))
        yield* Effect.logDebug("chat socket connected").pipe(Effect.annotateLogs("projectId", projectId))
        // 101 in the access log; the platform writes nothing more on an upgraded socket.
        return HttpServerResponse.empty({ status: 101 })
      })
    )
  })
)
