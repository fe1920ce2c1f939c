import { WebSocket } from "ws"
import type { Subscriber } from "../chat/Rooms.js"
import { closeBounded } from "./SocketServer.js"

/** Why the server ended a connection itself, for the log line written when it is gone. */
export interface Cut {
  /** backed_up: the client stopped reading; queue_full: it sent faster than it is answered; protocol_error: `ws` refused a frame. */
  readonly reason: "backed_up" | "queue_full" | "reader_failed" | "protocol_error"
  /** The close code sent (1006: none, the connection was cut). */
  readonly closeCode: number
  readonly detail?: string
}

/** The close codes `ws` sends when it refuses a frame; other protocol errors are 1002. */
const PROTOCOL_CLOSE_CODES: Record<string, number> = {
  WS_ERR_UNSUPPORTED_MESSAGE_LENGTH: 1009,
  WS_ERR_INVALID_UTF8: 1007
}

const errorCodeOf = (error: Error): string | undefined => {
  const code: unknown = Reflect.get(error, "code")
  return typeof code === "string" ? code : undefined
}

/**
 * One connection's outbound side. Events go straight to the socket (`ws` keeps them in
 * order), so a chunk costs one send and no fiber hop. A client that stops reading makes
 * them pile up in this process: past WS_MAX_BUFFERED_BYTES the socket is terminated (its
 * answer goes on; the client rejoins and catches up).
 */
export const makeOutbox = (ws: WebSocket, maxBufferedBytes: number) => {
  let cut: Cut | undefined
  const checkBackedUp = () => {
    if (ws.bufferedAmount <= maxBufferedBytes) return
    cut ??= { reason: "backed_up", closeCode: 1006 }
    ws.terminate()
  }
  const subscriber: Subscriber = {
    send: (json) => {
      if (ws.readyState !== WebSocket.OPEN) return
      ws.send(json)
      checkBackedUp()
    },
    close: (code, reason) => closeBounded(ws, code, reason)
  }
  // `ws` answers protocol pings by itself: a client that pings but never reads fills the buffer too.
  ws.on("ping", checkBackedUp)
  // `ws` closes by itself on a frame over maxPayload (1009) or invalid UTF-8 (1007).
  ws.on("error", (error) => {
    const code = errorCodeOf(error)
    cut ??= { reason: "protocol_error", closeCode: (code === undefined ? undefined : PROTOCOL_CLOSE_CODES[code]) ?? 1002, detail: error.message }
  })
  return {
    subscriber,
    /** Closes with `closeCode` (1008 policy, 1011 server error), cut if the close handshake stalls. */
    closeFor: (reason: "queue_full" | "reader_failed", closeCode: number) => {
      cut ??= { reason, closeCode }
      closeBounded(ws, closeCode, reason)
    },
    cut: () => cut
  }
}
