/**
 * The fake Messages API's prompt cache: what the real API does with `cache_control`, in
 * token counts. A request's prompt is its system blocks, then every message's blocks, in
 * order; a breakpoint (a block's `cache_control`, or the top-level one, which marks the last
 * block) asks for the prompt up to it to be cached. A later request whose leading blocks
 * equal a cached prefix reads those tokens from the cache (looking back up to 20 blocks from
 * each breakpoint, as the real API does); the rest up to its last breakpoint is written.
 * Entries live for their TTL (5 minutes by default, or 1 hour), refreshed on every read.
 * Tokens are estimated at four characters each, per block.
 */
import { createHash } from "node:crypto"
import type { MessagesRequestBody } from "./MessagesApiRules.js"

/** How far back from a breakpoint the real API looks for a cached prefix. */
const LOOKBACK_BLOCKS = 20

export interface PromptUsage {
  readonly input_tokens: number
  readonly cache_creation_input_tokens: number
  readonly cache_read_input_tokens: number
}

interface PromptBlock {
  /** Hash of the prompt up to and including this block (without any `cache_control`). */
  readonly prefix: string
  /** Tokens of the prompt up to and including this block. */
  readonly tokensSoFar: number
  /** Its breakpoint's TTL in milliseconds, when it is one. */
  readonly ttlMs: number | undefined
}

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

const ttlMsOf = (cacheControl: unknown): number | undefined =>
  isRecord(cacheControl) ? (cacheControl["ttl"] === "1h" ? 3_600_000 : 300_000) : undefined

const withoutCacheControl = (block: unknown): unknown => {
  if (!isRecord(block)) return block
  const { cache_control: _ignored, ...rest } = block
  return rest
}

const tokensOf = (block: unknown): number => Math.max(1, Math.ceil(JSON.stringify(block).length / 4))

/** The prompt as blocks, each with the hash and tokens of the prefix it ends. */
export const promptBlocks = (body: MessagesRequestBody): ReadonlyArray<PromptBlock> => {
  const raw: Array<{ readonly part: string; readonly block: unknown; readonly cacheControl: unknown }> = []
  const system = body.raw["system"]
  if (typeof system === "string") raw.push({ part: "system", block: system, cacheControl: undefined })
  else if (Array.isArray(system)) for (const block of system as Array<unknown>) raw.push({ part: "system", block, cacheControl: isRecord(block) ? block["cache_control"] : undefined })
  for (const [i, message] of body.messages.entries()) {
    const part = `${i}:${message.role}`
    if (typeof message.content === "string") raw.push({ part, block: message.content, cacheControl: undefined })
    else for (const block of message.content) raw.push({ part, block, cacheControl: block["cache_control"] })
  }
  const topLevel = body.raw["cache_control"]
  const blocks: Array<PromptBlock> = []
  let prefix = ""
  let tokensSoFar = 0
  for (const [i, { part, block, cacheControl }] of raw.entries()) {
    const plain = withoutCacheControl(block)
    prefix = createHash("sha256").update(prefix).update(part).update(JSON.stringify(plain)).digest("hex")
    tokensSoFar += tokensOf(plain)
    const marked = cacheControl ?? (i === raw.length - 1 ? topLevel : undefined)
    blocks.push({ prefix, tokensSoFar, ttlMs: ttlMsOf(marked) })
  }
  return blocks
}

/** The whole prompt's tokens: what `count_tokens` answers, and the sum of a reply's three input counts. */
export const promptTokens = (body: MessagesRequestBody): number => promptBlocks(body).at(-1)?.tokensSoFar ?? 1

export interface PromptCache {
  /** The usage of a request: reads what is cached, writes what it asks to cache. */
  readonly use: (body: MessagesRequestBody) => PromptUsage
  /** Entries currently cached. */
  readonly size: () => number
}

export const makePromptCache = (now: () => number = Date.now): PromptCache => {
  const entries = new Map<string, { expiresAt: number; ttlMs: number }>()
  const live = (prefix: string) => {
    const entry = entries.get(prefix)
    if (entry === undefined) return undefined
    if (entry.expiresAt <= now()) {
      entries.delete(prefix)
      return undefined
    }
    return entry
  }
  return {
    size: () => entries.size,
    use: (body) => {
      const blocks = promptBlocks(body)
      const total = blocks.at(-1)?.tokensSoFar ?? 1
      const breakpoints = blocks.flatMap((block, i) => (block.ttlMs === undefined ? [] : [i]))
      const last = breakpoints.at(-1)
      if (last === undefined) return { input_tokens: total, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 }
      // The longest cached prefix within the lookback window of any breakpoint.
      let hit = -1
      for (const breakpoint of breakpoints) {
        for (let i = breakpoint; i >= Math.max(0, breakpoint - LOOKBACK_BLOCKS) && i > hit; i--) {
          if (live(blocks[i]!.prefix) !== undefined) {
            hit = i
            break
          }
        }
      }
      const read = hit < 0 ? 0 : blocks[hit]!.tokensSoFar
      if (hit >= 0) {
        const entry = live(blocks[hit]!.prefix)!
        entry.expiresAt = now() + entry.ttlMs
      }
      for (const breakpoint of breakpoints) {
        const block = blocks[breakpoint]!
        const ttlMs = block.ttlMs!
        const existing = live(block.prefix)
        if (existing === undefined || existing.expiresAt < now() + ttlMs) entries.set(block.prefix, { expiresAt: now() + ttlMs, ttlMs })
      }
      const cachedUpTo = blocks[last]!.tokensSoFar
      return {
        input_tokens: total - cachedUpTo,
        cache_creation_input_tokens: Math.max(0, cachedUpTo - read),
        cache_read_input_tokens: read
      }
    }
  }
}
