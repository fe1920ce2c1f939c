/**
 * Extraction of fenced code blocks from Claude's markdown answers.
 *
 * Blocks are found by markdown-it's CommonMark parser, never by a regular
 * expression, so that fences inside lists and blockquotes, fences longer than
 * three characters and fences that are not fences (indented code, HTML blocks)
 * are treated exactly as a CommonMark renderer would show them.
 *
 * CommonMark edge cases whose result may surprise a reader:
 * - `code` is markdown-it's token content: it keeps the body's final newline
 *   ("print(1)\n"), uses "\n" even when the text used CRLF or CR, has NUL
 *   replaced by U+FFFD, and has the fence's indentation (and, inside a list
 *   item or blockquote, the container prefix) removed from each line — a
 *   partially removed tab becomes spaces. It is therefore a substring of
 *   `text.slice(startIndex, endIndex)` only for an unindented, top-level fence
 *   in LF text.
 * - An unclosed fence runs to the end of the text and swallows all the prose
 *   after it. Inside a list item or blockquote it runs only to the end of that
 *   container; its `endIndex`/`endLine` are then those of its last line, not
 *   of the text.
 * - `startIndex` is the start of the opening fence's line, so for a fence in a
 *   container it includes the container prefix ("> ", "- ", "1. ").
 * - A backtick fence whose info string contains a backtick ("``` a`b") is not
 *   a fence (it is inline code); a tilde fence may contain backticks.
 * - A fence is closed only by the same character repeated at least as many
 *   times as the opening fence ("~~~" does not close "```", "```" does not
 *   close "````"), indented by at most three spaces.
 * - Fences indented by four or more spaces (or a tab) are indented code
 *   blocks, not fenced blocks, and are not returned; neither are fences inside
 *   an HTML block (`<div>` followed by a fence without a blank line between).
 * - `language` is the first whitespace-separated word of the info string after
 *   CommonMark backslash-escape and entity decoding, lowercased with no other
 *   interpretation: "{.js}" gives "{.js}", "c\+\+" gives "c++".
 */
import type MarkdownIt from "markdown-it"
import { createRequire } from "node:module"
import { CodeBlock } from "../domain/CodeBlock.js"

const require = createRequire(import.meta.url)
let shared: MarkdownIt | undefined

/**
 * One shared parser, made at the first use: markdown-it's ES modules are some 80 files that a
 * starting service need not load (its CommonJS build is a few). Only block structure matters
 * here, so the inline phase is disabled: fence tokens are produced by the block phase, and
 * skipping inline parsing saves most of the work on long answers.
 */
const parser = (): MarkdownIt => {
  if (shared === undefined) {
    const Parser = require("markdown-it") as typeof MarkdownIt
    shared = new Parser("commonmark")
    shared.core.ruler.disable(["inline", "text_join"])
  }
  return shared
}

/** markdown-it's token type (its package root does not export it by name). */
type Token = ReturnType<MarkdownIt["parse"]>[number]

/**
 * Line breaks exactly as markdown-it's normalize rule counts them
 * (`/\r\n?|\n/`): CRLF is one break, a lone CR is one break.
 */
const LINE_BREAK = /\r\n|\n|\r/g

/** Start and end (excluding the line break) offsets of each line of the original text. */
interface LineTable {
  readonly starts: ReadonlyArray<number>
  readonly ends: ReadonlyArray<number>
}

/**
 * Splits the ORIGINAL text into lines the way markdown-it numbers them, so its
 * line map can be turned into offsets of the text the caller holds (markdown-it
 * parses a normalized copy whose offsets differ once CRLF occurs). As in
 * markdown-it, a final line break does not start a further (empty) line, and
 * the empty text has no lines.
 */
const lineTable = (text: string): LineTable => {
  const starts: Array<number> = []
  const ends: Array<number> = []
  let start = 0
  for (const lineBreak of text.matchAll(LINE_BREAK)) {
    starts.push(start)
    ends.push(lineBreak.index)
    start = lineBreak.index + lineBreak[0].length
  }
  if (start < text.length) {
    starts.push(start)
    ends.push(text.length)
  }
  return { starts, ends }
}

/** First word of the info string, lowercased; null when there is none. */
const languageOf = (info: string): string | null => {
  const word = parser().utils.unescapeAll(info).trim().split(/\s+/)[0] ?? ""
  return word === "" ? null : word.toLowerCase()
}

/** Number of "\n" in markdown-it's (normalized) token content. */
const countNewlines = (content: string): number => {
  let count = 0
  for (let i = content.indexOf("\n"); i !== -1; i = content.indexOf("\n", i + 1)) count++
  return count
}

/**
 * Whether the fence's last mapped line is its closing fence.
 *
 * markdown-it maps a closed fence to [open, close + 1] and an unclosed one to
 * [open, lastBodyLine + 1], and its content holds each body line followed by
 * "\n" — except the text's very last line when the text lacks a final line
 * break. So a closed fence has exactly (span - 2) newlines in its content and
 * an unclosed one (span - 1), or (span - 2) only in that exception, where the
 * fence ends at the text's end either way and the answer does not matter.
 */
const hasClosingFence = (token: Token, map: readonly [number, number]): boolean =>
  countNewlines(token.content) === map[1] - map[0] - 2

/** Converts one fence token to a located CodeBlock; null if it carries no line map. */
const toCodeBlock = (token: Token, text: string, lines: LineTable): CodeBlock | null => {
  if (token.map === null) return null
  const [openLine, endLineExclusive] = token.map
  const lastLine = endLineExclusive - 1
  const startIndex = lines.starts[openLine]
  const lastLineEnd = lines.ends[lastLine]
  // Indices out of range would mean our line split disagrees with markdown-it's;
  // dropping the block is safer than reporting wrong offsets.
  if (startIndex === undefined || lastLineEnd === undefined) return null
  // An unclosed fence at the end of the document also owns the text's final
  // line break(s), as documented on CodeBlock.endIndex — and any blank lines
  // after its body, which markdown-it leaves out of its line map.
  const runsToEndOfText =
    !hasClosingFence(token, [openLine, endLineExclusive]) &&
    (endLineExclusive === lines.starts.length || text.slice(lastLineEnd).trim() === "")
  return new CodeBlock({
    language: languageOf(token.info),
    code: token.content,
    startIndex,
    endIndex: runsToEndOfText ? text.length : lastLineEnd,
    startLine: openLine + 1,
    endLine: runsToEndOfText ? Math.max(endLineExclusive, lines.starts.length) : endLineExclusive
  })
}

/**
 * The fenced code blocks of a markdown text, in document order, located by
 * UTF-16 offsets (JS string indices) and 1-based lines of the original text.
 *
 * Total: never throws. Should the parser fail on some input, the text is
 * treated as plain text without code blocks.
 */
export const extractCodeBlocks = (markdown: string): ReadonlyArray<CodeBlock> => {
  try {
    const lines = lineTable(markdown)
    const blocks: Array<CodeBlock> = []
    for (const token of parser().parse(markdown, {})) {
      if (token.type !== "fence") continue
      const block = toCodeBlock(token, markdown, lines)
      if (block !== null) blocks.push(block)
    }
    return blocks
  } catch {
    return []
  }
}
