import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpServer from "@effect/platform/HttpServer"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { IncomingMessage, Server, ServerResponse, type ServerOptions } from "node:http"
import { AccessToken, AuthorizationLive, takeQueryToken } from "./Auth.js"
import { rememberUpgradeHead, SocketServer } from "./SocketServer.js"
import { AppConfig } from "../Config.js"
import { Lifecycle } from "../Lifecycle.js"
import { GoChatApi } from "./Api.js"
import { Chat } from "../chat/Chat.js"
import { AsyncApiRoute } from "./AsyncApi.js"
import { ChatSocketRoute } from "./ChatSocket.js"
import { DocsRoute } from "./Docs.js"
import { ErrorMappingLive } from "./ErrorMapping.js"
import { HealthHttpLive } from "./HealthHttp.js"
import { PlaygroundRoute } from "./Playground.js"
import { ProjectsHttpLive } from "./ProjectsHttp.js"
import { requestMiddleware } from "./RequestMiddleware.js"
import { corsOptions } from "./Cors.js"
import { makeFastReads, type Preempt } from "./FastReads.js"

/**
 * Past MAX_BODY_BYTES the platform's body reader destroys the request stream, which makes
 * Node destroy the socket: the client would see a reset instead of 413 PAYLOAD_TOO_LARGE.
 * Stop reading instead; the 413 goes out and the connection closes after it.
 */
class BodyLimitedRequest extends IncomingMessage {
  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (this.complete || this.socket.destroyed) return super._destroy(error, callback)
    this.socket.pause()
    callback(null)
  }
}

/**
 * Offers each request to `preempt` first (`FastReads`): a request it takes never reaches
 * the platform's listeners; one it hands back later (`fallback`) reaches them then.
 */
class PreemptingServer extends Server {
  preempt: Preempt | undefined = undefined

  constructor(options: ServerOptions) {
    super(options)
  }

  override emit(event: string, ...args: Array<unknown>): boolean {
    const preempt = this.preempt
    if (event === "request" && preempt !== undefined && args[0] instanceof IncomingMessage && args[1] instanceof ServerResponse) {
      if (preempt(args[0], args[1], () => super.emit("request", ...args))) return true
    }
    return super.emit(event, ...args)
  }
}

/** Installs the fast REST reads on `server` (none with tracing on). */
const fastReads = (server: PreemptingServer) =>
  Layer.effectDiscard(Effect.map(makeFastReads, (preempt) => {
    server.preempt = Option.getOrUndefined(preempt)
  }))

const ApiLive = HttpApiBuilder.api(GoChatApi).pipe(
  Layer.provide([ProjectsHttpLive, HealthHttpLive]),
  Layer.provide(AuthorizationLive)
)

/**
 * Released before the HTTP server's own finalizer: mark the service draining, stop
 * accepting connections, let in-flight requests finish within SHUTDOWN_GRACE_SECONDS,
 * then cut whatever is left so shutdown is bounded.
 */
const gracefulShutdown = (server: Server) =>
  Layer.scopedDiscard(
    Effect.gen(function* () {
      const lifecycle = yield* Lifecycle
      const chat = yield* Chat
      const sockets = yield* SocketServer
      const { shutdownGrace } = yield* AppConfig
      yield* Effect.addFinalizer(() =>
        Effect.gen(function* () {
          yield* lifecycle.startDraining
          yield* Effect.logInfo("shutting down: draining in-flight requests and answers")
          server.close()
          const [requestsIdle] = yield* Effect.all([lifecycle.awaitIdle(shutdownGrace), chat.drain(shutdownGrace)], {
            concurrency: "unbounded"
          })
          if (!requestsIdle) yield* Effect.logWarning("grace period over: closing remaining connections")
          server.closeAllConnections()
          // Upgraded sockets are no longer the HTTP server's: a client that never finishes the
          // close handshake is cut here, so that shutdown stays bounded whatever clients do.
          yield* sockets.closeAll(1001, "going away")
        })
      )
    })
  )

/** The HTTP server: REST API, chat WebSocket, OpenAPI and AsyncAPI documents, playground page, CORS, errors, access log. */
export const HttpServerLive = Layer.unwrapEffect(
  Effect.gen(function* () {
    const config = yield* AppConfig
    const lifecycle = yield* Lifecycle
    const server = new PreemptingServer({
      IncomingMessage: BodyLimitedRequest,
      headersTimeout: Duration.toMillis(config.httpHeadersTimeout),
      requestTimeout: Duration.toMillis(config.httpRequestTimeout)
    })
    server.maxConnections = config.maxConnections
    // Before the platform routes an upgrade: keep the bytes read past its headers for `ws`,
    // and take a `?token=` out of the URL so that no log line or trace can show it.
    server.prependListener("upgrade", (request: IncomingMessage, _socket: unknown, head: Buffer) => {
      rememberUpgradeHead(request, head)
      takeQueryToken(request)
    })
    // REST takes no `?token=`, but one sent anyway must not reach a trace's URL either.
    server.prependListener("request", takeQueryToken)
    const serve = HttpApiBuilder.serve(requestMiddleware(config.maxBodyBytes, lifecycle)).pipe(
      Layer.provide(DocsRoute),
      Layer.provide(HttpApiBuilder.middlewareOpenApi({ path: "/openapi.json" })),
      Layer.provide(
        HttpApiBuilder.middlewareCors(corsOptions(config.corsOrigins))
      ),
      Layer.provide(ErrorMappingLive),
      Layer.provide(ApiLive),
      Layer.provide(ChatSocketRoute),
      Layer.provide(AsyncApiRoute),
      Layer.provide(PlaygroundRoute),
      HttpServer.withLogAddress
    )
    // Built last, released first: draining starts while the server still answers.
    return gracefulShutdown(server).pipe(
      Layer.provideMerge(fastReads(server)),
      Layer.provideMerge(serve),
      Layer.provideMerge(NodeHttpServer.layer(() => server, { port: config.port, host: config.host })),
      Layer.provideMerge(Layer.merge(SocketServer.Default, AccessToken.Default))
    )
  })
)
