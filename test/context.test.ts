/**
 * What Claude is sent (FR-008): `buildContext` over any stored history. Property-based
 * tests hold the Messages API's invariants and the PRD's window rules for arbitrary
 * histories (roles in any order, empty, blank and huge contents, any length) and options;
 * examples pin merging and oldest-first dropping.
 */
import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import { SYSTEM_PROMPT } from "../src/claude/Claude.js"
import { buildContext, type ContextOptions, estimateTokens, type StoredTurn } from "../src/chat/Context.js"

type Role = "user" | "assistant"

/** The PRD's estimate, written here independently: about four characters per token. */
const tokens = (text: string) => Math.ceil(text.length / 4)

const isBlank = (text: string) => text.trim().length === 0

// ---------------------------------------------------------------------------------------------
// Arbitraries

const role: fc.Arbitrary<Role> = fc.constantFrom("user", "assistant")

const blank = fc.stringOf(fc.constantFrom(" ", "\n", "\t", "\r", "\u00a0", "\u2003"), { maxLength: 8 })

const content: fc.Arbitrary<string> = fc.oneof(
  { weight: 1, arbitrary: fc.constant("") },
  { weight: 2, arbitrary: blank },
  { weight: 6, arbitrary: fc.string({ minLength: 1, maxLength: 80 }) },
  { weight: 2, arbitrary: fc.string({ unit: "grapheme", minLength: 1, maxLength: 40 }) },
  { weight: 1, arbitrary: fc.tuple(blank, fc.string({ minLength: 1, maxLength: 20 }), blank).map(([a, b, c]) => a + b + c) },
  // Huge: up to ~200k characters (50k tokens), cheap to build.
  { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 1_000, max: 200_000 }), fc.char()).map(([n, c]) => c.repeat(n) + "!") }
)

const turn: fc.Arbitrary<StoredTurn> = fc.record({ role, content })

const history = fc.array(turn, { maxLength: 60 })

/** A history that ends as the service's always does: with the new, non-blank user message. */
const servedHistory = fc.tuple(history, fc.string({ minLength: 1, maxLength: 200 }).filter((s) => !isBlank(s))).map(
  ([older, latest]): ReadonlyArray<StoredTurn> => [...older, { role: "user", content: latest }]
)

const options: fc.Arbitrary<ContextOptions> = fc.record({
  messageLimit: fc.integer({ min: 1, max: 40 }),
  tokenBudget: fc.oneof(
    fc.integer({ min: 1, max: 400 }),
    fc.integer({ min: 400, max: 5_000 }),
    fc.integer({ min: 5_000, max: 200_000 }),
    fc.constant(160_000)
  ),
  systemPrompt: fc.oneof(fc.constant(SYSTEM_PROMPT), fc.constant(""), fc.string({ maxLength: 2_000 }))
})

const RUNS = { numRuns: 400 }

// ---------------------------------------------------------------------------------------------
// Invariants for any history

describe("buildContext: invariants for any stored history (property-based)", () => {
  it("never sends an empty or blank message", () => {
    fc.assert(
      fc.property(history, options, (h, o) => {
        for (const message of buildContext(h, o)) expect(isBlank(message.content)).toBe(false)
      }),
      RUNS
    )
  })

  it("never sends two consecutive messages of the same role", () => {
    fc.assert(
      fc.property(history, options, (h, o) => {
        const context = buildContext(h, o)
        context.forEach((message, i) => {
          if (i > 0) expect(message.role).not.toBe(context[i - 1]?.role)
        })
      }),
      RUNS
    )
  })

  it("starts and ends with a user message when it is not empty", () => {
    let checked = 0
    fc.assert(
      fc.property(fc.oneof(history, servedHistory), options, (h, o) => {
        const context = buildContext(h, o)
        if (context.length > 0) {
          checked++
          expect(context[0]?.role).toBe("user")
          expect(context.at(-1)?.role).toBe("user")
        }
      }),
      RUNS
    )
    // Half the histories end as the service's do, so most cases have a context to check.
    expect(checked).toBeGreaterThan(RUNS.numRuns / 2)
  })

  it("includes the newest user message whenever the history ends with a non-blank user message", () => {
    fc.assert(
      fc.property(servedHistory, options, (h, o) => {
        const latest = h.at(-1)?.content ?? ""
        const context = buildContext(h, o)
        expect(context.length).toBeGreaterThan(0)
        expect(context.at(-1)?.role).toBe("user")
        expect(context.at(-1)?.content.endsWith(latest)).toBe(true)
      }),
      RUNS
    )
  })

  it("is empty only when the considered window has no non-blank user message", () => {
    fc.assert(
      fc.property(history, options, (h, o) => {
        const window = h.slice(-o.messageLimit)
        const hasUser = window.some((t) => t.role === "user" && !isBlank(t.content))
        expect(buildContext(h, o).length > 0).toBe(hasUser)
      }),
      RUNS
    )
  })

  it("respects CONTEXT_MESSAGE_LIMIT", () => {
    fc.assert(
      fc.property(history, options, (h, o) => {
        expect(buildContext(h, o).length).toBeLessThanOrEqual(o.messageLimit)
      }),
      RUNS
    )
  })

  it("fits the token budget (messages + system prompt, chars/4) unless only one message remains", () => {
    let checked = 0
    fc.assert(
      fc.property(fc.oneof(history, servedHistory), options, (h, o) => {
        const context = buildContext(h, o)
        const estimate = context.reduce((sum, m) => sum + tokens(m.content), 0) + tokens(o.systemPrompt)
        if (context.length > 1) {
          checked++
          expect(estimate).toBeLessThanOrEqual(o.tokenBudget)
        }
      }),
      RUNS
    )
    // The budget binds in many cases: a property checked on a handful of contexts checks little.
    expect(checked).toBeGreaterThan(RUNS.numRuns / 10)
  })

  it("sends only text that was stored, in the stored order (merging adds only whitespace)", () => {
    const visible = (text: string) => text.replace(/\s+/g, "")
    /** Whether `needle` is a subsequence of `haystack`. */
    const isSubsequence = (needle: string, haystack: string) => {
      let at = 0
      for (const ch of needle) {
        at = haystack.indexOf(ch, at)
        if (at < 0) return false
        at += ch.length
      }
      return true
    }
    fc.assert(
      fc.property(history, options, (h, o) => {
        const sent = visible(buildContext(h, o).map((m) => m.content).join(""))
        const stored = visible(h.slice(-o.messageLimit).map((t) => t.content).join(""))
        expect(isSubsequence(sent, stored)).toBe(true)
      }),
      { numRuns: 200 }
    )
  })

  it("uses the PRD estimate of about four characters per token", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 500 }), (text) => {
        expect(estimateTokens(text)).toBe(tokens(text))
      })
    )
  })
})

// ---------------------------------------------------------------------------------------------
// Which turns are kept: a contiguous, newest-first window, dropped oldest first and no more

/** Stored turns whose contents name their index, `⟨i⟩…`, so the result can be traced back. */
const taggedHistory = fc
  .array(
    fc.record({
      role,
      blank: fc.integer({ min: 0, max: 9 }).map((n) => n < 2),
      body: fc.oneof(
        fc.stringOf(fc.constantFrom("a", "b", " ", "\n", "."), { maxLength: 30 }),
        fc.integer({ min: 100, max: 4_000 }).map((n) => "w".repeat(n))
      )
    }),
    { maxLength: 40 }
  )
  .map((turns) =>
    turns.map((t, i): StoredTurn => ({ role: t.role, content: t.blank ? " \n " : `⟨${i}⟩${t.body}` }))
  )

/** What the service puts between merged messages, learnt from the function itself. */
const SEPARATOR = (() => {
  const [merged] = buildContext(
    [{ role: "user", content: "a" }, { role: "user", content: "b" }],
    { messageLimit: 2, tokenBudget: 1_000, systemPrompt: "" }
  )
  return merged?.content.slice(1, -1) ?? ""
})()

const tagsOf = (text: string) => [...text.matchAll(/⟨(\d+)⟩/g)].map((m) => Number(m[1]))

/** The estimate of `turns` once same-role neighbours are merged with a separator of this length. */
const mergedTokens = (turns: ReadonlyArray<StoredTurn>, separatorLength: number) => {
  let total = 0
  let run = -1
  let previous: Role | undefined
  for (const t of turns) {
    if (t.role === previous) run += separatorLength + t.content.length
    else {
      if (run >= 0) total += tokens("x".repeat(run))
      run = t.content.length
    }
    previous = t.role
  }
  if (run >= 0) total += tokens("x".repeat(run))
  return total
}

/**
 * A tagged history whose window holds at least two user runs and ends with a user turn,
 * with a token budget that fits the newest user run but not the whole window from its
 * first user turn: buildContext must drop something, and every case has an answer to check.
 */
const overBudget = fc
  .tuple(
    taggedHistory,
    fc.constantFrom("⟨a⟩first question", "⟨a⟩" + "q".repeat(600)),
    fc.constantFrom("⟨b⟩an answer", "⟨b⟩" + "r".repeat(900)),
    fc.constantFrom("⟨c⟩the newest question", "⟨c⟩" + "s".repeat(300)),
    fc.oneof(fc.constant(""), fc.constant(SYSTEM_PROMPT), fc.string({ maxLength: 400 }))
  )
  .chain(([older, first, answer, newest, systemPrompt]) => {
    // Re-tag so that every turn's tag is its index.
    const turns = [...older, { role: "user", content: first }, { role: "assistant", content: answer }, { role: "user", content: newest }]
      .map((t, i): StoredTurn => ({ role: t.role as Role, content: isBlank(t.content) ? t.content : t.content.replace(/^⟨[^⟩]*⟩/, `⟨${i}⟩`) }))
    return fc.integer({ min: 3, max: turns.length + 5 }).chain((messageLimit) => {
      const window = turns.slice(-messageLimit).filter((t) => !isBlank(t.content))
      const fromFirstUser = window.slice(window.findIndex((t) => t.role === "user"))
      let newestRun = fromFirstUser.length - 1
      while (newestRun > 0 && fromFirstUser[newestRun - 1]?.role === "user") newestRun--
      const fits = mergedTokens(fromFirstUser.slice(newestRun), SEPARATOR.length) + tokens(systemPrompt)
      const whole = mergedTokens(fromFirstUser, SEPARATOR.length) + tokens(systemPrompt)
      return fc
        .integer({ min: fits, max: whole - 1 })
        .map((tokenBudget) => ({ history: turns, options: { messageLimit, tokenBudget, systemPrompt } satisfies ContextOptions }))
    })
  })

describe("buildContext: which turns are kept (property-based)", () => {
  it("keeps a contiguous run of the window's non-blank turns that ends at the newest user turn", () => {
    fc.assert(
      fc.property(taggedHistory, options, (h, o) => {
        const context = buildContext(h, o)
        const kept = context.flatMap((m) => tagsOf(m.content))
        const windowStart = Math.max(0, h.length - o.messageLimit)
        const candidates = h
          .map((t, i) => ({ ...t, i }))
          .slice(windowStart)
          .filter((t) => !isBlank(t.content))
        const lastUser = candidates.filter((t) => t.role === "user").at(-1)
        if (lastUser === undefined) {
          expect(kept).toEqual([])
          return
        }
        expect(kept.at(-1)).toBe(lastUser.i)
        const firstKept = kept[0] ?? lastUser.i
        expect(kept).toEqual(candidates.filter((t) => t.i >= firstKept && t.i <= lastUser.i).map((t) => t.i))
        // It starts with a user turn.
        expect(h[firstKept]?.role).toBe("user")
      }),
      RUNS
    )
  })

  it("drops no more than it must: one more (older) user-led run would exceed the budget", () => {
    fc.assert(
      fc.property(overBudget, ({ history: h, options: o }) => {
        const context = buildContext(h, o)
        const kept = context.flatMap((m) => tagsOf(m.content))
        const windowStart = Math.max(0, h.length - o.messageLimit)
        const candidates = h
          .map((t, i) => ({ ...t, i }))
          .slice(windowStart)
          .filter((t) => !isBlank(t.content))
        // The generator guarantees a newest user turn (always kept) and a budget too small for the whole window.
        expect(kept.length).toBeGreaterThan(0)
        const firstKept = kept[0]!
        const lastKept = kept.at(-1)!
        // The start of the previous user run in the window: it exists, since something was dropped.
        const older = candidates.filter((t) => t.i < firstKept)
        let j = older.length - 1
        while (j >= 0 && older[j]?.role !== "user") j--
        while (j > 0 && older[j - 1]?.role === "user") j--
        expect(j, "an older user run was dropped").toBeGreaterThanOrEqual(0)
        const extended = candidates.filter((t) => t.i >= (older[j]?.i ?? 0) && t.i <= lastKept)
        expect(mergedTokens(extended, SEPARATOR.length) + tokens(o.systemPrompt)).toBeGreaterThan(o.tokenBudget)
      }),
      RUNS
    )
  })
})

// ---------------------------------------------------------------------------------------------
// Examples

const options20 = (tokenBudget = 160_000, systemPrompt = SYSTEM_PROMPT): ContextOptions => ({
  messageLimit: 20,
  tokenBudget,
  systemPrompt
})

const u = (content: string): StoredTurn => ({ role: "user", content })
const a = (content: string): StoredTurn => ({ role: "assistant", content })

describe("buildContext: examples", () => {
  it("passes a well-formed conversation through unchanged", () => {
    const h = [u("Build me an inventory tracker"), a("Here it is"), u("Add a search feature")]
    expect(buildContext(h, options20())).toEqual(h)
  })

  it("merges consecutive messages of one role, keeping both texts in order", () => {
    const context = buildContext([u("first"), u("second"), a("one"), a("two"), u("third")], options20())
    expect(context.map((m) => m.role)).toEqual(["user", "assistant", "user"])
    expect(context[0]?.content).toMatch(/^first\s+second$/)
    expect(context[1]?.content).toMatch(/^one\s+two$/)
    expect(context[2]?.content).toBe("third")
  })

  it("leaves out empty and blank messages (a failed answer stored empty), then merges around them", () => {
    const context = buildContext([u("question"), a(""), u("question again"), a("  \n"), u("and again")], options20())
    expect(context).toHaveLength(1)
    expect(context[0]?.role).toBe("user")
    expect(context[0]?.content).toMatch(/^question\s+question again\s+and again$/)
  })

  it("drops leading assistant messages and trailing ones", () => {
    expect(buildContext([a("hello"), u("hi"), a("answer")], options20())).toEqual([u("hi")])
  })

  it("considers only the last CONTEXT_MESSAGE_LIMIT stored messages", () => {
    const h = Array.from({ length: 25 }, (_, i) => (i % 2 === 0 ? u(`user ${i}`) : a(`assistant ${i}`)))
    const context = buildContext(h, options20())
    // The last 20 are 5..24; 5 is an assistant message, so the context starts at 6.
    expect(context).toEqual(h.slice(6))
    expect(buildContext(h, { ...options20(), messageLimit: 1 })).toEqual([u("user 24")])
  })

  it("drops the oldest messages first while the estimate exceeds the budget", () => {
    const big = "x".repeat(400) // 100 tokens each
    const h = [u(`1${big}`), a(`2${big}`), u(`3${big}`), a(`4${big}`), u(`5${big}`)]
    const system = "s".repeat(40) // 10 tokens
    // 5 messages: ~505 + 10 tokens. Budget 360 keeps the last three (u, a, u).
    const context = buildContext(h, options20(360, system))
    expect(context).toEqual(h.slice(2))
    // A budget for one message keeps only the newest.
    expect(buildContext(h, options20(120, system))).toEqual(h.slice(4))
  })

  it("counts the system prompt against the budget", () => {
    const h = [u("x".repeat(400)), a("y".repeat(400)), u("z".repeat(400))]
    expect(buildContext(h, options20(310, ""))).toEqual(h)
    expect(buildContext(h, options20(310, "s".repeat(200)))).toEqual(h.slice(2))
  })

  it("keeps the newest user message even when it alone exceeds the budget", () => {
    const huge = "h".repeat(1_000_000)
    expect(buildContext([u("old"), a("answer"), u(huge)], options20(1_000))).toEqual([u(huge)])
  })

  it("is empty for an empty history or one with no user text", () => {
    expect(buildContext([], options20())).toEqual([])
    expect(buildContext([a("only me"), u("   ")], options20())).toEqual([])
  })
})
