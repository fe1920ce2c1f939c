import * as Schema from "effect/Schema"

/** A fenced code block inside a message, located in the message text. */
export class CodeBlock extends Schema.Class<CodeBlock>("CodeBlock")({
  /** First word of the info string, lowercased; null when the fence has none. */
  language: Schema.NullOr(Schema.String),
  code: Schema.String,
  /** UTF-16 offset of the opening fence's first character (the fence line's start, including its indentation). */
  startIndex: Schema.Int,
  /** UTF-16 offset just past the closing fence line (exclusive; excludes the trailing newline), or the text length for an unclosed fence. */
  endIndex: Schema.Int,
  /** 1-based line of the opening fence. */
  startLine: Schema.Int,
  /** 1-based line of the closing fence (the last line of the text for an unclosed fence). */
  endLine: Schema.Int
}) {}
