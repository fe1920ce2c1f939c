import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { Claude } from "../claude/Claude.js"
import type { ProjectId } from "../domain/Ids.js"
import { Projects } from "../projects/Projects.js"

const TITLE_PROMPT =
  "You name projects. Reply with a short title (at most six words) for the project the user describes. " +
  "Reply with the title only: no quotes, no punctuation at the end."

/** The title call must never hold anything up; past this, the fallback title is used. */
const TITLE_TIMEOUT = Duration.seconds(15)
const FALLBACK_WORDS = 6
const FIRST_EXCHANGE_ROWS = 2
/** A title needs the gist, not a 100,000-character message: the title model gets this much of it. */
export const TITLE_INPUT_CHARS = 1000

/** The first words of the message, when Claude cannot name the project. */
export const fallbackTitle = (message: string): string => {
  const words = message.trim().split(/\s+/).slice(0, FALLBACK_WORDS).join(" ")
  return words.length > 60 ? `${words.slice(0, 59)}…` : words
}

/** One line, no wrapping quotes or trailing period, at most 255 characters. */
export const cleanTitle = (raw: string): string =>
  (raw.trim().split(/\r?\n/)[0] ?? "")
    .replace(/^["'“”‘’#*\s]+|["'“”‘’.*\s]+$/g, "")
    .slice(0, 255)

/** Project titles from the first message (FR-015), generated beside the answer, never before it. */
export class Titles extends Effect.Service<Titles>()("Titles", {
  effect: Effect.gen(function* () {
    const claude = yield* Claude
    const projects = yield* Projects

    const generate = (message: string) =>
      claude.title({ system: TITLE_PROMPT, messages: [{ role: "user", content: message.slice(0, TITLE_INPUT_CHARS) }] }).pipe(
        Effect.timeout(TITLE_TIMEOUT),
        Effect.map(cleanTitle),
        Effect.filterOrFail((title) => title.length > 0),
        Effect.tapError((error) => Effect.logWarning("title generation failed; using the message's first words").pipe(
          Effect.annotateLogs("reason", error._tag)
        )),
        Effect.orElseSucceed(() => fallbackTitle(message))
      )

    /**
     * Names a project whose title is still the default; a title the user set is never
     * replaced. Returns the new title when one was set. Never fails.
     */
    const forFirstMessage = (projectId: ProjectId, message: string) =>
      Effect.gen(function* () {
        const project = yield* projects.find(projectId)
        // Only the first exchange names a project (its user message and the answer row):
        // a later message sent before the first title arrived must not win the race.
        if (!project.hasDefaultTitle || project.messageCount > FIRST_EXCHANGE_ROWS) return Option.none<string>()
        const title = yield* generate(message)
        const updated = yield* projects.setGeneratedTitle(projectId, title)
        return Option.map(updated, (p) => p.title)
      }).pipe(
        Effect.catchAll(() => Effect.succeed(Option.none<string>())),
        Effect.withSpan("Titles.forFirstMessage")
      )

    return { forFirstMessage } as const
  })
}) {}
