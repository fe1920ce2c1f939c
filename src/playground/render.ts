import hljs from "highlight.js/lib/core"
import bash from "highlight.js/lib/languages/bash"
import css from "highlight.js/lib/languages/css"
import go from "highlight.js/lib/languages/go"
import javascript from "highlight.js/lib/languages/javascript"
import json from "highlight.js/lib/languages/json"
import python from "highlight.js/lib/languages/python"
import sql from "highlight.js/lib/languages/sql"
import typescript from "highlight.js/lib/languages/typescript"
import xml from "highlight.js/lib/languages/xml"

for (const [name, language] of Object.entries({ bash, css, go, javascript, json, python, sql, typescript, xml })) {
  hljs.registerLanguage(name, language)
}

/** What a message bubble shows. */
export interface MessageView {
  readonly id: string | undefined
  readonly role: "user" | "assistant"
  readonly text: string
  /** streaming, complete, cancelled, error, interrupted, or pending (a send not yet acknowledged). */
  readonly status: string
  readonly resumed?: boolean
  readonly continuations?: number
  readonly errorCode?: string | null
}

const FENCE = /```([\w+#.-]*)[^\n]*\n([\s\S]*?)(?:```|$)/g

/** The code, highlighted by highlight.js (its output is escaped HTML); the fence's language when known. */
const codeBlock = (language: string, code: string): HTMLElement => {
  const pre = document.createElement("pre")
  const element = document.createElement("code")
  const known = language !== "" && hljs.getLanguage(language) !== undefined
  const result = known ? hljs.highlight(code, { language, ignoreIllegals: true }) : hljs.highlightAuto(code)
  element.className = `hljs language-${result.language ?? (language || "plaintext")}`
  element.innerHTML = result.value
  pre.append(element)
  return pre
}

/** Text and fenced code blocks (an unclosed fence while streaming counts as code). */
const renderText = (container: HTMLElement, text: string): void => {
  container.replaceChildren()
  let last = 0
  for (const match of text.matchAll(FENCE)) {
    const before = text.slice(last, match.index)
    if (before !== "") container.append(Object.assign(document.createElement("div"), { className: "text", textContent: before }))
    container.append(codeBlock(match[1] ?? "", match[2] ?? ""))
    last = match.index + match[0].length
  }
  const rest = text.slice(last)
  if (rest !== "") container.append(Object.assign(document.createElement("div"), { className: "text", textContent: rest }))
}

const statusLabel = (view: MessageView): string => {
  const parts = [view.status === "error" && view.errorCode ? `error ${view.errorCode}` : view.status]
  if (view.resumed === true) parts.push("resumed")
  if ((view.continuations ?? 0) > 0) parts.push(`continued ×${view.continuations}`)
  return parts.join(" · ")
}

/** Creates or updates the bubble of a message in `list`. */
export const renderMessage = (list: HTMLElement, view: MessageView, existing?: HTMLElement): HTMLElement => {
  const bubble = existing ?? document.createElement("article")
  bubble.className = `message ${view.role}`
  if (view.id !== undefined) bubble.dataset["messageId"] = view.id
  bubble.dataset["status"] = view.status
  const body = document.createElement("div")
  body.className = "body"
  renderText(body, view.text)
  const children: Array<HTMLElement> = [body]
  if (view.role === "assistant" || view.status === "pending") {
    const status = document.createElement("span")
    status.className = "status"
    status.dataset["kind"] = view.status
    status.textContent = statusLabel(view)
    children.push(status)
  }
  bubble.replaceChildren(...children)
  if (existing === undefined) list.append(bubble)
  return bubble
}
