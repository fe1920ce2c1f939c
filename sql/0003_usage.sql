-- What each answer cost in tokens (summed over its continuations), as the Messages API
-- reports it. NULL: an answer stored before this migration, or one that ended before
-- Claude reported any usage.
ALTER TABLE messages
  ADD COLUMN input_tokens integer CHECK (input_tokens >= 0),
  ADD COLUMN output_tokens integer CHECK (output_tokens >= 0),
  ADD COLUMN cache_read_input_tokens integer CHECK (cache_read_input_tokens >= 0),
  ADD COLUMN cache_creation_input_tokens integer CHECK (cache_creation_input_tokens >= 0);
