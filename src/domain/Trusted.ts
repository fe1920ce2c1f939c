/**
 * Schema class constructor option for values built from rows that a row schema has just
 * decoded: validating them again field by field made listing 1,000 projects ten times slower.
 */
export const TRUSTED = true
