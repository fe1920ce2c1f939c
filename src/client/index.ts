/**
 * The typed client of Go Chat backend (`go-chat-backend/client`): REST from the service's
 * `HttpApi` definition and a self-healing chat connection, for browsers and Node.
 */
export { type Answer, AnswerAssembler, type AnswerStatus, type AnswerUpdate, canContinue } from "./Answers.js"
export { backoffDelay, type BackoffOptions } from "./Backoff.js"
export { type ChatConnectionOptions, ChatConnection, type ChatEvent, type ConnectionState, type SendOptions } from "./ChatConnection.js"
export { chatConnection, chatEvents } from "./ChatStream.js"
export { fetchRestClient, type RestClient, restClient, type RestClientOptions } from "./RestClient.js"
export { chatSocketUrl, type WebSocketConstructor, type WebSocketLike } from "./Socket.js"
export { ClientFrame, ServerEvent, ServerErrorCode } from "../domain/ChatProtocol.js"
export { MessageId, ProjectId } from "../domain/Ids.js"
export { GoChatApi } from "../http/Api.js"
