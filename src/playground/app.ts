/**
 * The playground: projects on the left, the chat on the right, everything through the
 * typed client (REST from the HttpApi definition, the self-healing chat connection).
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { type Answer, canContinue, ChatConnection, type ChatEvent, fetchRestClient, ProjectId, type RestClient } from "../client/index.js"
import { type MessageView, renderMessage } from "./render.js"

const byId = <T extends HTMLElement>(id: string): T => {
  const element = document.getElementById(id)
  if (element === null) throw new Error(`#${id} is missing`)
  return element as T
}

const ui = {
  connection: byId<HTMLSpanElement>("connection"),
  auth: byId<HTMLFormElement>("auth"),
  authToken: byId<HTMLInputElement>("auth-token"),
  newProject: byId<HTMLButtonElement>("new-project"),
  projects: byId<HTMLUListElement>("projects"),
  title: byId<HTMLHeadingElement>("chat-title"),
  messages: byId<HTMLDivElement>("messages"),
  notice: byId<HTMLParagraphElement>("notice"),
  composer: byId<HTMLFormElement>("composer"),
  input: byId<HTMLTextAreaElement>("input"),
  send: byId<HTMLButtonElement>("send"),
  stop: byId<HTMLButtonElement>("stop"),
  continue: byId<HTMLButtonElement>("continue")
}

const TOKEN_KEY = "go-chat-token"
let token = sessionStorage.getItem(TOKEN_KEY) ?? undefined
let connection: ChatConnection | undefined
let currentProject: string | undefined
/** The project's latest answer: what Stop and Continue act on. */
let latest: Pick<Answer, "messageId" | "status" | "stopReason"> | undefined

const isUnauthorized = (error: unknown): boolean =>
  typeof error === "object" && error !== null && "response" in error &&
  typeof error.response === "object" && error.response !== null && "status" in error.response && error.response.status === 401

/** Runs a REST call; a 401 asks for the token, any other failure is shown. */
const rest = async <A, E>(call: (client: RestClient) => Effect.Effect<A, E>): Promise<A | undefined> => {
  const client = Effect.flatMap(fetchRestClient({ baseUrl: location.origin, token: () => token }), call)
  const result = await Effect.runPromise(Effect.either(client))
  if (Either.isRight(result)) return result.right
  if (isUnauthorized(result.left)) {
    ui.auth.hidden = false
    ui.authToken.focus()
  } else {
    const code = typeof result.left === "object" && result.left !== null && "code" in result.left ? String(result.left.code) : "REQUEST_FAILED"
    ui.notice.textContent = `Request failed: ${code}`
  }
  return undefined
}

const setConnection = (state: string, text: string) => {
  ui.connection.dataset["state"] = state
  ui.connection.textContent = text
}

const updateButtons = () => {
  const streaming = latest?.status === "streaming"
  ui.stop.hidden = !streaming
  ui.continue.hidden = latest === undefined || streaming || !canContinue(latest)
}

const bubbleOf = (messageId: string) =>
  ui.messages.querySelector<HTMLElement>(`[data-message-id="${CSS.escape(messageId)}"]`) ?? undefined

const show = (view: MessageView) => {
  const existing = view.id === undefined ? undefined : bubbleOf(view.id)
  renderMessage(ui.messages, view, existing)
  ui.messages.scrollTop = ui.messages.scrollHeight
}

const loadProjects = async () => {
  const list = await rest((client) => client.projects.list({ urlParams: {}, headers: {} }))
  if (list === undefined) return
  ui.projects.replaceChildren(...list.projects.map((project) => {
    const item = document.createElement("li")
    item.dataset["projectId"] = project.id
    if (project.id === currentProject) item.className = "current"
    const link = Object.assign(document.createElement("a"), { href: `/?project=${project.id}`, textContent: project.title, title: project.title })
    link.addEventListener("click", (event) => {
      event.preventDefault()
      void openProject(project.id)
    })
    const rename = Object.assign(document.createElement("button"), { type: "button", textContent: "Rename", className: "rename" })
    rename.addEventListener("click", async () => {
      const title = prompt("New title", project.title)
      if (title === null || title.trim() === "") return
      await rest((client) => client.projects.rename({ path: { id: project.id }, payload: { title } }))
      await loadProjects()
      if (project.id === currentProject) ui.title.textContent = title.trim()
    })
    const remove = Object.assign(document.createElement("button"), { type: "button", textContent: "Delete", className: "delete" })
    remove.addEventListener("click", async () => {
      if (!confirm(`Delete "${project.title}" and its messages?`)) return
      await rest((client) => client.projects.remove({ path: { id: project.id } }))
      if (project.id === currentProject) closeProject()
      await loadProjects()
    })
    item.append(link, rename, remove)
    return item
  }))
}

const closeProject = () => {
  connection?.close()
  connection = undefined
  currentProject = undefined
  latest = undefined
  ui.messages.replaceChildren()
  ui.title.textContent = "Pick or create a project"
  ui.input.disabled = ui.send.disabled = true
  setConnection("idle", "no project open")
  history.replaceState(null, "", "/")
  updateButtons()
}

const onChatEvent = (event: ChatEvent) => {
  switch (event._tag) {
    case "Connection":
      return setConnection(event.state, event.state === "reconnecting" && event.retryInMs !== undefined
        ? `reconnecting (attempt ${event.attempt})` : event.state)
    case "Answer": {
      const { answer } = event
      latest = answer
      // The acknowledged send gets the id the server gave it.
      const pending = ui.messages.querySelector<HTMLElement>(".message.user[data-status=pending]")
      if (pending !== null && bubbleOf(answer.userMessageId) === undefined) {
        pending.dataset["messageId"] = answer.userMessageId
        pending.dataset["status"] = "sent"
        pending.querySelector(".status")?.remove()
      }
      show({ id: answer.messageId, role: "assistant", text: answer.text, status: answer.status, resumed: answer.resumed, continuations: answer.continuations, errorCode: answer.errorCode })
      return updateButtons()
    }
    case "Server": {
      const server = event.event
      if (server.type === "project_updated") {
        ui.title.textContent = server.title
        void loadProjects()
      } else if (server.type === "error" && server.messageId === undefined) {
        ui.notice.textContent = `${server.code}: ${server.error}`
        ui.messages.querySelector(".message.user[data-status=pending]")?.remove()
      }
      return
    }
    case "Unknown":
      return
  }
}

const openProject = async (requested: string) => {
  const id = Schema.decodeUnknownOption(ProjectId)(requested)
  if (Option.isNone(id)) {
    ui.notice.textContent = "That project link is not valid."
    return
  }
  const projectId = id.value
  const project = await rest((client) => client.projects.get({ path: { id: projectId }, urlParams: {}, headers: {} }))
  if (project === undefined) return
  closeProject()
  currentProject = projectId
  history.replaceState(null, "", `/?project=${projectId}`)
  ui.title.textContent = project.title
  ui.notice.textContent = ""
  for (const message of project.messages) {
    show({ id: message.id, role: message.role, text: message.content, status: message.role === "user" ? "sent" : message.status })
    if (message.role === "assistant") latest = { messageId: message.id, status: message.status === "streaming" ? "streaming" : message.status, stopReason: null }
  }
  updateButtons()
  connection = new ChatConnection({ baseUrl: location.origin, projectId, token: () => token })
  connection.subscribe(onChatEvent)
  ui.input.disabled = ui.send.disabled = false
  ui.input.focus()
  for (const item of ui.projects.children) item.classList.toggle("current", item instanceof HTMLElement && item.dataset["projectId"] === projectId)
}

const sendMessage = () => {
  const content = ui.input.value
  if (connection === undefined || content.trim() === "") return
  ui.notice.textContent = ""
  show({ id: undefined, role: "user", text: content, status: "pending" })
  connection.send(content)
  ui.input.value = ""
}

ui.composer.addEventListener("submit", (event) => {
  event.preventDefault()
  sendMessage()
})
ui.input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault()
    sendMessage()
  }
})
ui.stop.addEventListener("click", () => {
  if (latest !== undefined) connection?.cancel(latest.messageId)
})
ui.continue.addEventListener("click", () => {
  if (latest !== undefined) connection?.continue(latest.messageId)
})
ui.newProject.addEventListener("click", async () => {
  const project = await rest((client) => client.projects.create({ payload: null }))
  if (project === undefined) return
  await loadProjects()
  await openProject(project.id)
})
ui.auth.addEventListener("submit", async (event) => {
  event.preventDefault()
  token = ui.authToken.value
  sessionStorage.setItem(TOKEN_KEY, token)
  ui.auth.hidden = true
  await start()
})

const start = async () => {
  await loadProjects()
  const requested = new URLSearchParams(location.search).get("project")
  if (requested !== null && requested !== currentProject) await openProject(requested)
}
void start()
