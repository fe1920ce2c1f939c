/**
 * Vitest global setup: one PostgreSQL for the whole test run.
 *
 * CI (and anyone with a server at hand) sets TEST_DATABASE_URL; otherwise an
 * embedded PostgreSQL 16 is started in .data/test-postgres-<pid> and stopped (and removed) again
 * in the teardown. Tests read the URL with `inject("databaseUrl")`.
 */
import { Effect, Exit, Redacted, Scope } from "effect"
import { rm } from "node:fs/promises"
import { fileURLToPath } from "node:url"
import type { TestProject } from "vitest/node"
import { startEmbeddedPostgres } from "../src/db/EmbeddedPostgres.js"
import { freePort } from "./support/FreePort.js"

declare module "vitest" {
  export interface ProvidedContext {
    databaseUrl: string
  }
}

export default async function setup({ provide }: TestProject): Promise<() => Promise<void>> {
  const external = process.env["TEST_DATABASE_URL"]
  if (external !== undefined && external !== "") {
    provide("databaseUrl", external)
    return async () => {}
  }

  // A data folder and port of this run's own: two runs at once (two terminals, two
  // sessions) must not stop each other's server. initdb takes about a second.
  const dataDir = fileURLToPath(new URL(`../.data/test-postgres-${process.pid}`, import.meta.url))
  const embedded = { dataDir, port: await freePort(), database: "gochat_test" }
  const removeDataDir = () => rm(dataDir, { recursive: true, force: true })
  const scope = await Effect.runPromise(Scope.make())
  try {
    const { url } = await Effect.runPromise(Scope.extend(startEmbeddedPostgres(embedded), scope))
    provide("databaseUrl", Redacted.value(url))
  } catch (error) {
    await Effect.runPromise(Scope.close(scope, Exit.void))
    await removeDataDir()
    throw error
  }
  return async () => {
    await Effect.runPromise(Scope.close(scope, Exit.void))
    await removeDataDir()
  }
}
