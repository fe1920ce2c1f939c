/**
 * The prompt-cache scenario (issue 14): conversations of several turns against the service,
 * whose fake Claude (bench/fake.ts, FakeAnthropic) emulates prompt caching. Each answer's
 * `usage` on `message_complete` says how much of its prompt was read from the cache; the
 * share of input tokens read from the cache is reported per turn and over the turns from
 * the third on. Runs in the orchestrator's process: a few sockets, no load worth measuring.
 */
import WebSocket from "ws"
import { type AnswerSpec, promptFor } from "../lib/spec.js"

export interface CacheConfig {
  readonly baseUrl: string
  readonly conversations: number
  readonly turns: number
  /** The answer of every turn (a code block, so its tokens dominate the new input of each turn). */
  readonly answer: AnswerSpec
  /** Characters of each question (padding inside the spec's JSON, which the fake ignores). */
  readonly questionChars: number
  readonly timeoutMs: number
}

export interface TurnUsage {
  readonly turn: number
  readonly inputTokens: number
  readonly cacheReadInputTokens: number
  readonly cacheCreationInputTokens: number
  readonly outputTokens: number
}

export interface CacheResult {
  readonly conversations: number
  readonly turns: number
  /** Summed over the conversations, one entry a turn. */
  readonly perTurn: ReadonlyArray<TurnUsage & { readonly readShare: number }>
  /** Share of input tokens read from the cache over turns 3.. (the target: above 80%). */
  readonly readShareFromTurn3: number
  /** Over every turn. */
  readonly readShareAll: number
  /** GET /api/projects/:id `usage` equal to the sum of each conversation's answers. */
  readonly totalsMatch: boolean
}

interface Usage {
  readonly inputTokens: number
  readonly outputTokens: number
  readonly cacheReadInputTokens: number
  readonly cacheCreationInputTokens: number
}

const promptTokens = (u: Usage) => u.inputTokens + u.cacheReadInputTokens + u.cacheCreationInputTokens

/** Distinct per conversation: conversations must not read each other's prompts from the cache. */
const question = (spec: AnswerSpec, conversation: number, turn: number, chars: number) => {
  const note = `Conversation ${conversation}, turn ${turn}: please change the app so that it also does the next thing on my list. `
  return promptFor({ ...spec, note: note.repeat(Math.ceil(chars / note.length)).slice(0, chars) })
}

const openSocket = (url: string, timeoutMs: number) =>
  new Promise<WebSocket>((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: timeoutMs })
    ws.once("open", () => resolve(ws))
    ws.once("error", reject)
  })

/** Sends one question and resolves with its answer's `usage` (null when the service reported none). */
const ask = (ws: WebSocket, content: string, timeoutMs: number) =>
  new Promise<Usage>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no message_complete within the time limit")), timeoutMs)
    const onMessage = (data: WebSocket.RawData) => {
      const event = JSON.parse(String(data)) as { type: string; status?: string; usage?: Usage | null; code?: string }
      if (event.type === "error") {
        cleanup()
        reject(new Error(`error event: ${event.code ?? "?"}`))
      } else if (event.type === "message_complete") {
        cleanup()
        if (event.usage === undefined || event.usage === null) reject(new Error("message_complete without usage"))
        else resolve(event.usage)
      }
    }
    const cleanup = () => {
      clearTimeout(timer)
      ws.off("message", onMessage)
    }
    ws.on("message", onMessage)
    ws.send(JSON.stringify({ type: "chat_message", content }))
  })

const conversation = async (config: CacheConfig, index: number) => {
  const created = await fetch(`${config.baseUrl}/api/projects`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ title: `cache conversation ${index}` })
  })
  const { id } = (await created.json()) as { id: string }
  const ws = await openSocket(`${config.baseUrl.replace(/^http/, "ws")}/ws/chat?projectId=${id}`, config.timeoutMs)
  const usages: Array<Usage> = []
  try {
    for (let turn = 1; turn <= config.turns; turn++) usages.push(await ask(ws, question(config.answer, index, turn, config.questionChars), config.timeoutMs))
  } finally {
    ws.close()
  }
  const project = (await (await fetch(`${config.baseUrl}/api/projects/${id}`)).json()) as { usage?: Usage }
  const sum = (key: keyof Usage) => usages.reduce((n, u) => n + u[key], 0)
  const totalsMatch = project.usage !== undefined &&
    (["inputTokens", "outputTokens", "cacheReadInputTokens", "cacheCreationInputTokens"] as const).every((key) => project.usage?.[key] === sum(key))
  return { usages, totalsMatch }
}

const share = (usages: ReadonlyArray<Usage>) => {
  const prompt = usages.reduce((n, u) => n + promptTokens(u), 0)
  return prompt === 0 ? 0 : usages.reduce((n, u) => n + u.cacheReadInputTokens, 0) / prompt
}

export const runCacheConversations = async (config: CacheConfig): Promise<CacheResult> => {
  const runs = await Promise.all(Array.from({ length: config.conversations }, (_, i) => conversation(config, i)))
  const perTurn = Array.from({ length: config.turns }, (_, t) => {
    const usages = runs.map((run) => run.usages[t]!)
    const total = (key: keyof Usage) => usages.reduce((n, u) => n + u[key], 0)
    return {
      turn: t + 1,
      inputTokens: total("inputTokens"),
      cacheReadInputTokens: total("cacheReadInputTokens"),
      cacheCreationInputTokens: total("cacheCreationInputTokens"),
      outputTokens: total("outputTokens"),
      readShare: share(usages)
    }
  })
  return {
    conversations: config.conversations,
    turns: config.turns,
    perTurn,
    readShareFromTurn3: share(runs.flatMap((run) => run.usages.slice(2))),
    readShareAll: share(runs.flatMap((run) => run.usages)),
    totalsMatch: runs.every((run) => run.totalsMatch)
  }
}
