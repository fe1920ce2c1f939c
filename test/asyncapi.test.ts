/**
 * `/asyncapi.json`: an AsyncAPI 3.0 document of the chat WebSocket, generated from the
 * protocol's Schemas, valid for the AsyncAPI parser, and describing what the server really sends.
 */
import { Parser } from "@asyncapi/parser"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Schema, SchemaAST } from "effect"
import { ClientFrame, ServerEvent } from "../src/domain/ChatProtocol.js"
import { newProject, startDemoApp } from "./support/ChatApp.js"
import { connect } from "./support/ChatClient.js"
import { get } from "./support/Http.js"

const typesOf = (union: { readonly members: ReadonlyArray<Schema.Schema.Any> }) =>
  union.members.map((member) => {
    const field = SchemaAST.getPropertySignatures(member.ast).find((signature) => signature.name === "type")
    return field !== undefined && SchemaAST.isLiteral(field.type) ? String(field.type.literal) : "?"
  })

/** Spectral severities: 0 error, 1 warning. */
const problems = (diagnostics: ReadonlyArray<{ readonly severity: number; readonly message: string }>) =>
  diagnostics.filter((diagnostic) => diagnostic.severity <= 1).map((diagnostic) => diagnostic.message)

describe("/asyncapi.json", () => {
  it.scopedLive("is a valid AsyncAPI 3.0 document with every client frame and server event of the protocol", () =>
    Effect.gen(function* () {
      const app = yield* startDemoApp()
      const answer = yield* get(`${app.url}/asyncapi.json`)
      expect(answer.status).toBe(200)
      expect(answer.headers.get("content-type")).toContain("application/json")
      const { document, diagnostics } = yield* Effect.promise(() => new Parser().parse(answer.text))
      expect(problems(diagnostics)).toEqual([])
      if (document === undefined) return expect.fail("the parser returned no document")
      expect(document.version()).toBe("3.0.0")
      const channel = document.channels().get("chat")
      expect(channel?.address()).toBe("/ws/chat")
      const operationMessages = (id: string) => document.operations().get(id)?.messages().all().map((message) => message.name()) ?? []
      expect(operationMessages("sendClientFrame").sort()).toEqual(typesOf(ClientFrame).sort())
      expect(operationMessages("sendServerEvent").sort()).toEqual(typesOf(ServerEvent).sort())
      expect(document.operations().get("sendClientFrame")?.action()).toBe("receive")
      expect(document.operations().get("sendServerEvent")?.action()).toBe("send")
      // The payload says what the Schema says: the chunk's numbering fields are required integers.
      const chunk = channel?.messages().get("message_chunk")?.payload()
      expect(chunk?.required()).toEqual(expect.arrayContaining(["messageId", "content", "seq", "offset", "timestamp"]))
      expect(chunk?.properties()?.["offset"]?.type()).toBe("integer")
      const status = channel?.messages().get("message_complete")?.payload()?.properties()?.["status"]?.enum()
      expect(status).toEqual(["complete", "cancelled", "error", "interrupted"])
      // Issue 14: message_complete carries the answer's usage (required, null when there is none).
      const complete = channel?.messages().get("message_complete")?.payload()
      expect(complete?.required()).toEqual(expect.arrayContaining(["continuations", "usage"]))
      expect(JSON.stringify(complete?.properties()?.["usage"]?.json())).toMatch(/cacheReadInputTokens/)
    }))

  it.scopedLive("the events the server sends match the document's payload schemas (checked by the parser's own model)", () =>
    Effect.gen(function* () {
      const app = yield* startDemoApp()
      const answer = yield* get(`${app.url}/asyncapi.json`)
      const { document } = yield* Effect.promise(() => new Parser().parse(answer.text))
      const messages = document?.channels().get("chat")?.messages()
      const project = yield* newProject(app)
      const client = yield* connect(app.wsUrl, project.id)
      const whole = yield* client.ask("Build a todo app in Go")
      expect(whole.frames.length).toBeGreaterThan(2)
      // Every field the server sent is declared for its message, and every required one was sent.
      for (const raw of whole.frames) {
        const event = JSON.parse(raw) as Record<string, unknown>
        const payload = messages?.get(String(event["type"]))?.payload()
        expect(payload, `no message for ${String(event["type"])}`).toBeDefined()
        const declared = Object.keys(payload?.properties() ?? {})
        expect(Object.keys(event).filter((key) => !declared.includes(key))).toEqual([])
        expect((payload?.required() ?? []).filter((key) => !(key in event))).toEqual([])
      }
    }))

  it.scopedLive("/docs and the OpenAPI document link to it", () =>
    Effect.gen(function* () {
      const app = yield* startDemoApp()
      const openApi = yield* get(`${app.url}/openapi.json`)
      expect(JSON.stringify(openApi.json)).toContain("(/asyncapi.json)")
      const docs = yield* get(`${app.url}/docs`)
      expect(docs.text).toContain("/asyncapi.json")
    }))
})
