/**
 * The benchmark's Claude: `test/support/FakeAnthropic.ts` in a process of its own, answering
 * every streamed request as the `bench-answer {spec}` prompt asks (see lib/spec.ts), with
 * `⟦t=<ms>⟧` send-time markers when the spec wants them. Prints `{"url":…}` on stdout and
 * exits on SIGTERM/SIGINT or when the orchestrator's IPC channel goes away.
 */
import { parseArgs } from "node:util"
import { type FakeReply, type MessagesRequestBody, startFakeAnthropic } from "../test/support/FakeAnthropic.js"
import { chunksFor, parsePrompt } from "./lib/spec.js"

const { values } = parseArgs({ options: { port: { type: "string", default: "0" } } })

const lastUserText = (body: MessagesRequestBody): string => {
  const last = body.messages[body.messages.length - 1]
  if (last === undefined) return ""
  if (typeof last.content === "string") return last.content
  return last.content.map((block) => (typeof block["text"] === "string" ? block["text"] : "")).join("")
}

/** Chunk arrays are shared between requests of one spec (a 1 MB answer is built once). */
const cache = new Map<string, Array<string>>()

const replyFor = (body: MessagesRequestBody): FakeReply => {
  const text = lastUserText(body)
  const spec = parsePrompt(text)
  if (spec === undefined) return { kind: "text", chunks: ["Benchmark", " title"] }
  const key = `${spec.chunks}/${spec.chunkChars}/${spec.code}`
  let chunks = cache.get(key)
  if (chunks === undefined) {
    chunks = chunksFor(spec)
    cache.set(key, chunks)
  }
  return { kind: "text", chunks, chunkDelayMs: spec.delayMs, timestampChunks: spec.timestamps }
}

const fake = await startFakeAnthropic({
  port: Number(values.port),
  defaultReply: { kind: "function", reply: (body) => replyFor(body) }
})
process.stdout.write(`${JSON.stringify({ url: fake.url })}\n`)

let stopping = false
const stop = () => {
  if (stopping) return
  stopping = true
  const force = setTimeout(() => process.exit(0), 3000)
  force.unref()
  void fake.close().then(() => process.exit(0))
}
process.once("SIGTERM", stop)
process.once("SIGINT", stop)
process.once("disconnect", stop)
