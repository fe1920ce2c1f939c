/**
 * A fake Messages API whose streamed answers advance only when the test says so: each
 * `emit(text)` sends one `content_block_delta`, `finish()` ends the answer. Tests that must
 * hit exact positions of an answer (rejoin after chunk k, for every k) use it instead of a
 * timed script. Non-streamed requests (titles) are answered at once with a short text.
 *
 * Speaks the same SSE sequence as the real API (message_start, content_block_start, ping,
 * deltas, content_block_stop, message_delta, message_stop) on 127.0.0.1 only, and refuses
 * requests exactly as FakeAnthropic does (the shared MessagesApiRules).
 */
import { Effect } from "effect"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import {
  type ApiRefusal,
  assignRequestId,
  checkRequest,
  flattenHeaders,
  parseJson,
  randomId,
  readBody,
  sendJson,
  sendRefusal
} from "./MessagesApiRules.js"
import { promptTokens } from "./PromptCache.js"

export interface SteppedStream {
  /** The parsed request body. */
  readonly body: Readonly<Record<string, unknown>>
  /** Sends one text delta; resolves once it is handed to the socket. */
  readonly emit: (text: string) => Promise<void>
  /** Sends a `ping` event, as the real API does during long answers. */
  readonly ping: () => Promise<void>
  /** Ends the answer normally. */
  readonly finish: (stopReason?: string) => Promise<void>
  /** True once the client closed the response before `finish`. */
  readonly aborted: () => boolean
}

export interface SteppedAnthropic {
  readonly url: string
  /** Bodies of every request, in arrival order. */
  readonly requests: ReadonlyArray<Readonly<Record<string, unknown>>>
  /** Requests refused by the real API's checks, with the refusal. */
  readonly rejections: ReadonlyArray<{ readonly body: unknown; readonly refusal: ApiRefusal }>
  /** The next streamed request (resolves at once if one is already waiting). */
  readonly nextStream: () => Promise<SteppedStream>
  readonly close: () => Promise<void>
}

const sse = (event: string, data: unknown) => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`

export const startSteppedAnthropic = async (): Promise<SteppedAnthropic> => {
  const requests: Array<Record<string, unknown>> = []
  const rejections: Array<{ readonly body: unknown; readonly refusal: ApiRefusal }> = []
  const ready: Array<SteppedStream> = []
  const waiting: Array<(stream: SteppedStream) => void> = []

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const parsed = parseJson(await readBody(req))
    requests.push(typeof parsed === "object" && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : {})
    assignRequestId(res)
    const checked = checkRequest({ method: req.method ?? "", path: req.url ?? "", headers: flattenHeaders(req.headers), body: parsed })
    if (!checked.ok) {
      rejections.push({ body: parsed, refusal: checked.refusal })
      sendRefusal(res, checked.refusal)
      return
    }
    if (checked.body.endpoint === "count_tokens") {
      sendJson(res, 200, { input_tokens: promptTokens(checked.body) })
      return
    }
    {
      const body = checked.body.raw
      const model = checked.body.model
      const usage = { input_tokens: 10, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 1 }
      if (!checked.body.stream) {
        const payload = JSON.stringify({
          id: randomId("msg_"), type: "message", role: "assistant", model,
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
        message: { id: randomId("msg_"), type: "message", role: "assistant", model, content: [], stop_reason: null, stop_sequence: null, usage }
      }))
      res.write(sse("content_block_start", { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } }))
      res.write(sse("ping", { type: "ping" }))
      let deltas = 0
      const stream: SteppedStream = {
        body,
        ping: () => write(sse("ping", { type: "ping" })),
        emit: (text) => {
          deltas++
          return write(sse("content_block_delta", { type: "content_block_delta", index: 0, delta: { type: "text_delta", text } }))
        },
        finish: async (stopReason = "end_turn") => {
          await write(sse("content_block_stop", { type: "content_block_stop", index: 0 }))
          await write(sse("message_delta", {
            type: "message_delta",
            delta: { stop_reason: stopReason, stop_sequence: null },
            usage: { ...usage, output_tokens: deltas }
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
    }
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch(() => res.destroy())
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
    rejections,
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

/** Started on acquire; closed when the scope closes, failing the test if it refused a request the service made. */
export const SteppedAnthropicScoped = Effect.acquireRelease(
  Effect.promise(() => startSteppedAnthropic()),
  (fake) =>
    Effect.zipRight(
      Effect.promise(() => fake.close()),
      fake.rejections.length === 0
        ? Effect.void
        : Effect.dieMessage(`the stepped fake refused requests: ${JSON.stringify(fake.rejections).slice(0, 2000)}`)
    )
)
