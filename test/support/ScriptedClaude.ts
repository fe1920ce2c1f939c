/**
 * A `Claude` test layer driven step by step from the test: each answer the chat service
 * asks for waits in `nextAnswer`, and the test releases its deltas, its end, a failure, or
 * nothing at all (a stall), exactly when it wants. Swapping this layer for the live one is
 * the seam the design gives for testing the chat service without sockets or the SDK.
 */
import { Deferred, Effect, Layer, Queue, Stream } from "effect"
import { Claude, type CompletionEvent, type CompletionRequest, estimateTokens, type Usage } from "../../src/claude/Claude.js"
import { claudeError, type ClaudeErrorCode, type ClaudeError } from "../../src/domain/ClaudeError.js"

export interface ScriptedAnswer {
  readonly request: CompletionRequest
  /** Sends one text delta. */
  readonly delta: (text: string) => void
  /** Ends the answer with its summary (usage: 10 input tokens and one output token a delta unless given). */
  readonly finish: (stopReason?: string, usage?: Usage) => void
  /** Fails the answer mid-stream with a Claude error. */
  readonly fail: (code: ClaudeErrorCode) => void
  /** Completes when the chat service closed the stream: `true` when it was before the end (an abort). */
  readonly closed: Effect.Effect<boolean>
}

export interface ScriptedClaude {
  readonly layer: Layer.Layer<Claude>
  /** The next answer the service requested (waits for it). */
  readonly nextAnswer: Effect.Effect<ScriptedAnswer>
  /** Every request, in order. */
  readonly requests: ReadonlyArray<CompletionRequest>
  /** Every `countTokens` request, in order. */
  readonly countRequests: ReadonlyArray<CompletionRequest>
}

/** The chars/4 estimate of a whole request: what `countTokens` answers unless a test says otherwise. */
export const estimatedRequestTokens = (request: CompletionRequest) =>
  estimateTokens(request.system) + request.messages.reduce((n, m) => n + estimateTokens(m.content), 0)

export const makeScriptedClaude = (
  title = "Scripted Title",
  countTokens: (request: CompletionRequest) => Effect.Effect<number, ClaudeError> = (request) =>
    Effect.succeed(estimatedRequestTokens(request))
) =>
  Effect.gen(function* () {
    const answers = yield* Queue.unbounded<ScriptedAnswer>()
    const requests: Array<CompletionRequest> = []
    const countRequests: Array<CompletionRequest> = []

    const stream = (request: CompletionRequest) =>
      Stream.asyncPush<CompletionEvent, ClaudeError>((emit) =>
        Effect.acquireRelease(
          Effect.gen(function* () {
            requests.push(request)
            const closed = yield* Deferred.make<boolean>()
            let ended = false
            let deltas = 0
            const answer: ScriptedAnswer = {
              request,
              delta: (text) => {
                deltas++
                emit.single({ _tag: "TextDelta", text })
              },
              finish: (stopReason = "end_turn", usage) => {
                ended = true
                const summary = {
                  stopReason,
                  usage: usage ?? { inputTokens: 10, outputTokens: deltas, cacheReadInputTokens: 0, cacheCreationInputTokens: 0 }
                }
                emit.single({ _tag: "Finished", summary })
                emit.end()
              },
              fail: (code) => {
                ended = true
                emit.fail(claudeError(code, "scripted failure"))
              },
              closed: Deferred.await(closed)
            }
            yield* Queue.offer(answers, answer)
            return { closed, wasEnded: () => ended }
          }),
          ({ closed, wasEnded }) => Deferred.succeed(closed, !wasEnded())
        ))

    const layer = Layer.succeed(Claude, {
      kind: "claude",
      stream,
      countTokens: (request) => Effect.suspend(() => {
        countRequests.push(request)
        return countTokens(request)
      }),
      title: () => Effect.succeed(title)
    })
    return { layer, nextAnswer: Queue.take(answers), requests, countRequests } satisfies ScriptedClaude
  })
