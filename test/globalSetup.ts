/**
 * Vitest global setup: one PostgreSQL for the whole test run.
 *
 * CI (and anyone with a server at hand) sets TEST_DATABASE_URL; otherwise an
 * embedded PostgreSQL 16 is started in .data/test-postgres and stopped again
 * in the teardown. Tests read the URL with `inject("databaseUrl")`.
 */
import { Effect, Exit, Redacted, Scope } from "effect"
import { fileURLToPath } from "node:url"
import type { TestProject } from "vitest/node"
import { startEmbeddedPostgres } from "../src/db/EmbeddedPostgres.js"

declare module "vitest" {
  export interface ProvidedContext {
    databaseUrl: string
  }
}

const EMBEDDED = {
  dataDir: fileURLToPath(new URL("../.data/test-postgres", import.meta.url)),
  port: 54330,
  database: "gochat_test"
} as const

export default async function setup({ provide }: TestProject): Promise<() => Promise<void>> {
  const external = process.env["TEST_DATABASE_URL"]
  if (external !== undefined && external !== "") {
    provide("databaseUrl", external)
    return async () => {}
  }

  const scope = await Effect.runPromise(Scope.make())
  try {
    const { url } = await Effect.runPromise(Scope.extend(startEmbeddedPostgres(EMBEDDED), scope))
    provide("databaseUrl", Redacted.value(url))
  } catch (error) {
    await Effect.runPromise(Scope.close(scope, Exit.void))
    throw error
  }
  return () => Effect.runPromise(Scope.close(scope, Exit.void))
}
