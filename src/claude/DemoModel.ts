import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import { continuedFrom } from "./Continuation.js"
import { Claude, type CompletionEvent, type CompletionRequest, type ContextMessage, estimateTokens } from "./Claude.js"

/** Pause between chunks: slow enough to see the answer stream in, fast enough for tests. */
const CHUNK_DELAY = "30 millis"
const WORDS_PER_CHUNK = 3

type Language = "python" | "javascript" | "typescript" | "html" | "sql" | "go"

const LANGUAGE_HINTS: ReadonlyArray<readonly [Language, RegExp]> = [
  ["typescript", /\btypescript\b|\bts\b/i],
  ["javascript", /\bjavascript\b|\bjs\b|\bnode\b|\breact\b/i],
  ["html", /\bhtml\b|\bweb ?page\b|\bwebsite\b|\blanding page\b/i],
  ["sql", /\bsql\b|\bdatabase schema\b/i],
  ["go", /\bgolang\b|\bin go\b/i]
]

const languageOf = (text: string): Language =>
  LANGUAGE_HINTS.find(([, hint]) => hint.test(text))?.[0] ?? "python"

const STOP_WORDS = new Set(["a", "an", "the", "me", "my", "for", "to", "build", "make", "create", "write", "please", "i", "want", "need", "can", "you", "app", "in", "with"])

/** "Build me an inventory tracker" → "inventory tracker". */
const subjectOf = (text: string): string => {
  const words = text.toLowerCase().match(/[a-z]+/g) ?? []
  const kept = words.filter((word) => !STOP_WORDS.has(word)).slice(0, 3)
  return kept.length > 0 ? kept.join(" ") : "app"
}

/** "inventory tracker" → "Inventory Tracker" */
const titleCase = (subject: string) => subject.replace(/\b[a-z]/g, (letter) => letter.toUpperCase())
const snake = (subject: string) => subject.replace(/\s+/g, "_")

const codeFor = (language: Language, subject: string, withSearch: boolean): string => {
  const name = titleCase(subject).replace(/\s+/g, "")
  switch (language) {
    case "python":
      return [
        `class ${name}:`,
        `    """Keeps a list of ${subject} entries."""`,
        "",
        "    def __init__(self):",
        "        self.items = []",
        "",
        "    def add(self, name, quantity=1):",
        '        self.items.append({"name": name, "quantity": quantity})',
        ...(withSearch
          ? ["", "    def search(self, text):", '        return [i for i in self.items if text.lower() in i["name"].lower()]']
          : []),
        "",
        "",
        'if __name__ == "__main__":',
        `    ${snake(subject)} = ${name}()`,
        `    ${snake(subject)}.add("example")`,
        `    print(${snake(subject)}.items)`
      ].join("\n")
    case "javascript":
    case "typescript":
      return [
        `class ${name} {`,
        "  constructor() {",
        "    this.items = []",
        "  }",
        "  add(name, quantity = 1) {",
        "    this.items.push({ name, quantity })",
        "  }",
        ...(withSearch ? ["  search(text) {", "    return this.items.filter((i) => i.name.includes(text))", "  }"] : []),
        "}",
        "",
        `const app = new ${name}()`,
        'app.add("example")',
        "console.log(app.items)"
      ].join("\n")
    case "html":
      return [`<!doctype html>`, `<html>`, `  <body>`, `    <h1>${titleCase(subject)}</h1>`, `    <ul id="items"></ul>`, `  </body>`, `</html>`].join("\n")
    case "sql":
      return [`CREATE TABLE ${snake(subject)} (`, "    id SERIAL PRIMARY KEY,", "    name TEXT NOT NULL,", "    quantity INTEGER NOT NULL DEFAULT 1", ");"].join("\n")
    case "go":
      return ["package main", "", 'import "fmt"', "", "func main() {", `\tfmt.Println("${subject}")`, "}"].join("\n")
  }
}

/** A deterministic answer that reads like Claude's: what it saw, one code block, how to use it. */
export const demoAnswer = (messages: ReadonlyArray<ContextMessage>): string => {
  const userTurns = messages.filter((m) => m.role === "user")
  const latest = userTurns.at(-1)?.content ?? ""
  const first = userTurns[0]?.content ?? latest
  const isFollowUp = userTurns.length > 1
  const subject = subjectOf(first)
  const language = languageOf(messages.map((m) => m.content).join("\n"))
  const withSearch = /\bsearch|find|filter\b/i.test(latest)
  const intro = isFollowUp
    ? `(Demo model, offline.) Building on your earlier request ("${first.slice(0, 80)}"), here is the updated ${subject}${withSearch ? " with a search feature" : ""}.`
    : `(Demo model, offline.) Here is a simple ${subject} to start from.`
  return [
    intro,
    "",
    "```" + language,
    codeFor(language, subject, withSearch),
    "```",
    "",
    `Save it to a file and run it. Tell me what you would like to change next.`
  ].join("\n")
}

const estimatePrompt = (request: CompletionRequest) =>
  estimateTokens(request.system) + request.messages.reduce((n, m) => n + estimateTokens(m.content), 0)

/** Splits text into chunks of a few words, keeping every character. */
export const demoChunks = (text: string): ReadonlyArray<string> => {
  const words = text.match(/\S+\s*/g) ?? []
  const chunks: Array<string> = []
  for (let i = 0; i < words.length; i += WORDS_PER_CHUNK) chunks.push(words.slice(i, i + WORDS_PER_CHUNK).join(""))
  const leading = text.match(/^\s+/)?.[0]
  return leading === undefined ? chunks : [leading, ...chunks]
}

/**
 * The offline demo model, used when no CLAUDE_API_KEY is set outside production. It never
 * touches the network and answers deterministically, so a fresh machine shows the whole
 * product working; the startup log and /health say so.
 */
export const DemoModelLive = Layer.effect(
  Claude,
  Effect.gen(function* () {
    yield* Effect.logWarning(
      "CLAUDE_API_KEY is not set: chat is answered by the offline DEMO model, not Claude. Set CLAUDE_API_KEY for real answers."
    )
    const stream = (request: CompletionRequest) => {
      // A continuation goes on with the rest of the same deterministic answer.
      const continued = continuedFrom(request.messages)
      const whole = demoAnswer(continued?.conversation ?? request.messages)
      const answer = continued === undefined ? whole : whole.startsWith(continued.partial) ? whole.slice(continued.partial.length) : whole
      const deltas = Stream.fromIterable(demoChunks(answer)).pipe(
        Stream.schedule(Schedule.spaced(CHUNK_DELAY)),
        Stream.map((text): CompletionEvent => ({ _tag: "TextDelta", text }))
      )
      const finished: CompletionEvent = {
        _tag: "Finished",
        // Plausible numbers (the ~4 characters per token estimate); the demo caches nothing.
        summary: {
          stopReason: "end_turn",
          usage: {
            inputTokens: estimatePrompt(request),
            outputTokens: estimateTokens(answer),
            cacheReadInputTokens: 0,
            cacheCreationInputTokens: 0
          }
        }
      }
      return Stream.concat(deltas, Stream.fromChunk(Chunk.of(finished)))
    }
    const title = (request: CompletionRequest) =>
      Effect.succeed(titleCase(subjectOf(request.messages.at(-1)?.content ?? "")))
    const countTokens = (request: CompletionRequest) => Effect.succeed(estimatePrompt(request))
    return { kind: "demo", stream, countTokens, title } as const
  })
)
