import { describe, expect, it } from "@effect/vitest"
import { Schema } from "effect"
import fc from "fast-check"
import * as Events from "../src/chat/Events.js"
import { ServerEvent } from "../src/domain/ChatProtocol.js"
import type { MessageId } from "../src/domain/Ids.js"

const messageId = "0b6f6a0e-3c1f-4a53-9a43-6f0c2f1d9b11" as MessageId
const decode = Schema.decodeUnknownSync(Schema.parseJson(ServerEvent))

describe("server events", () => {
  it("a chunk, written out by hand, is the JSON the protocol schema describes, for any text", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary" }), fc.nat(), fc.nat(), (content, seq, offset) => {
        const json = Events.messageChunk(messageId, content, seq, offset)
        const parsed: unknown = JSON.parse(json)
        expect(parsed).toEqual({ type: "message_chunk", messageId, content, seq, offset, timestamp: expect.any(String) })
        expect(decode(json)).toMatchObject({ type: "message_chunk", content, seq, offset })
        expect(Object.keys(parsed as object)).toEqual(["type", "messageId", "content", "seq", "offset", "timestamp"])
      })
    )
  })

  it("timestamps are ISO 8601 of the current time, formatted again when the time moves on", async () => {
    const before = Date.now()
    const first = JSON.parse(Events.messageChunk(messageId, "a", 1, 0)) as { timestamp: string }
    expect(new Date(first.timestamp).toISOString()).toBe(first.timestamp)
    expect(Date.parse(first.timestamp)).toBeGreaterThanOrEqual(before)
    await new Promise((resolve) => setTimeout(resolve, 5))
    const later = JSON.parse(Events.pong()) as { timestamp: string }
    expect(Date.parse(later.timestamp)).toBeGreaterThan(Date.parse(first.timestamp))
  })
})
