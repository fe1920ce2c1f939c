import fc from "fast-check"
import { describe, expect, it } from "vitest"
import type { CodeBlock } from "../src/domain/CodeBlock.js"
import { extractCodeBlocks } from "../src/markdown/CodeBlocks.js"

/** Plain fields of the extracted blocks, so expectations are plain object literals. */
const extract = (text: string) => extractCodeBlocks(text).map((block) => ({ ...block }))

/** The part of the text a block claims: from its opening fence line to the end of its last line. */
const sliceOf = (text: string, block: CodeBlock) => text.slice(block.startIndex, block.endIndex)

/** `block(language, code, [startIndex, endIndex], [startLine, endLine])` */
const block = (
  language: string | null,
  code: string,
  [startIndex, endIndex]: readonly [number, number],
  [startLine, endLine]: readonly [number, number]
): CodeBlock => ({ language, code, startIndex, endIndex, startLine, endLine })

/** A test's name, its text, the blocks the text yields and, when given, what the first block's offsets slice out of it. */
type Example = [name: string, text: string, blocks: ReadonlyArray<CodeBlock>, slice?: string]

const yieldsExactly = (_name: string, text: string, blocks: ReadonlyArray<CodeBlock>, slice?: string) => {
  const extracted = extractCodeBlocks(text)
  expect(extracted.map((block) => ({ ...block }))).toEqual(blocks)
  if (slice !== undefined) expect(sliceOf(text, extracted[0]!)).toBe(slice)
}

describe("extractCodeBlocks: fences", () => {
  it.each<Example>([
    ["extracts a backtick fence", "```js\nconst a = 1\n```", [block("js", "const a = 1\n", [0, 21], [1, 3])]],
    ["extracts a tilde fence", "~~~\nx\n~~~\n", [block(null, "x\n", [0, 9], [1, 3])]],
    ["keeps shorter fences inside a longer fence as code", "````md\n```js\nx\n```\n````", [block("md", "```js\nx\n```\n", [0, 23], [1, 5])]],
    [
      "closes a fence only with the same character at least as long",
      "~~~~\na\n~~~\n```\n~~~~~\nafter",
      [block(null, "a\n~~~\n```\n", [0, 20], [1, 5])]
    ],
    // "``` a`b" is inline code in a paragraph; the lone "```" below opens an (unclosed) fence.
    ["does not treat a backtick fence whose info string has a backtick as a fence", "``` a`b\nx\n```", [block(null, "", [10, 13], [3, 3])]]
  ])("%s", yieldsExactly)
})

describe("extractCodeBlocks: info strings", () => {
  it.each([
    ["takes the first word of an info string with attributes", '```python title="app.py"', "python"],
    ["lowercases the language", "```Python", "python"],
    ["keeps a {.js}-style attribute word as is", "```{.js}", "{.js}"],
    ["ignores spaces around the info string", "```   Ruby   extra", "ruby"],
    ["gives null for an info string of spaces only", "```   ", null],
    ["decodes backslash escapes in the info string as CommonMark does", "```c\\+\\+", "c++"],
    ["accepts backticks in a tilde fence's info string", "~~~ sh`x`", "sh`x`"]
  ] as const)("%s", (_name, opening, language) => {
    expect(extractCodeBlocks(`${opening}\nx\n\`\`\``)[0]?.language).toBe(language)
  })
})

describe("extractCodeBlocks: indentation and containers", () => {
  it.each<Example>([
    [
      "strips the fence's indentation (up to 3 spaces) from the code",
      "   ```sh\n   ls\n  -la\n     x\n   ```",
      [block("sh", "ls\n-la\n  x\n", [0, 34], [1, 5])]
    ],
    [
      "locates an indented fence after prose from its line start",
      "Run:\n\n  ```sh\n  ls\n  ```\n",
      [block("sh", "ls\n", [6, 24], [3, 5])],
      "  ```sh\n  ls\n  ```"
    ],
    [
      "extracts a fence inside a list item",
      "- step one\n\n  ```bash\n  npm test\n  ```\n- step two",
      [block("bash", "npm test\n", [12, 38], [3, 5])]
    ],
    [
      "extracts a fence opened on the list marker's line, including the marker in the slice",
      "1. ```py\n   x = 1\n   ```",
      [block("py", "x = 1\n", [0, 24], [1, 3])]
    ],
    [
      "extracts a fence inside a blockquote, without the quote markers in the code",
      "> ```js\n> a()\n> ```\n",
      [block("js", "a()\n", [0, 19], [1, 3])]
    ],
    ["ends an unclosed fence in a blockquote at the end of the blockquote", "> ```\n> x\n\nafter", [block(null, "x\n", [0, 9], [1, 2])]],
    ["excludes a fence swallowed by an HTML block", "<div>\n```js\nx\n```\n</div>", []]
  ])("%s", yieldsExactly)

  it("excludes indented code blocks, even when they contain fences", () => {
    expect(extract("    ```js\n    x\n    ```\n")).toEqual([])
    expect(extract("Text\n\n    indented\n\n```\ny\n```")).toEqual([
      { language: null, code: "y\n", startIndex: 20, endIndex: 29, startLine: 5, endLine: 7 }
    ])
  })
})

describe("extractCodeBlocks: unclosed fences", () => {
  it("runs an unclosed fence to the end of the text, trailing newline included", () => {
    const text = "Intro\n```ts\nlet a\n\nmore prose\n"
    expect(extract(text)).toEqual([
      { language: "ts", code: "let a\n\nmore prose\n", startIndex: 6, endIndex: 30, startLine: 2, endLine: 5 }
    ])
    expect(text.length).toBe(30)
  })

  it.each<Example>([
    ["runs an unclosed fence to the end of a text without trailing newline", "```\nabc", [block(null, "abc", [0, 7], [1, 2])]],
    ["handles an opening fence on the last line", "text\n```\n", [block(null, "", [5, 9], [2, 2])]],
    ["does not mistake a too-short fence for the closing one", "````\n```\n", [block(null, "```\n", [0, 9], [1, 2])]],
    // Found by the property tests: markdown-it leaves a final blank line out of its line map.
    ["runs an unclosed fence over a final blank line to the end of the text", "```\nx\n  ", [block(null, "x\n", [0, 8], [1, 3])], "```\nx\n  "]
  ])("%s", yieldsExactly)
})

describe("extractCodeBlocks: line endings and offsets", () => {
  it.each<Example>([
    [
      "maps CRLF text to offsets of the original text",
      "a\r\n\r\n```js\r\nx\r\ny\r\n```\r\nb\r\n",
      [block("js", "x\ny\n", [5, 21], [3, 6])],
      "```js\r\nx\r\ny\r\n```"
    ],
    ["excludes the CRLF after a closing fence at the end of the text", "```\r\nx\r\n```\r\n", [block(null, "x\n", [0, 11], [1, 3])]],
    ["counts a lone CR as a line break, like markdown-it", "p\r```\rx\r```\rq", [block(null, "x\n", [2, 11], [2, 4])]],
    [
      "uses UTF-16 offsets after emoji and astral characters",
      "😀 Here 👍🏽:\n```py\nprint('🎉')\n```\n",
      [block("py", "print('🎉')\n", [14, 35], [2, 4])],
      "```py\nprint('🎉')\n```"
    ],
    [
      "keeps offsets of text containing NUL, which markdown-it replaces with U+FFFD",
      "\0 x\n```\ny\0\n```",
      [block(null, "y\uFFFD\n", [4, 14], [2, 4])]
    ]
  ])("%s", yieldsExactly)
})

describe("extractCodeBlocks: shapes of documents", () => {
  it("returns nothing for empty text and prose without fences", () => {
    expect(extract("")).toEqual([])
    expect(extract("Just `inline` code and ``two`` ticks.\n")).toEqual([])
  })

  it.each<Example>([
    ["extracts an empty code block", "```\n```", [block(null, "", [0, 7], [1, 2])]],
    [
      "extracts several blocks in order",
      "```a\n1\n```\ntext\n~~~b\n2\n~~~",
      [block("a", "1\n", [0, 10], [1, 3]), block("b", "2\n", [16, 26], [5, 7])]
    ],
    ["extracts a block at the very start followed by prose", "```\nx\n```\nafter", [block(null, "x\n", [0, 9], [1, 3])]],
    ["extracts a block at the very end without a trailing newline", "intro\n\n```\nx\n```", [block(null, "x\n", [7, 16], [3, 5])]],
    ["extracts a block at the very end with a trailing newline, excluding it", "intro\n\n```\nx\n```\n", [block(null, "x\n", [7, 16], [3, 5])]]
  ])("%s", yieldsExactly)
})

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

const RUNS = { numRuns: 500 }

/** 1-based line of an offset, counting breaks as markdown-it does. */
const lineAt = (text: string, offset: number): number => (text.slice(0, offset).match(/\r\n|\n|\r/g) ?? []).length + 1

/** The text as markdown-it sees it. */
const normalize = (text: string): string => text.replace(/\r\n?/g, "\n").replace(/\0/g, "\uFFFD")

/** An opening fence line, possibly behind container markers ("> ", "- ", "1. ") and indentation. */
const OPENING_FENCE_LINE = /^(?:[ \t]*(?:>|[-+*]|\d{1,9}[.)]))*[ \t]*(?:`{3,}|~{3,})/

/** The invariants every extraction must satisfy, whatever the input. */
const checkInvariants = (text: string, blocks: ReadonlyArray<CodeBlock>): void => {
  let previousEnd = 0
  let previousEndLine = 0
  for (const block of blocks) {
    expect(block.startIndex).toBeGreaterThanOrEqual(previousEnd)
    expect(block.startIndex).toBeLessThan(block.endIndex)
    expect(block.endIndex).toBeLessThanOrEqual(text.length)
    expect(block.startLine).toBeGreaterThan(previousEndLine)
    expect(block.startLine).toBeLessThanOrEqual(block.endLine)

    // Offsets and lines agree: the block starts at the start of its line…
    expect(block.startIndex === 0 || /[\r\n]/.test(text[block.startIndex - 1] ?? "")).toBe(true)
    expect(lineAt(text, block.startIndex)).toBe(block.startLine)
    // …and ends on its last line (an unclosed fence at the end also owns the final break).
    const lastLineEnd = block.endIndex === text.length ? text.replace(/(?:\r\n|\n|\r)$/, "").length : block.endIndex
    expect(lineAt(text, lastLineEnd)).toBe(block.endLine)
    const slice = sliceOf(text, block)

    const firstLine = slice.split(/\r\n|\n|\r/)[0] ?? ""
    expect(firstLine).toMatch(OPENING_FENCE_LINE)
    // A fence at column 0 is top level and unindented: its code is verbatim (normalized) text.
    if (/^[`~]/.test(slice)) expect(normalize(slice)).toContain(block.code)

    previousEnd = block.endIndex
    previousEndLine = block.endLine
  }
}

/** How many generated texts yielded blocks: a property whose inputs never contain a block checks nothing. */
interface Coverage {
  cases: number
  withBlocks: number
}

const coverage = (): Coverage => ({ cases: 0, withBlocks: 0 })

const checkArbitraryText = (seen: Coverage) => (text: string): void => {
  const blocks = extractCodeBlocks(text)
  seen.cases++
  if (blocks.length > 0) seen.withBlocks++
  checkInvariants(text, blocks)
}

/** Most generated texts must contain at least one block, or the invariants above went unchecked. */
const expectMostlyBlocks = (seen: Coverage, share = 0.5) => {
  expect(seen.cases).toBeGreaterThanOrEqual(RUNS.numRuns)
  expect(seen.withBlocks, `${seen.withBlocks} of ${seen.cases} texts had a code block`).toBeGreaterThan(seen.cases * share)
}

/** Characters that make markdown structure likely, so random strings hit fences and containers. */
const markdownChar = fc.constantFrom(
  "`", "`", "`", "~", "~", " ", " ", "\t", "\n", "\n", "\r\n", "\r", ">", "-", "*", "1", ".", "<", "a", "\\", "\0", "😀"
)

/**
 * Fence lines of every shape: languages, info strings (with spaces, attributes, backticks),
 * longer fences that nest shorter ones, tildes, indentation, inside containers. Any of
 * them may be left unclosed.
 */
const fenceLine = fc.constantFrom(
  "```", "```", "````", "`````", "~~~", "~~~~", "```python", "```js title=\"app.js\"", "~~~ py x", "``` a`b",
  "````md", "```Python {.line-numbers}", "   ```ts", "    ```", "> ```", "> ```sql", "- ```", "1. ```json", "```c++", "``"
)

/** Lines of `text` (any alphabet) with fence lines mixed in, joined by one kind of line break. */
const withFences = (text: fc.Arbitrary<string>) =>
  fc
    .tuple(fc.array(fc.oneof(text, fenceLine, fenceLine), { minLength: 1, maxLength: 14 }), fc.constantFrom("\n", "\r\n", "\r"))
    .map(([lines, lineBreak]) => lines.join(lineBreak))

describe("extractCodeBlocks: properties of arbitrary text", () => {
  it("holds for ASCII text with fences", () => {
    const seen = coverage()
    fc.assert(fc.property(withFences(fc.string({ maxLength: 40 })), checkArbitraryText(seen)), RUNS)
    expectMostlyBlocks(seen)
  })

  it("holds for full Unicode text with fences", () => {
    // fc.string({ unit: "binary" }) is the non-deprecated fc.fullUnicodeString().
    const seen = coverage()
    fc.assert(fc.property(withFences(fc.string({ unit: "binary", maxLength: 40 })), checkArbitraryText(seen)), RUNS)
    expectMostlyBlocks(seen)
  })

  it("holds for strings over a markdown-heavy alphabet", () => {
    const seen = coverage()
    fc.assert(fc.property(withFences(fc.string({ unit: markdownChar, maxLength: 60 })), checkArbitraryText(seen)), RUNS)
    expectMostlyBlocks(seen)
  })

  it("holds for random markdown fragments, including containers and broken fences", () => {
    const fragment = fc.oneof(
      fc.constantFrom("```", "````", "~~~", "~~~~", "```js", "~~~ py x", "``` a`b", "```Python title=\"a\""),
      fc.constantFrom("> ", "- ", "1. ", "   ", "    ", "\t", "<div>", ""),
      fc.string({ unit: markdownChar, maxLength: 20 }),
      fc.string({ unit: "binary", maxLength: 10 })
    )
    const line = fc.array(fragment, { maxLength: 4 }).map((parts) => parts.join(""))
    const document = fc
      .array(fc.tuple(line, fc.constantFrom("\n", "\n", "\r\n", "\r")), { maxLength: 25 })
      .map((lines) => lines.map(([text, lineBreak]) => text + lineBreak).join(""))
    const seen = coverage()
    fc.assert(fc.property(document, checkArbitraryText(seen)), RUNS)
    expectMostlyBlocks(seen, 0.3)
  })
})

// --- Well-formed generated documents, with the expected blocks built alongside ---

/** Mutable so that the renderer can patch an unclosed last fence. */
interface Expected {
  language: string | null
  code: string
  startIndex: number
  endIndex: number
  startLine: number
  endLine: number
}

interface FenceSpec {
  readonly kind: "fence"
  readonly char: "`" | "~"
  readonly length: number
  readonly indent: number
  readonly quoted: boolean
  readonly language: string | null
  readonly attributes: string
  readonly body: ReadonlyArray<string>
}

interface ProseSpec {
  readonly kind: "prose"
  readonly lines: ReadonlyArray<string>
}

/** Whether a body line would close a fence of `char` repeated `length` times (such lines are dropped from bodies). */
const closesFence = (line: string, char: string, length: number): boolean =>
  new RegExp(`^ {0,3}${char === "`" ? "`" : "~"}{${length},}[ \\t]*$`).test(line)

const bodyLine = fc.string({
  unit: fc.oneof(fc.constantFrom("`", "~", " ", "\t", ">", "-", "<", "\\", "\0", "😀"), fc.string({ unit: "binary", minLength: 1, maxLength: 1 })),
  maxLength: 12
}).map((line) => line.replace(/[\r\n]/g, "x"))

const fenceSpec: fc.Arbitrary<FenceSpec> = fc
  .record({
    char: fc.constantFrom<"`" | "~">("`", "~"),
    length: fc.integer({ min: 3, max: 6 }),
    indent: fc.integer({ min: 0, max: 3 }),
    quoted: fc.boolean(),
    language: fc.option(fc.stringMatching(/^[A-Za-z][A-Za-z0-9+#-]{0,8}$/), { nil: null }),
    attributes: fc.constantFrom("", " ", '  title="app.py"', " {.line-numbers}"),
    body: fc.array(bodyLine, { maxLength: 5 })
  })
  .map((spec): FenceSpec => {
    // Tabs and leading spaces make the removed indentation depend on columns
    // (and, in a blockquote, on the optional space after ">"); the expected code
    // below stays simple by keeping such bodies only for unindented top-level fences.
    const simple = spec.indent === 0 && !spec.quoted
    const body = spec.body
      .map((line) => (simple ? line : line.replace(/\t/g, "x").replace(/^ +/, "")))
      .filter((line) => !closesFence(line, spec.char, spec.length))
    // Attributes without a language word would themselves be the language.
    const attributes = spec.language === null ? "" : spec.attributes
    return { kind: "fence", ...spec, attributes, body }
  })

const proseSpec: fc.Arbitrary<ProseSpec> = fc
  .array(
    fc.tuple(fc.stringMatching(/^[A-Za-z]$/), fc.string({ unit: fc.constantFrom("a", "Z", " ", ",", "*", "_", "`", "😀", "#"), maxLength: 15 })),
    { maxLength: 3 }
  )
  .map((lines) => ({ kind: "prose", lines: lines.map(([first, rest]) => first + rest) }))

interface GeneratedDocument {
  readonly text: string
  readonly expected: ReadonlyArray<Expected>
}

/**
 * Renders the specs with the chosen line breaks and records where each fence lands.
 * The last fence may be left unclosed; quoted fences are followed by a blank line
 * so the blockquote ends before the next part.
 */
const render = (
  parts: ReadonlyArray<FenceSpec | ProseSpec>,
  lineBreak: string,
  unclosedLast: boolean,
  trailingBreak: boolean
): GeneratedDocument => {
  const lines: Array<string> = []
  const expected: Array<Expected> = []
  const offsetOfLine = (index: number) => lines.slice(0, index).reduce((sum, line) => sum + line.length + lineBreak.length, 0)
  parts.forEach((part, partIndex) => {
    if (part.kind === "prose") {
      lines.push(...part.lines, "")
      return
    }
    const unclosed = unclosedLast && partIndex === parts.length - 1
    const prefix = part.quoted ? "> " : ""
    const indent = " ".repeat(part.indent)
    const fence = part.char.repeat(part.length)
    const startLine = lines.length
    lines.push(`${prefix}${indent}${fence}${part.language ?? ""}${part.attributes}`)
    for (const line of part.body) lines.push(`${prefix}${indent}${line}`)
    if (!unclosed) lines.push(`${prefix}${indent}${fence}`)
    const endLine = lines.length
    expected.push({
      language: part.language?.toLowerCase() ?? null,
      code: part.body.map((line) => line.replace(/\0/g, "\uFFFD") + "\n").join(""),
      startIndex: offsetOfLine(startLine),
      endIndex: offsetOfLine(endLine) - lineBreak.length, // patched below for an unclosed fence
      startLine: startLine + 1,
      endLine
    })
    if (part.quoted && !unclosed) lines.push("")
  })
  const text = lines.join(lineBreak) + (trailingBreak ? lineBreak : "")
  const last = expected[expected.length - 1]
  const lastPart = parts[parts.length - 1]
  if (unclosedLast && last !== undefined && lastPart?.kind === "fence") {
    // An unclosed fence runs to the end of the text; without a final break its
    // last body line has no "\n" in the code.
    last.endIndex = text.length
    if (!trailingBreak && last.code.endsWith("\n") && last.endLine > last.startLine) last.code = last.code.slice(0, -1)
  }
  return { text, expected }
}

const generatedDocument: fc.Arbitrary<GeneratedDocument> = fc
  .tuple(
    fc.array(fc.oneof(fenceSpec, proseSpec), { maxLength: 6 }),
    fc.constantFrom("\n", "\r\n", "\r"),
    fc.boolean(),
    fc.boolean()
  )
  .map(([parts, lineBreak, unclosedLast, trailingBreak]) => {
    // An empty (or spaces-and-tabs) last line is no line at all without a final break
    // (as for markdown-it), so an unclosed last fence must not end on a blank body line.
    const last = parts[parts.length - 1]
    if (unclosedLast && last?.kind === "fence" && /^[ \t]*$/.test(last.body[last.body.length - 1] ?? "x")) {
      parts = [...parts.slice(0, -1), { ...last, body: [...last.body.slice(0, -1), "end"] }]
    }
    return render(parts, lineBreak, unclosedLast, trailingBreak)
  })

describe("extractCodeBlocks: properties of well-formed documents", () => {
  it("extracts exactly the generated blocks, bodies and locations", () => {
    const seen = coverage()
    fc.assert(
      fc.property(generatedDocument, ({ text, expected }) => {
        const blocks = extractCodeBlocks(text)
        seen.cases++
        if (expected.length > 0) seen.withBlocks++
        checkInvariants(text, blocks)
        expect(blocks.map((block) => ({ ...block }))).toEqual(expected)
      }),
      RUNS
    )
    expectMostlyBlocks(seen)
  })
})
