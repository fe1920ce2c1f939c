-- The instances of the service sharing this database, each seen at its last heartbeat: an
-- instance hands its answers to another one at shutdown only when one is alive and not
-- shutting down itself, and sends live events to the bus only when another one listens.
CREATE TABLE IF NOT EXISTS instances (
  id text PRIMARY KEY,
  seen_at timestamptz NOT NULL DEFAULT NOW(),
  draining boolean NOT NULL DEFAULT false
);
