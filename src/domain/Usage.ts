import * as Schema from "effect/Schema"

/**
 * Tokens Claude's answer cost, as the Messages API counts them (summed over the answer's
 * continuations). `inputTokens` are the input tokens neither read from nor written to the
 * prompt cache: the whole prompt is the sum of the three input counts.
 */
export const Usage = Schema.Struct({
  inputTokens: Schema.NonNegativeInt,
  outputTokens: Schema.NonNegativeInt,
  cacheReadInputTokens: Schema.NonNegativeInt,
  cacheCreationInputTokens: Schema.NonNegativeInt
}).annotations({ identifier: "Usage" })
export type Usage = typeof Usage.Type
