/**
 * A Vitest reporter beside the default one: after the run it lists every skipped test by
 * its full name. Tests that skip themselves where a tool or privilege is missing say so in
 * their names (e.g. "passes hadolint (only where hadolint is installed)"), so CI's output
 * shows what was not checked on that machine and why.
 */
import type { Reporter, TestModule } from "vitest/node"

export default class SkippedReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    const skipped = testModules.flatMap((module) =>
      [...module.children.allTests("skipped")].map((test) => `  - ${module.moduleId.replace(`${process.cwd()}/`, "")} > ${test.fullName}`)
    )
    const lines = skipped.length === 0 ? ["Skipped tests: none"] : [`Skipped tests (${skipped.length}):`, ...skipped]
    process.stdout.write(`\n${lines.join("\n")}\n`)
  }
}
