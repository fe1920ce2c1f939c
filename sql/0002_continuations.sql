-- How many extra requests to Claude an answer took to finish (continuations after
-- max_tokens, transient failures, restarts). Existing rows took none.
ALTER TABLE messages ADD COLUMN continuations integer NOT NULL DEFAULT 0 CHECK (continuations >= 0);

-- A crash could in theory leave two answers streaming in a project: keep the newest.
UPDATE messages m SET status = 'interrupted', error_code = 'INTERRUPTED'
WHERE m.status = 'streaming'
  AND EXISTS (SELECT 1 FROM messages o WHERE o.project_id = m.project_id AND o.status = 'streaming' AND o.ordinal > m.ordinal);

-- At most one answer streams per project: the database, not one process's memory, says so.
CREATE UNIQUE INDEX IF NOT EXISTS messages_one_streaming_per_project
  ON messages (project_id) WHERE status = 'streaming';
