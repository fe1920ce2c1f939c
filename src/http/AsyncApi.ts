import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import * as JSONSchema from "effect/JSONSchema"
import * as Schema from "effect/Schema"
import * as SchemaAST from "effect/SchemaAST"
import { ClientFrame, ServerEvent } from "../domain/ChatProtocol.js"

/** The `type` literal that names a protocol message (every member of the unions has one). */
const typeOf = (member: Schema.Schema.Any): string => {
  const field = SchemaAST.getPropertySignatures(member.ast).find((signature) => signature.name === "type")
  if (field === undefined || !SchemaAST.isLiteral(field.type) || typeof field.type.literal !== "string") {
    throw new Error("every protocol message needs a string literal `type`")
  }
  return field.type.literal
}

const SUMMARIES: Record<string, string> = {
  chat_message: "Ask Claude; a retry with the same clientMessageId is acknowledged, never answered twice.",
  ping: "Application-level keep-alive; answered with pong.",
  cancel: "Stop the project's streaming answer (only if it is messageId, when given).",
  continue: "Continue the project's latest answer when it stopped early, under the same messageId.",
  message_start: "An answer starts; resumed: true when joining one already streaming (then one catch-up chunk at offset 0).",
  message_chunk: "A piece of the answer: seq is its 1-based position, offset the characters before it.",
  message_complete: "The answer ended (complete, cancelled, error or interrupted) with its full text and code blocks.",
  error: "A stable code and a message; messageId when it ended an answer.",
  pong: "Answer to ping.",
  project_updated: "The project's generated title."
}

/**
 * The AsyncAPI 3.0 document of `/ws/chat`, generated from the protocol's Schemas
 * (domain/ChatProtocol.ts): a new client frame or server event appears here by itself.
 * Shared definitions (ids, code blocks) go to `components.schemas`.
 */
export const asyncApiDocument = (host: string) => {
  const schemas: Record<string, JSONSchema.JsonSchema7> = {}
  const payloadOf = (member: Schema.Schema.Any) =>
    // Fields are added over time (additive protocol): documents must not forbid unknown ones.
    JSONSchema.fromAST(member.ast, { definitions: schemas, definitionPath: "#/components/schemas/", additionalPropertiesStrategy: "allow" })
  const messagesOf = (union: { readonly members: ReadonlyArray<Schema.Schema.Any> }) =>
    Object.fromEntries(union.members.map((member) => {
      const type = typeOf(member)
      return [type, { name: type, title: type, summary: SUMMARIES[type] ?? type, contentType: "application/json", payload: payloadOf(member) }]
    }))
  const clientMessages = messagesOf(ClientFrame)
  const serverMessages = messagesOf(ServerEvent)
  const refs = (messages: Record<string, unknown>) => Object.keys(messages).map((name) => ({ $ref: `#/channels/chat/messages/${name}` }))
  return {
    asyncapi: "3.0.0",
    info: {
      title: "Go Chat backend: chat WebSocket",
      version: "1.0.0",
      description: "One WebSocket per open project: JSON text frames both ways. The REST API is described at /openapi.json (page: /docs)."
    },
    defaultContentType: "application/json",
    servers: { service: { host, protocol: "ws", description: "This service" } },
    channels: {
      chat: {
        address: "/ws/chat",
        title: "A project's chat",
        description: "Open with ?projectId=<uuid> (and ?token=<AUTH_TOKEN> when the service requires one).",
        messages: { ...clientMessages, ...serverMessages },
        bindings: {
          ws: {
            method: "GET",
            query: {
              type: "object",
              properties: {
                projectId: { type: "string", format: "uuid", description: "The project to chat in" },
                token: { type: "string", description: "AUTH_TOKEN, when the service is started with one" }
              },
              required: ["projectId"]
            },
            bindingVersion: "0.1.0"
          }
        }
      }
    },
    operations: {
      sendClientFrame: {
        action: "receive",
        title: "Client → server frames",
        channel: { $ref: "#/channels/chat" },
        messages: refs(clientMessages)
      },
      sendServerEvent: {
        action: "send",
        title: "Server → client events",
        channel: { $ref: "#/channels/chat" },
        messages: refs(serverMessages)
      }
    },
    components: { schemas }
  }
}

/** `GET /asyncapi.json`: the document, with this request's host as the server. */
export const AsyncApiRoute = HttpApiBuilder.Router.use((router) =>
  router.get(
    "/asyncapi.json",
    Effect.map(HttpServerRequest.HttpServerRequest, (request) =>
      HttpServerResponse.unsafeJson(asyncApiDocument(request.headers["host"] ?? "localhost:3000")))
  )
)
