import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Starts one PostgreSQL for the whole run (embedded, or TEST_DATABASE_URL) and provides its URL.
    globalSetup: ["test/globalSetup.ts"],
    // Child processes rather than worker threads: tests start real servers and child processes.
    pool: "forks",
    testTimeout: 30_000,
    hookTimeout: 60_000
  }
})
