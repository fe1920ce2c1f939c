/**
 * The benchmark's baseline: the least a Claude-to-WebSocket relay can do, with `node:http`,
 * `ws` and `@anthropic-ai/sdk` only (no Effect, no database, no code-block extraction).
 * On `/ws/chat` it takes `chat_message` frames and streams the SDK's text deltas as the
 * service's `message_start` / `message_chunk` / `message_complete` events (same fields),
 * one answer at a time per socket; protocol pings every WS_PING_INTERVAL seconds.
 *
 * Environment: PORT (0 = any free port), HOST, CLAUDE_API_KEY, CLAUDE_BASE_URL, CLAUDE_MODEL,
 * WS_PING_INTERVAL. Prints `{"url":"http://HOST:PORT"}` once listening; exits on SIGTERM/SIGINT.
 * bench/run.ts transpiles this file to plain JavaScript and runs it with bare `node`, so no
 * TypeScript loader sits in the measured process.
 */
import Anthropic from "@anthropic-ai/sdk"
import { randomUUID } from "node:crypto"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { WebSocket, WebSocketServer } from "ws"

const env = process.env
const host = env["HOST"] ?? "127.0.0.1"
const pingIntervalMs = Number(env["WS_PING_INTERVAL"] ?? "30") * 1000
const model = env["CLAUDE_MODEL"] ?? "claude-sonnet-5-5"
const client = new Anthropic({
  apiKey: env["CLAUDE_API_KEY"] ?? "baseline",
  baseURL: env["CLAUDE_BASE_URL"] ?? "https://api.anthropic.com",
  maxRetries: 2
})

const now = () => new Date().toISOString()

interface Conn {
  readonly ws: WebSocket
  alive: boolean
  answering: AbortController | undefined
}

const send = (conn: Conn, event: object) => {
  if (conn.ws.readyState === WebSocket.OPEN) conn.ws.send(JSON.stringify(event))
}

const answer = async (conn: Conn, content: string) => {
  const abort = new AbortController()
  conn.answering = abort
  const messageId = randomUUID()
  send(conn, { type: "message_start", messageId, userMessageId: randomUUID(), timestamp: now() })
  let text = ""
  let seq = 0
  let stopReason: string | null = null
  try {
    const stream = client.messages.stream(
      { model, max_tokens: 4096, messages: [{ role: "user", content }] },
      { signal: abort.signal }
    )
    for await (const event of stream) {
      if (event.type === "content_block_delta" && event.delta.type === "text_delta") {
        const offset = text.length
        text += event.delta.text
        seq += 1
        send(conn, { type: "message_chunk", messageId, content: event.delta.text, seq, offset, timestamp: now() })
      } else if (event.type === "message_delta") {
        stopReason = event.delta.stop_reason
      }
    }
    send(conn, { type: "message_complete", messageId, fullContent: text, codeBlocks: [], status: "complete", stopReason, timestamp: now() })
  } catch {
    send(conn, { type: "error", error: "Failed to generate response", code: "AI_ERROR", messageId, timestamp: now() })
  } finally {
    conn.answering = undefined
  }
}

const onFrame = (conn: Conn, data: WebSocket.RawData, isBinary: boolean) => {
  let frame: { type?: unknown; content?: unknown }
  try {
    frame = isBinary ? {} : (JSON.parse(data.toString()) as typeof frame)
  } catch {
    frame = {}
  }
  if (frame.type === "ping") return send(conn, { type: "pong", timestamp: now() })
  if (frame.type === "cancel") return conn.answering?.abort()
  if (frame.type !== "chat_message" || typeof frame.content !== "string" || frame.content.trim() === "") {
    return send(conn, { type: "error", error: "invalid message", code: "INVALID_MESSAGE", timestamp: now() })
  }
  if (conn.answering !== undefined) return send(conn, { type: "error", error: "busy", code: "BUSY", timestamp: now() })
  void answer(conn, frame.content)
}

const conns = new Set<Conn>()
const wss = new WebSocketServer({ noServer: true })

const server = http.createServer((req, res) => {
  if (req.url === "/health") {
    res.writeHead(200, { "content-type": "application/json" })
    res.end(JSON.stringify({ status: "healthy", timestamp: now() }))
    return
  }
  res.writeHead(404, { "content-type": "application/json" })
  res.end(JSON.stringify({ error: "not found", code: "NOT_FOUND" }))
})

server.on("upgrade", (req, socket, head) => {
  if (new URL(req.url ?? "/", "http://relay").pathname !== "/ws/chat") {
    socket.destroy()
    return
  }
  wss.handleUpgrade(req, socket, head, (ws) => {
    const conn: Conn = { ws, alive: true, answering: undefined }
    conns.add(conn)
    ws.on("pong", () => {
      conn.alive = true
    })
    ws.on("message", (data, isBinary) => onFrame(conn, data, isBinary))
    ws.on("close", () => {
      conns.delete(conn)
      conn.answering?.abort()
    })
    ws.on("error", () => undefined)
  })
})

// One timer for every socket: a socket that missed the last ping is dropped.
const heartbeat = setInterval(() => {
  for (const conn of conns) {
    if (!conn.alive) {
      conn.ws.terminate()
      continue
    }
    conn.alive = false
    conn.ws.ping()
  }
}, pingIntervalMs)

server.listen(Number(env["PORT"] ?? "0"), host, () => {
  const { port } = server.address() as AddressInfo
  process.stdout.write(`${JSON.stringify({ url: `http://${host}:${port}` })}\n`)
})

const stop = () => {
  clearInterval(heartbeat)
  for (const conn of conns) conn.ws.close(1001, "going away")
  server.close(() => process.exit(0))
  setTimeout(() => process.exit(0), 2000).unref()
}
process.once("SIGTERM", stop)
process.once("SIGINT", stop)
