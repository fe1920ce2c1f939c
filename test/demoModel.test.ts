/**
 * The offline demo model (no CLAUDE_API_KEY outside production): the whole chat path works
 * on a fresh machine, answers stream in several chunks with a fenced code block, later
 * answers show the earlier turns were seen. (/health naming the demo model: health.test.ts.)
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { connect } from "./support/ChatClient.js"
import { getProject, newProject, startDemoApp } from "./support/ChatApp.js"

const TEST_TIMEOUT = 60_000

describe("chat: the offline demo model", () => {
  it.scopedLive("streams an inventory tracker in several chunks with a python block, then builds on it", () =>
    Effect.gen(function* () {
      const app = yield* startDemoApp()
      const project = yield* newProject(app)
      const client = yield* connect(app.wsUrl, project.id)

      const first = yield* client.ask("Build me an inventory tracker")
      expect(first.chunks.length).toBeGreaterThanOrEqual(5)
      const text = first.chunks.map((c) => c.content).join("")
      first.chunks.forEach((chunk, i) => {
        expect(chunk.seq).toBe(i + 1)
        expect(chunk.offset).toBe(first.chunks.slice(0, i).map((c) => c.content).join("").length)
      })
      expect(first.end).toMatchObject({ type: "message_complete", status: "complete", fullContent: text, stopReason: "end_turn" })
      const blocks = first.end.type === "message_complete" ? first.end.codeBlocks : []
      expect(blocks).toHaveLength(1)
      const [block] = blocks
      expect(block?.language).toBe("python")
      expect(block?.code).toMatch(/class \w+/)
      expect(text.slice(block?.startIndex, block?.endIndex)).toBe("```python\n" + block?.code + "```")
      expect(text.split("\n")[(block?.startLine ?? 0) - 1]).toBe("```python")
      expect(text.split("\n")[(block?.endLine ?? 0) - 1]).toBe("```")

      // The project got a title from the demo model too.
      const updated = yield* client.seen("project_updated")
      expect(updated.title).toMatch(/inventory/i)

      // A follow-up shows the earlier turn was seen.
      const second = yield* client.ask("Add a search feature")
      const followUp = second.end.type === "message_complete" ? second.end : undefined
      expect(followUp?.status).toBe("complete")
      expect(followUp?.fullContent).toMatch(/inventory tracker/i)
      expect(followUp?.fullContent).toContain("Build me an inventory tracker")
      expect(followUp?.codeBlocks.map((b) => b.language)).toEqual(["python"])
      expect(followUp?.codeBlocks[0]?.code).toMatch(/search/)

      const stored = yield* getProject(app, project.id)
      expect(stored.messages.map((m) => [m.role, m.status])).toEqual([
        ["user", "complete"],
        ["assistant", "complete"],
        ["user", "complete"],
        ["assistant", "complete"]
      ])
      expect(stored.messages[3]?.content).toBe(followUp?.fullContent)
      expect(client.violations).toEqual([])
    }), TEST_TIMEOUT)
})
