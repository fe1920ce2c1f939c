import fc from "fast-check"
import { describe, expect, it } from "vitest"
import type { CodeBlock } from "../src/domain/CodeBlock.js"
import { extractCodeBlocks } from "../src/markdown/CodeBlocks.js"

/** Plain fields of the extracted blocks, so expectations are plain object literals. */
const extract = (text: string) => extractCodeBlocks(text).map((block) => ({ ...block }))

/** The part of the text a block claims: from its opening fence line to the end of its last line. */
const sliceOf = (text: string, block: CodeBlock) => text.slice(block.startIndex, block.endIndex)

describe("extractCodeBlocks: fences", () => {
  it("extracts a backtick fence", () => {
    expect(extract("```js\nconst a = 1\n```")).toEqual([
      { language: "js", code: "const a = 1\n", startIndex: 0, endIndex: 21, startLine: 1, endLine: 3 }
    ])
  })

  it("extracts a tilde fence", () => {
    expect(extract("~~~\nx\n~~~\n")).toEqual([
      { language: null, code: "x\n", startIndex: 0, endIndex: 9, startLine: 1, endLine: 3 }
    ])
  })

  it("keeps shorter fences inside a longer fence as code", () => {
    const text = "````md\n```js\nx\n```\n````"
    expect(extract(text)).toEqual([
      { language: "md", code: "```js\nx\n```\n", startIndex: 0, endIndex: text.length, startLine: 1, endLine: 5 }
    ])
  })

  it("closes a fence only with the same character at least as long", () => {
    const text = "~~~~\na\n~~~\n```\n~~~~~\nafter"
    expect(extract(text)).toEqual([
      { language: null, code: "a\n~~~\n```\n", startIndex: 0, endIndex: 20, startLine: 1, endLine: 5 }
    ])
  })

  it("does not treat a backtick fence whose info string has a backtick as a fence", () => {
    // "``` a`b" is inline code in a paragraph; the lone "```" below opens an (unclosed) fence.
    expect(extract("``` a`b\nx\n```")).toEqual([
      { language: null, code: "", startIndex: 10, endIndex: 13, startLine: 3, endLine: 3 }
    ])
  })
})

describe("extractCodeBlocks: info strings", () => {
  const languageOf = (opening: string) => extractCodeBlocks(`${opening}\nx\n\`\`\``)[0]?.language

  it("takes the first word of an info string with attributes", () => {
    expect(languageOf('```python title="app.py"')).toBe("python")
  })

  it("lowercases the language", () => {
    expect(languageOf("```Python")).toBe("python")
  })

  it("keeps a {.js}-style attribute word as is", () => {
    expect(languageOf("```{.js}")).toBe("{.js}")
  })

  it("ignores spaces around the info string", () => {
    expect(languageOf("```   Ruby   extra")).toBe("ruby")
  })

  it("gives null for an info string of spaces only", () => {
    expect(languageOf("```   ")).toBeNull()
  })

  it("decodes backslash escapes in the info string as CommonMark does", () => {
    expect(languageOf("```c\\+\\+")).toBe("c++")
  })

  it("accepts backticks in a tilde fence's info string", () => {
    expect(languageOf("~~~ sh`x`")).toBe("sh`x`")
  })
})

describe("extractCodeBlocks: indentation and containers", () => {
  it("strips the fence's indentation (up to 3 spaces) from the code", () => {
    const text = "   ```sh\n   ls\n  -la\n     x\n   ```"
    expect(extract(text)).toEqual([
      { language: "sh", code: "ls\n-la\n  x\n", startIndex: 0, endIndex: text.length, startLine: 1, endLine: 5 }
    ])
  })

  it("locates an indented fence after prose from its line start", () => {
    const text = "Run:\n\n  ```sh\n  ls\n  ```\n"
    const blocks = extractCodeBlocks(text)
    expect(blocks.map((block) => ({ ...block }))).toEqual([
      { language: "sh", code: "ls\n", startIndex: 6, endIndex: 24, startLine: 3, endLine: 5 }
    ])
    expect(sliceOf(text, blocks[0]!)).toBe("  ```sh\n  ls\n  ```")
  })

  it("extracts a fence inside a list item", () => {
    const text = "- step one\n\n  ```bash\n  npm test\n  ```\n- step two"
    expect(extract(text)).toEqual([
      { language: "bash", code: "npm test\n", startIndex: 12, endIndex: 38, startLine: 3, endLine: 5 }
    ])
  })

  it("extracts a fence opened on the list marker's line, including the marker in the slice", () => {
    const text = "1. ```py\n   x = 1\n   ```"
    const blocks = extractCodeBlocks(text)
    expect(blocks.map((block) => ({ ...block }))).toEqual([
      { language: "py", code: "x = 1\n", startIndex: 0, endIndex: 24, startLine: 1, endLine: 3 }
    ])
  })

  it("extracts a fence inside a blockquote, without the quote markers in the code", () => {
    expect(extract("> ```js\n> a()\n> ```\n")).toEqual([
      { language: "js", code: "a()\n", startIndex: 0, endIndex: 19, startLine: 1, endLine: 3 }
    ])
  })

  it("ends an unclosed fence in a blockquote at the end of the blockquote", () => {
    expect(extract("> ```\n> x\n\nafter")).toEqual([
      { language: null, code: "x\n", startIndex: 0, endIndex: 9, startLine: 1, endLine: 2 }
    ])
  })

  it("excludes indented code blocks, even when they contain fences", () => {
    expect(extract("    ```js\n    x\n    ```\n")).toEqual([])
    expect(extract("Text\n\n    indented\n\n```\ny\n```")).toEqual([
      { language: null, code: "y\n", startIndex: 20, endIndex: 29, startLine: 5, endLine: 7 }
    ])
  })

  it("excludes a fence swallowed by an HTML block", () => {
    expect(extract("<div>\n```js\nx\n```\n</div>")).toEqual([])
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

  it("runs an unclosed fence to the end of a text without trailing newline", () => {
    expect(extract("```\nabc")).toEqual([
      { language: null, code: "abc", startIndex: 0, endIndex: 7, startLine: 1, endLine: 2 }
    ])
  })

  it("handles an opening fence on the last line", () => {
    expect(extract("text\n```\n")).toEqual([
      { language: null, code: "", startIndex: 5, endIndex: 9, startLine: 2, endLine: 2 }
    ])
  })

  it("does not mistake a too-short fence for the closing one", () => {
    expect(extract("````\n```\n")).toEqual([
      { language: null, code: "```\n", startIndex: 0, endIndex: 9, startLine: 1, endLine: 2 }
    ])
  })
})

describe("extractCodeBlocks: line endings and offsets", () => {
  it("maps CRLF text to offsets of the original text", () => {
    const text = "a\r\n\r\n```js\r\nx\r\ny\r\n```\r\nb\r\n"
    const blocks = extractCodeBlocks(text)
    expect(blocks.map((block) => ({ ...block }))).toEqual([
      { language: "js", code: "x\ny\n", startIndex: 5, endIndex: 21, startLine: 3, endLine: 6 }
    ])
    expect(sliceOf(text, blocks[0]!)).toBe("```js\r\nx\r\ny\r\n```")
  })

  it("excludes the CRLF after a closing fence at the end of the text", () => {
    expect(extract("```\r\nx\r\n```\r\n")).toEqual([
      { language: null, code: "x\n", startIndex: 0, endIndex: 11, startLine: 1, endLine: 3 }
    ])
  })

  it("counts a lone CR as a line break, like markdown-it", () => {
    expect(extract("p\r```\rx\r```\rq")).toEqual([
      { language: null, code: "x\n", startIndex: 2, endIndex: 11, startLine: 2, endLine: 4 }
    ])
  })

  it("uses UTF-16 offsets after emoji and astral characters", () => {
    const text = "😀 Here 👍🏽:\n```py\nprint('🎉')\n```\n"
    const blocks = extractCodeBlocks(text)
    expect(blocks.map((block) => ({ ...block }))).toEqual([
      { language: "py", code: "print('🎉')\n", startIndex: 14, endIndex: 35, startLine: 2, endLine: 4 }
    ])
    expect(sliceOf(text, blocks[0]!)).toBe("```py\nprint('🎉')\n```")
  })

  it("keeps offsets of text containing NUL, which markdown-it replaces with U+FFFD", () => {
    expect(extract("\0 x\n```\ny\0\n```")).toEqual([
      { language: null, code: "y\uFFFD\n", startIndex: 4, endIndex: 14, startLine: 2, endLine: 4 }
    ])
  })
})

describe("extractCodeBlocks: shapes of documents", () => {
  it("returns nothing for empty text and prose without fences", () => {
    expect(extract("")).toEqual([])
    expect(extract("Just `inline` code and ``two`` ticks.\n")).toEqual([])
  })

  it("extracts an empty code block", () => {
    expect(extract("```\n```")).toEqual([
      { language: null, code: "", startIndex: 0, endIndex: 7, startLine: 1, endLine: 2 }
    ])
  })

  it("extracts several blocks in order", () => {
    expect(extract("```a\n1\n```\ntext\n~~~b\n2\n~~~")).toEqual([
      { language: "a", code: "1\n", startIndex: 0, endIndex: 10, startLine: 1, endLine: 3 },
      { language: "b", code: "2\n", startIndex: 16, endIndex: 26, startLine: 5, endLine: 7 }
    ])
  })

  it("extracts a block at the very start followed by prose", () => {
    expect(extract("```\nx\n```\nafter")).toEqual([
      { language: null, code: "x\n", startIndex: 0, endIndex: 9, startLine: 1, endLine: 3 }
    ])
  })

  it("extracts a block at the very end without a trailing newline", () => {
    expect(extract("intro\n\n```\nx\n```")).toEqual([
      { language: null, code: "x\n", startIndex: 7, endIndex: 16, startLine: 3, endLine: 5 }
    ])
  })

  it("extracts a block at the very end with a trailing newline, excluding it", () => {
    expect(extract("intro\n\n```\nx\n```\n")).toEqual([
      { language: null, code: "x\n", startIndex: 7, endIndex: 16, startLine: 3, endLine: 5 }
    ])
  })
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

const checkArbitraryText = (text: string): void => checkInvariants(text, extractCodeBlocks(text))

/** Characters that make markdown structure likely, so random strings hit fences and containers. */
const markdownChar = fc.constantFrom(
  "`", "`", "`", "~", "~", " ", " ", "\t", "\n", "\n", "\r\n", "\r", ">", "-", "*", "1", ".", "<", "a", "\\", "\0", "😀"
)

describe("extractCodeBlocks: properties of arbitrary text", () => {
  it("holds for ASCII strings", () => {
    fc.assert(fc.property(fc.string(), checkArbitraryText), RUNS)
  })

  it("holds for full Unicode strings", () => {
    // fc.string({ unit: "binary" }) is the non-deprecated fc.fullUnicodeString().
    fc.assert(fc.property(fc.string({ unit: "binary" }), checkArbitraryText), RUNS)
  })

  it("holds for strings over a markdown-heavy alphabet", () => {
    fc.assert(fc.property(fc.string({ unit: markdownChar, maxLength: 200 }), checkArbitraryText), RUNS)
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
    fc.assert(fc.property(document, checkArbitraryText), RUNS)
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
    // An empty last line is no line at all without a final break (as for
    // markdown-it), so an unclosed last fence must not end on an empty body line.
    const last = parts[parts.length - 1]
    if (unclosedLast && last?.kind === "fence" && last.body[last.body.length - 1] === "") {
      parts = [...parts.slice(0, -1), { ...last, body: [...last.body.slice(0, -1), "end"] }]
    }
    return render(parts, lineBreak, unclosedLast, trailingBreak)
  })

describe("extractCodeBlocks: properties of well-formed documents", () => {
  it("extracts exactly the generated blocks, bodies and locations", () => {
    fc.assert(
      fc.property(generatedDocument, ({ text, expected }) => {
        const blocks = extractCodeBlocks(text)
        checkInvariants(text, blocks)
        expect(blocks.map((block) => ({ ...block }))).toEqual(expected)
      }),
      RUNS
    )
  })
})
