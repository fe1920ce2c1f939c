/**
 * What answer the benchmark's fake Claude streams for a prompt. The load generators put the
 * spec in the chat message itself (`bench-answer {json}`), so one fake process and one
 * service process serve every streaming scenario; the service forwards the text unchanged
 * (a fresh project has one user message of context), and so does the baseline relay.
 */

export interface AnswerSpec {
  /** Text deltas in the answer. */
  readonly chunks: number
  /** Delay before each delta: 40 ms is Claude's pace (25 chunks/s). */
  readonly delayMs: number
  /** Characters of each delta, before the send-time marker. */
  readonly chunkChars: number
  /** Wrap the middle chunks in a fenced code block (so code-block extraction has work). */
  readonly code: boolean
  /** Prefix each delta with the fake's send time, `⟦t=<epoch ms>⟧`. */
  readonly timestamps: boolean
  /** Padding that makes the prompt as long as a real question (the cache scenario); ignored by the fake. */
  readonly note?: string
}

const PROMPT_PREFIX = "bench-answer "

export const promptFor = (spec: AnswerSpec): string => `${PROMPT_PREFIX}${JSON.stringify(spec)}`

export const parsePrompt = (text: string): AnswerSpec | undefined => {
  if (!text.startsWith(PROMPT_PREFIX)) return undefined
  try {
    const raw = JSON.parse(text.slice(PROMPT_PREFIX.length)) as Partial<AnswerSpec>
    const positive = (n: unknown, fallback: number) => (typeof n === "number" && Number.isFinite(n) && n >= 0 ? n : fallback)
    return {
      chunks: Math.max(1, Math.floor(positive(raw.chunks, 10))),
      delayMs: positive(raw.delayMs, 0),
      chunkChars: Math.max(1, Math.floor(positive(raw.chunkChars, 6))),
      code: raw.code === true,
      timestamps: raw.timestamps === true
    }
  } catch {
    return undefined
  }
}

const pad = (text: string, chars: number) => {
  if (text.length >= chars) return text.slice(0, chars)
  let out = text
  while (out.length < chars) out += text
  return out.slice(0, chars)
}

/** The deltas of an answer (without markers): words, or a code block framed by prose. */
export const chunksFor = (spec: AnswerSpec): Array<string> => {
  const body = (i: number) =>
    spec.code ? `${pad(`    total_${i % 97} = compute(items[${i}]) + 1  # step`, spec.chunkChars - 1)}\n` : pad(`tok${i % 10} `, spec.chunkChars)
  const chunks = Array.from({ length: spec.chunks }, (_, i) => body(i))
  if (spec.code && spec.chunks >= 3) {
    chunks[0] = "Here is the program:\n\n```python\n"
    chunks[spec.chunks - 1] = "```\nRun it with python3.\n"
  }
  return chunks
}
