import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Starts one PostgreSQL for the whole run (embedded, or TEST_DATABASE_URL) and provides its URL.
    globalSetup: ["test/globalSetup.ts"],
    // The services' JSON logs (in process, and of child processes) go through console, and
    // are printed only for a test that failed: a green run is quiet, a red one shows why.
    setupFiles: ["test/support/ConsoleLogs.ts"],
    silent: "passed-only",
    // After the summary: every skipped test, whose name says why it was skipped.
    reporters: ["default", "./test/support/SkippedReporter.ts"],
    // Child processes rather than worker threads: tests start real servers and child processes.
    pool: "forks",
    // Liveness bounds, not timing assertions: generous, so a loaded machine is slow, not red.
    testTimeout: 60_000,
    hookTimeout: 60_000
  }
})
