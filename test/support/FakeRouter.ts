/**
 * Routes the fake Anthropic server's replies by kind of request: the service makes streamed
 * chat requests and, beside the first answer, a non-streamed title request, in an order
 * nobody controls. One shared queue would hand a chat reply to the title call; this keeps a
 * queue for chat requests and a separate reply for title requests.
 */
import { Effect } from "effect"
import {
  DEFAULT_REPLY,
  type FakeAnthropic,
  type FakeReply,
  type MessagesRequestBody,
  expectNoRejections,
  type RecordedRequest,
  startFakeAnthropic
} from "./FakeAnthropic.js"

/** A valid request body as the fake recorded it. */
export interface RecordedBody {
  readonly model: string
  readonly max_tokens: number
  readonly stream?: boolean
  readonly system?: unknown
  readonly messages: ReadonlyArray<{ readonly role: string; readonly content: unknown }>
}

export interface FakeRouter {
  readonly fake: FakeAnthropic
  readonly url: string
  /** The next streamed (chat) requests get these replies in order; then `chatDefault`. */
  enqueueChat(...replies: ReadonlyArray<FakeReply>): void
  setChatDefault(reply: FakeReply): void
  /** Reply to every non-streamed (title) request. */
  setTitle(reply: FakeReply): void
  /** Bodies of the streamed (chat) requests, in arrival order. */
  chatRequests(): ReadonlyArray<RecordedBody>
  /** Bodies of the non-streamed (title) requests, in arrival order (not `count_tokens`). */
  titleRequests(): ReadonlyArray<RecordedBody>
  /** Every request as recorded (headers included). */
  readonly requests: ReadonlyArray<RecordedRequest>
}

const isStreamed = (request: RecordedRequest) =>
  typeof request.body === "object" && request.body !== null && (request.body as { stream?: unknown }).stream === true

export const routeFake = (fake: FakeAnthropic, title: FakeReply = { kind: "text", chunks: ["Inventory Tracker"] }): FakeRouter => {
  const chatQueue: Array<FakeReply> = []
  let chatDefault: FakeReply = DEFAULT_REPLY
  let titleReply: FakeReply = title
  fake.setDefault({
    kind: "function",
    reply: (body: MessagesRequestBody) => (body.stream ? (chatQueue.shift() ?? chatDefault) : titleReply)
  })
  return {
    fake,
    url: fake.url,
    enqueueChat: (...replies) => void chatQueue.push(...replies),
    setChatDefault: (reply) => {
      chatDefault = reply
    },
    setTitle: (reply) => {
      titleReply = reply
    },
    chatRequests: () => fake.requests.filter(isStreamed).map((r) => r.body as RecordedBody),
    titleRequests: () => fake.requests.filter((r) => !isStreamed(r) && r.path.split("?")[0] === "/v1/messages").map((r) => r.body as RecordedBody),
    get requests() {
      return fake.requests
    }
  }
}

/**
 * A fake with a router, closed when the scope closes. The test fails if the fake refused a
 * request the service made (a context the real API would refuse too).
 */
export const FakeRouterScoped = (title?: FakeReply) =>
  Effect.acquireRelease(
    Effect.promise(() => startFakeAnthropic()),
    (fake) => Effect.zipRight(Effect.promise(() => fake.close()), expectNoRejections(fake.rejections))
  ).pipe(Effect.map((fake) => routeFake(fake, title)))
