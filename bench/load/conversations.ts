/**
 * Load generator for the streaming scenarios, run as a child of bench/run.ts (IPC).
 *
 * 1. gets `{type:"run", config}`; for the service, creates one project per conversation;
 * 2. opens one WebSocket per conversation, then reports `{type:"ready"}`;
 * 3. on `{type:"go"}` sends one `chat_message` per conversation (starts spread over
 *    `spreadMs`) and checks every event: seq contiguous from 1, offset = text so far,
 *    assembled text = `fullContent`, the expected number of chunks; added latency per chunk
 *    = receive time − the fake's send-time marker (same clock across processes);
 * 4. reports `{type:"result"}` when every answer completed or at the deadline, and exits.
 */
import { randomUUID } from "node:crypto"
import WebSocket from "ws"
import { requestJson } from "../lib/proc.js"
import { type AnswerSpec, promptFor } from "../lib/spec.js"
import { distribution, type Distribution } from "../lib/stats.js"

export interface ConversationsConfig {
  readonly baseUrl: string
  /** The service needs a project per conversation; the relay takes any id. */
  readonly createProjects: boolean
  readonly conversations: number
  readonly spec: AnswerSpec
  /** Sends are spread evenly over this window so answers do not run in lockstep. */
  readonly spreadMs: number
  /** From `go`: answers not complete by then count as lost. */
  readonly deadlineMs: number
  /**
   * `TIMESTAMP_MARKER.source` from test/support/FakeAnthropic.ts, passed in so that this
   * process does not load that module (and Effect with it) just for one regular expression.
   */
  readonly markerSource: string
  /**
   * Several instances of the service (the cluster scenarios): conversation i sends on
   * instance i mod n; with `crossInstance` it listens on the next instance, so that every
   * chunk it counts crossed the bus. Projects are created on the first one.
   */
  readonly instanceUrls?: ReadonlyArray<string>
  readonly crossInstance?: boolean
}

export interface ConversationsResult {
  readonly conversations: number
  readonly opened: number
  readonly completed: number
  /** Answers ended by an `error` event (or a chat_message refused with one). */
  readonly failedAnswers: number
  readonly chunksExpected: number
  readonly chunksReceived: number
  /** Expected chunks that never arrived (incomplete answers included). */
  readonly lost: number
  /** Chunks whose seq was not the previous one + 1. */
  readonly reordered: number
  /** Chunks whose offset was not the length of the text received so far. */
  readonly offsetErrors: number
  /** Answers whose assembled text differs from `fullContent`. */
  readonly contentMismatches: number
  readonly markersMissing: number
  readonly errorCount: number
  readonly errors: ReadonlyArray<string>
  /** Added latency per chunk (ms). */
  readonly latencyMs: Distribution
  /** chat_message sent → first chunk received (ms). */
  readonly firstChunkMs: Distribution
  /** First send → last answer complete. */
  readonly wallMs: number
  readonly clientCpuMs: number
}

interface Conversation {
  readonly ws: WebSocket
  /** Where the chat_message is sent: `ws`, or another instance's socket with `crossInstance`. */
  readonly sender: WebSocket
  messageId: string | undefined
  text: string
  seq: number
  done: boolean
  sentAt: number
}

const preciseNow = () => performance.timeOrigin + performance.now()

const send = (message: unknown) =>
  new Promise<void>((resolve) => {
    if (process.send === undefined) return resolve()
    process.send(message, () => resolve())
  })

const messages: Array<unknown> = []
let wake: (() => void) | undefined
process.on("message", (message) => {
  messages.push(message)
  wake?.()
})
const nextMessage = async (): Promise<{ type?: unknown; config?: unknown }> => {
  while (messages.length === 0) await new Promise<void>((resolve) => (wake = resolve))
  return messages.shift() as { type?: unknown; config?: unknown }
}
process.once("disconnect", () => process.exit(0))

/** Runs `task` over `items`, at most `limit` at a time. */
const pool = async <A, B>(items: ReadonlyArray<A>, limit: number, task: (item: A, index: number) => Promise<B>) => {
  const results: Array<B> = new Array(items.length)
  let next = 0
  const worker = async () => {
    while (next < items.length) {
      const index = next++
      results[index] = await task(items[index]!, index)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  return results
}

const openSocket = (url: string, timeoutMs: number) =>
  new Promise<WebSocket>((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: timeoutMs })
    ws.once("open", () => resolve(ws))
    ws.once("error", reject)
    ws.once("unexpected-response", (_req, res) => reject(new Error(`handshake refused: ${res.statusCode}`)))
  })

const run = async (config: ConversationsConfig) => {
  const { spec } = config
  const marker = new RegExp(config.markerSource)
  const wsBase = config.baseUrl.replace(/^http/, "ws")
  const projectIds = config.createProjects
    ? await pool(Array.from({ length: config.conversations }), 16, async (_, i) => {
      const created = await requestJson<{ id: string }>("POST", `${config.baseUrl}/api/projects`, { title: `bench conversation ${i}` })
      if (created.status !== 201) throw new Error(`POST /api/projects answered ${created.status}`)
      return created.body.id
    })
    : Array.from({ length: config.conversations }, () => randomUUID())

  const errors: Array<string> = []
  let errorCount = 0
  const recordError = (text: string) => {
    errorCount += 1
    if (errors.length < 10) errors.push(text)
  }

  const latencies = new Float64Array(config.conversations * spec.chunks)
  let latencyCount = 0
  const firstChunk: Array<number> = []
  let chunksReceived = 0
  let reordered = 0
  let offsetErrors = 0
  let contentMismatches = 0
  let markersMissing = 0
  let completed = 0
  let failedAnswers = 0
  let lost = 0
  let lastCompleteAt = 0
  let allDone: () => void = () => undefined
  const finished = new Promise<void>((resolve) => (allDone = resolve))

  const conversations: Array<Conversation> = []
  const instances = (config.instanceUrls ?? [config.baseUrl]).map((url) => url.replace(/^http/, "ws"))
  const instanceOf = (i: number, shift: number) => instances[(i + shift) % instances.length] ?? wsBase
  const sockets = await pool(projectIds, 50, async (id, i) => {
    const open = (base: string) => openSocket(`${base}/ws/chat?projectId=${id}`, 20_000)
    try {
      const ws = await open(instanceOf(i, config.crossInstance === true ? 1 : 0))
      return { ws, sender: config.crossInstance === true ? await open(instanceOf(i, 0)) : ws }
    } catch (error) {
      recordError(`open: ${String(error)}`)
      return undefined
    }
  })
  for (const pair of sockets) {
    if (pair === undefined) continue
    const { ws, sender } = pair
    const conversation: Conversation = { ws, sender, messageId: undefined, text: "", seq: 0, done: false, sentAt: 0 }
    conversations.push(conversation)
    const complete = () => {
      conversation.done = true
      completed += 1
      lastCompleteAt = performance.now()
      if (completed === conversations.length) allDone()
    }
    ws.on("message", (data: Buffer, isBinary: boolean) => {
      const receivedAt = preciseNow()
      if (isBinary) return recordError("binary frame")
      const event = JSON.parse(data.toString("utf8")) as {
        type: string
        messageId?: string
        content?: string
        seq?: number
        offset?: number
        fullContent?: string
        status?: string
        code?: string
        error?: string
      }
      switch (event.type) {
        case "message_start":
          if (conversation.messageId === undefined) conversation.messageId = event.messageId
          return
        case "message_chunk": {
          chunksReceived += 1
          if (event.messageId !== conversation.messageId) recordError("chunk of another message")
          if (conversation.seq === 0) firstChunk.push(performance.now() - conversation.sentAt)
          if (event.seq !== conversation.seq + 1) reordered += 1
          if (event.offset !== conversation.text.length) offsetErrors += 1
          conversation.seq = event.seq ?? conversation.seq + 1
          const content = event.content ?? ""
          conversation.text += content
          const sentAt = marker.exec(content)
          if (sentAt === null) markersMissing += 1
          else latencies[latencyCount++] = receivedAt - Number(sentAt[1])
          return
        }
        case "message_complete":
          if (conversation.done) return recordError("second message_complete")
          if (event.fullContent !== conversation.text) contentMismatches += 1
          if (event.status !== "complete") recordError(`status ${event.status}`)
          lost += Math.max(0, spec.chunks - conversation.seq)
          return complete()
        case "error":
          recordError(`${event.code}: ${event.error}`)
          // An error for the answer, or one refusing the chat_message itself: either way it is over.
          if (!conversation.done && (event.messageId !== undefined || conversation.messageId === undefined)) {
            failedAnswers += 1
            lost += Math.max(0, spec.chunks - conversation.seq)
            complete()
          }
          return
        default:
          return
      }
    })
    ws.on("close", () => {
      if (!conversation.done) recordError("socket closed before the answer completed")
    })
    ws.on("error", (error) => recordError(`socket: ${error.message}`))
  }

  await send({ type: "ready", opened: conversations.length })
  const go = await nextMessage()
  if (go.type !== "go") throw new Error("expected go")

  const cpuStart = process.cpuUsage()
  const startedAt = performance.now()
  const prompt = JSON.stringify({ type: "chat_message", content: promptFor(spec) })
  conversations.forEach((conversation, i) => {
    setTimeout(() => {
      conversation.sentAt = performance.now()
      conversation.sender.send(prompt)
    }, (i * config.spreadMs) / Math.max(1, conversations.length))
  })
  if (conversations.length === 0) allDone()
  const deadline = new Promise<void>((resolve) => setTimeout(resolve, config.deadlineMs).unref())
  await Promise.race([finished, deadline])
  for (const conversation of conversations) {
    if (!conversation.done) {
      lost += spec.chunks - conversation.seq
      recordError("answer incomplete at the deadline")
    }
  }
  lost += (config.conversations - conversations.length) * spec.chunks
  const cpu = process.cpuUsage(cpuStart)

  const result: ConversationsResult = {
    conversations: config.conversations,
    opened: conversations.length,
    completed,
    failedAnswers,
    chunksExpected: config.conversations * spec.chunks,
    chunksReceived,
    lost,
    reordered,
    offsetErrors,
    contentMismatches,
    markersMissing: spec.timestamps ? markersMissing : 0,
    errorCount,
    errors,
    latencyMs: distribution(latencies.subarray(0, latencyCount)),
    firstChunkMs: distribution(firstChunk),
    wallMs: (lastCompleteAt || performance.now()) - startedAt,
    clientCpuMs: (cpu.user + cpu.system) / 1000
  }
  await send({ type: "result", result })
  for (const conversation of conversations) {
    conversation.ws.terminate()
    conversation.sender.terminate()
  }
}

const first = await nextMessage()
if (first.type !== "run") throw new Error("expected run")
run(first.config as ConversationsConfig).then(
  () => process.exit(0),
  async (error: unknown) => {
    await send({ type: "failed", error: String(error) })
    process.exit(1)
  }
)
