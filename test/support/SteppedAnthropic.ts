/**
 * A fake Messages API whose streamed answers advance only when the test says so: each
 * `emit(text)` sends one `content_block_delta`, `finish()` ends the answer. Tests that must
 * hit exact positions of an answer (rejoin after chunk k, for every k) use it instead of a
 * timed script. Non-streamed requests (titles) are answered at once with a short text.
 *
 * Speaks the same SSE sequence as the real API (message_start, content_block_start, ping,
 * deltas, content_block_stop, message_delta, message_stop) on 127.0.0.1 only.
 */
import { Effect } from "effect"
import { randomBytes } from "node:crypto"
import * as http from "node:http"
import type { AddressInfo } from "node:net"

export interface SteppedStream {
  /** The parsed request body. */
  readonly body: Readonly<Record<string, unknown>>
  /** Sends one text delta; resolves once it is handed to the socket. */
  readonly emit: (text: string) => Promise<void>
  /** Ends the answer normally. */
  readonly finish: (stopReason?: string) => Promise<void>
  /** True once the client closed the response before `finish`. */
  readonly aborted: () => boolean
}

export interface SteppedAnthropic {
  readonly url: string
  /** Bodies of every request, in arrival order. */
  readonly requests: ReadonlyArray<Readonly<Record<string, unknown>>>
  /** The next streamed request (resolves at once if one is already waiting). */
  readonly nextStream: () => Promise<SteppedStream>
  readonly close: () => Promise<void>
}

const sse = (event: string, data: unknown) => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`
const id = (prefix: string) => `${prefix}${randomBytes(12).toString("hex")}`

export const startSteppedAnthropic = async (): Promise<SteppedAnthropic> => {
  const requests: Array<Record<string, unknown>> = []
  const ready: Array<SteppedStream> = []
  const waiting: Array<(stream: SteppedStream) => void> = []

  const server = http.createServer((req, res) => {
    const parts: Array<Buffer> = []
    req.on("data", (part: Buffer) => parts.push(part))
    req.on("end", () => {
      let body: Record<string, unknown> = {}
      try {
        body = JSON.parse(Buffer.concat(parts).toString("utf8")) as Record<string, unknown>
      } catch {
        body = {}
      }
      requests.push(body)
      res.setHeader("request-id", id("req_"))
      const model = typeof body["model"] === "string" ? body["model"] : "claude-test"
      const usage = { input_tokens: 10, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 1 }
      if (body["stream"] !== true) {
        const payload = JSON.stringify({
          id: id("msg_"), type: "message", role: "assistant", model,
          content: [{ type: "text", text: "Stepped Title" }],
          stop_reason: "end_turn", stop_sequence: null, usage
        })
        res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(payload) })
        res.end(payload)
        return
      }
      let finished = false
      let aborted = false
      res.on("close", () => {
        if (!finished) aborted = true
      })
      const write = (text: string) =>
        new Promise<void>((resolve, reject) => {
          if (res.destroyed || res.writableEnded) return reject(new Error("stepped stream: response already closed"))
          res.write(text, (error) => (error ? reject(error) : resolve()))
        })
      res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" })
      res.write(sse("message_start", {
        type: "message_start",
        message: { id: id("msg_"), type: "message", role: "assistant", model, content: [], stop_reason: null, stop_sequence: null, usage }
      }))
      res.write(sse("content_block_start", { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } }))
      res.write(sse("ping", { type: "ping" }))
      let deltas = 0
      const stream: SteppedStream = {
        body,
        emit: (text) => {
          deltas++
          return write(sse("content_block_delta", { type: "content_block_delta", index: 0, delta: { type: "text_delta", text } }))
        },
        finish: async (stopReason = "end_turn") => {
          await write(sse("content_block_stop", { type: "content_block_stop", index: 0 }))
          await write(sse("message_delta", {
            type: "message_delta",
            delta: { stop_reason: stopReason, stop_sequence: null },
            usage: { output_tokens: deltas }
          }))
          finished = true
          await write(sse("message_stop", { type: "message_stop" }))
          res.end()
        },
        aborted: () => aborted
      }
      const waiter = waiting.shift()
      if (waiter !== undefined) waiter(stream)
      else ready.push(stream)
    })
  })
  server.listen(0, "127.0.0.1")
  await new Promise<void>((resolve, reject) => {
    server.once("listening", resolve)
    server.once("error", reject)
  })
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    nextStream: () => {
      const stream = ready.shift()
      return stream !== undefined ? Promise.resolve(stream) : new Promise((resolve) => waiting.push(resolve))
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
  }
}

export const SteppedAnthropicScoped = Effect.acquireRelease(
  Effect.promise(() => startSteppedAnthropic()),
  (fake) => Effect.promise(() => fake.close())
)
