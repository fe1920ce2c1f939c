/**
 * Deep JSON is refused before it is parsed or decoded: schema decoding recurses once per
 * level, so a small body nested thousands deep would overflow the stack (a 500, or a
 * socket reader that dies). A cheap scan of the brackets outside strings finds it first.
 */

/** Nesting deeper than this is refused; the protocol and the REST bodies need three levels. */
export const MAX_JSON_DEPTH = 64

const QUOTE = 34
const BACKSLASH = 92
const OPEN_BRACKET = 91
const CLOSE_BRACKET = 93
const OPEN_BRACE = 123
const CLOSE_BRACE = 125
const COLON = 58

const isSpace = (char: number) => char === 32 || char === 9 || char === 10 || char === 13

/** Whether `text`, read as JSON, nests arrays and objects deeper than `limit`. */
export const nestsDeeperThan = (text: string, limit: number = MAX_JSON_DEPTH): boolean => {
  let depth = 0
  let inString = false
  for (let index = 0; index < text.length; index++) {
    const char = text.charCodeAt(index)
    if (inString) {
      if (char === BACKSLASH) index++
      else if (char === QUOTE) inString = false
    } else if (char === QUOTE) {
      inString = true
    } else if (char === OPEN_BRACKET || char === OPEN_BRACE) {
      if (++depth > limit) return true
    } else if (char === CLOSE_BRACKET || char === CLOSE_BRACE) {
      depth--
    }
  }
  return false
}

/**
 * The `type` of a top-level JSON object, read without parsing (a frame refused for its
 * depth is never parsed): the string value of its first depth-1 `"type"` key, escapes left
 * as they are. Undefined when the text is not an object or has no such string.
 */
export const topLevelType = (text: string): string | undefined => {
  let depth = 0
  let valueIsType = false
  for (let index = 0; index < text.length; index++) {
    const char = text.charCodeAt(index)
    if (isSpace(char)) continue
    if (char === QUOTE) {
      let end = index + 1
      while (end < text.length && text.charCodeAt(end) !== QUOTE) end += text.charCodeAt(end) === BACKSLASH ? 2 : 1
      if (depth === 1) {
        const token = text.slice(index + 1, end)
        if (valueIsType) return token
        let next = end + 1
        while (next < text.length && isSpace(text.charCodeAt(next))) next++
        if (token === "type" && text.charCodeAt(next) === COLON) {
          valueIsType = true
          end = next
        }
      }
      index = end
      continue
    }
    if (valueIsType && depth === 1) return undefined
    if (char === OPEN_BRACKET || char === OPEN_BRACE) {
      if (depth === 0 && char !== OPEN_BRACE) return undefined
      depth++
    } else if (char === CLOSE_BRACKET || char === CLOSE_BRACE) {
      depth--
    } else if (depth === 0) {
      return undefined
    }
  }
  return undefined
}

/** Error messages quote what they refuse; past this many characters the quote is cut. */
const MAX_ERROR_MESSAGE_CHARS = 300

/** An error message that never echoes a large part of the input back. */
export const boundedMessage = (message: string): string =>
  message.length <= MAX_ERROR_MESSAGE_CHARS ? message : `${message.slice(0, MAX_ERROR_MESSAGE_CHARS - 1)}…`
