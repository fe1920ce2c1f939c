import { WebSocket } from "ws"
import type { Subscriber } from "../chat/Rooms.js"
import { closeBounded } from "./SocketServer.js"

/** Why the server cut a connection itself, for the log line written when it is gone. */
export type CutReason = "backed_up" | "queue_full" | "reader_failed"

/**
 * One connection's outbound side. Events go straight to the socket (`ws` keeps them in
 * order), so a chunk costs one send and no fiber hop. A client that stops reading makes
 * them pile up in this process: past WS_MAX_BUFFERED_BYTES the socket is terminated (its
 * answer goes on; the client rejoins and catches up).
 */
export const makeOutbox = (ws: WebSocket, maxBufferedBytes: number) => {
  let cutReason: CutReason | undefined
  const cut = (reason: CutReason, close: () => void) => {
    cutReason ??= reason
    close()
  }
  const checkBackedUp = () => {
    if (ws.bufferedAmount > maxBufferedBytes) cut("backed_up", () => ws.terminate())
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
  return {
    subscriber,
    /** Closes with `code` for `reason` (1008 policy, 1011 server error), cut if the close handshake stalls. */
    closeFor: (reason: CutReason, code: number) => cut(reason, () => closeBounded(ws, code, reason)),
    cutReason: () => cutReason
  }
}
