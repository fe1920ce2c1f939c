import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import { randomBytes } from "node:crypto"
import type { IncomingMessage } from "node:http"
import { WebSocket, WebSocketServer } from "ws"
import { AppConfig } from "../Config.js"

/** A socket that has not finished its close handshake this long after `close` is cut. */
const CLOSE_HANDSHAKE_LIMIT_MS = 2_000

/**
 * Bytes already read after an upgrade request's headers: Node hands them to the `upgrade`
 * event only, so the server's listener keeps them here for `ws` to read first.
 */
const upgradeHeads = new WeakMap<IncomingMessage, Buffer>()

/** Called by the HTTP server's `upgrade` listener, before the request is routed. */
export const rememberUpgradeHead = (request: IncomingMessage, head: Buffer): void => {
  if (head.length > 0) upgradeHeads.set(request, head)
}

/** Sockets whose cut is already scheduled: one timer and one listener each, however often they are closed. */
const cutsScheduled = new WeakSet<WebSocket>()

/** Closes with `code`, and cuts the connection if the client does not finish the close handshake in time. */
export const closeBounded = (ws: WebSocket, code: number, reason: string): void => {
  if (ws.readyState === WebSocket.CLOSED) return
  if (!cutsScheduled.has(ws)) {
    cutsScheduled.add(ws)
    const cut = setTimeout(() => ws.terminate(), CLOSE_HANDSHAKE_LIMIT_MS).unref()
    ws.once("close", () => clearTimeout(cut))
  }
  if (ws.readyState === WebSocket.OPEN) ws.close(code, reason)
}

/** The most a client may put in one frame: a chat message of MAX_MESSAGE_CHARS, JSON-escaped in the worst case, plus its envelope. */
export const maxFrameBytesFor = (maxMessageChars: number): number => maxMessageChars * 6 + 4096

/** Frames up to this size are always read and answered, however small MAX_MESSAGE_CHARS is. */
const MIN_PAYLOAD_BYTES = 1024 * 1024

/**
 * `ws` refuses a frame above this from its header (close 1009), before buffering it. A
 * frame between the two limits is read and answered with MESSAGE_TOO_LARGE, so a client
 * that is slightly over learns why and keeps its connection.
 */
export const maxPayloadFor = (maxFrameBytes: number): number => Math.max(2 * maxFrameBytes, MIN_PAYLOAD_BYTES)

/**
 * The `ws` server behind /ws/chat, made here rather than by the platform so that its
 * limits are ours: `maxPayload` (a larger frame is refused with 1009 from its header,
 * before it is buffered), one heartbeat for every socket, a bound on unsent bytes, and
 * sockets that are cut when they do not close in time.
 */
export class SocketServer extends Effect.Service<SocketServer>()("SocketServer", {
  scoped: Effect.gen(function* () {
    const config = yield* AppConfig
    const maxFrameBytes = maxFrameBytesFor(config.maxMessageChars)
    const wss = new WebSocketServer({
      noServer: true,
      maxPayload: maxPayloadFor(maxFrameBytes),
      perMessageDeflate: false,
      clientTracking: true
    })

    /** When each socket last answered a ping, and the payload of the ping it has yet to answer. */
    const heartbeats = new Map<WebSocket, { answeredAt: number; awaiting: Buffer | undefined }>()
    const pongTimeout = Duration.toMillis(config.wsPongTimeout)
    // One timer for all sockets (a timer per socket costs memory and idle CPU). Each ping
    // carries a fresh random payload that only a client reading our frames can echo.
    yield* Effect.sync(() => {
      const now = Date.now()
      const payload = randomBytes(8)
      for (const [ws, heartbeat] of heartbeats) {
        if (now - heartbeat.answeredAt > pongTimeout) ws.terminate()
        else if (ws.readyState === WebSocket.OPEN && heartbeat.awaiting === undefined) {
          heartbeat.awaiting = payload
          ws.ping(payload)
        }
      }
    }).pipe(Effect.repeat(Schedule.spaced(config.wsPingInterval)), Effect.delay(config.wsPingInterval), Effect.forkScoped)

    const watch = (ws: WebSocket) => {
      const heartbeat: { answeredAt: number; awaiting: Buffer | undefined } = { answeredAt: Date.now(), awaiting: undefined }
      heartbeats.set(ws, heartbeat)
      // Only the answer to our ping counts: unsolicited pongs cannot keep a dead reader alive.
      ws.on("pong", (data) => {
        if (heartbeat.awaiting === undefined || !data.equals(heartbeat.awaiting)) return
        heartbeat.awaiting = undefined
        heartbeat.answeredAt = Date.now()
      })
      ws.once("close", () => heartbeats.delete(ws))
    }

    /**
     * Completes the handshake of an upgrade request and hands the socket to `onOpen` at once,
     * in `ws`'s callback, so that no frame or close can arrive before its listeners exist.
     * No scope and no fiber stays behind: the socket lives on callbacks until it closes.
     * Interrupted if the client goes away before the handshake is done.
     */
    const upgrade = <A>(request: HttpServerRequest.HttpServerRequest, onOpen: (ws: WebSocket) => A) =>
      Effect.async<A>((resume) => {
        const incoming = NodeHttpServerRequest.toIncomingMessage(request)
        const socket = incoming.socket
        // The platform answers every request it routes once the handler returns. The socket is
        // taken from its response and that response ended: what the platform writes then goes
        // nowhere, and the upgraded socket stays ours.
        const response = NodeHttpServerRequest.toServerResponse(request)
        response.detachSocket(socket)
        response.end()
        const onClose = () => resume(Effect.interrupt)
        socket.once("close", onClose)
        wss.handleUpgrade(incoming, socket, upgradeHeads.get(incoming) ?? Buffer.alloc(0), (ws) => {
          socket.off("close", onClose)
          upgradeHeads.delete(incoming)
          watch(ws)
          // Thrown here, a bug would escape into `ws`: it closes the socket and fails the handshake's fiber instead.
          try {
            resume(Effect.succeed(onOpen(ws)))
          } catch (bug) {
            closeBounded(ws, 1011, "")
            resume(Effect.die(bug))
          }
        })
      })

    /** Shutdown's last step: every socket still open is closed, and cut after the close limit. */
    const closeAll = (code: number, reason: string) =>
      Effect.gen(function* () {
        for (const ws of wss.clients) closeBounded(ws, code, reason)
        yield* Effect.sync(() => wss.clients.size === 0).pipe(
          Effect.repeat({ schedule: Schedule.spaced("50 millis"), until: (done) => done }),
          Effect.timeout(Duration.millis(CLOSE_HANDSHAKE_LIMIT_MS + 500)),
          Effect.ignore
        )
        for (const ws of wss.clients) ws.terminate()
      })

    yield* Effect.addFinalizer(() =>
      closeAll(1001, "going away").pipe(Effect.zipRight(Effect.async<void>((resume) => wss.close(() => resume(Effect.void)))))
    )

    return { maxFrameBytes, maxPayload: maxPayloadFor(maxFrameBytes), upgrade, closeAll, openSockets: () => wss.clients.size } as const
  })
}) {}
