/**
 * The bracket scan that refuses deep JSON before it is parsed (issue 10), and the reading
 * of a refused frame's `type` that keeps the protocol's order of error codes.
 */
import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import { parseFrame } from "../src/http/FrameParser.js"
import { MAX_JSON_DEPTH, nestsDeeperThan, topLevelType } from "../src/http/JsonNesting.js"

const nested = (depth: number) => `${"[".repeat(depth)}${"]".repeat(depth)}`

describe("nestsDeeperThan", () => {
  it("counts arrays and objects, not brackets inside strings (escaped quotes included)", () => {
    expect(nestsDeeperThan(nested(MAX_JSON_DEPTH))).toBe(false)
    expect(nestsDeeperThan(nested(MAX_JSON_DEPTH + 1))).toBe(true)
    expect(nestsDeeperThan(JSON.stringify({ a: "[{".repeat(10_000) }))).toBe(false)
    expect(nestsDeeperThan(JSON.stringify({ a: `\\"${"[".repeat(100)}` }))).toBe(false)
    expect(nestsDeeperThan(`{"a":${"{\"b\":".repeat(70)}1${"}".repeat(70)}}`)).toBe(true)
    // Siblings do not add up: depth, not count.
    expect(nestsDeeperThan(JSON.stringify(Array.from({ length: 1000 }, () => [[[1]]])))).toBe(false)
  })
})

describe("topLevelType", () => {
  it("reads the top-level object's type without parsing, and nothing else", () => {
    expect(topLevelType(`{"type":"ping","pad":${nested(10)}}`)).toBe("ping")
    expect(topLevelType(`{ "a": {"type":"x"}, "type" : "chat_message"}`)).toBe("chat_message")
    expect(topLevelType(`{"content":"type","type":"cancel"}`)).toBe("cancel")
    expect(topLevelType(`[{"type":"ping"}]`)).toBeUndefined()
    expect(topLevelType(`{"type":5}`)).toBeUndefined()
    expect(topLevelType(`"type"`)).toBeUndefined()
    expect(topLevelType(`{"x":"type"}`)).toBeUndefined()
  })
})

describe("parseFrame", () => {
  const codeOf = (frame: string) => Either.match(parseFrame(frame, 1_000_000), { onLeft: (error) => error.code, onRight: () => "OK" })

  it("refuses a deep frame of a known type as VALIDATION_ERROR and any other deep frame as INVALID_MESSAGE, without throwing", () => {
    expect(codeOf(`{"type":"chat_message","content":${nested(100_000)}}`)).toBe("VALIDATION_ERROR")
    expect(codeOf(`{"type":"subscribe","content":${nested(100_000)}}`)).toBe("INVALID_MESSAGE")
    expect(codeOf(nested(100_000))).toBe("INVALID_MESSAGE")
    expect(codeOf(`{"type":"ping"}`)).toBe("OK")
  })

  it("never echoes a large frame in its error message", () => {
    const refused = parseFrame(JSON.stringify({ type: "chat_message", content: { text: "x".repeat(100_000) } }), 1_000_000)
    expect(Either.isLeft(refused)).toBe(true)
    if (Either.isLeft(refused)) expect(refused.left.message.length).toBeLessThanOrEqual(300)
  })
})
