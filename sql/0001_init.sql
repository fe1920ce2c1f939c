-- The PRD schema, extended with what the chat path needs to never lose a message:
-- a generation status, code blocks computed once at store time, an idempotency key
-- for client retries, and a monotonic ordinal for a stable chronological order.

CREATE TABLE projects (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    title VARCHAR(255) NOT NULL DEFAULT 'New Project',
    title_source VARCHAR(10) NOT NULL DEFAULT 'default'
        CHECK (title_source IN ('default', 'user', 'generated')),
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW()
);

CREATE INDEX idx_projects_updated_at ON projects (updated_at DESC, id);

CREATE TABLE messages (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id UUID NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    ordinal BIGINT GENERATED ALWAYS AS IDENTITY,
    role VARCHAR(20) NOT NULL CHECK (role IN ('user', 'assistant')),
    content TEXT NOT NULL,
    status VARCHAR(20) NOT NULL DEFAULT 'complete'
        CHECK (status IN ('complete', 'streaming', 'cancelled', 'error', 'interrupted')),
    code_blocks JSONB NOT NULL DEFAULT '[]'::jsonb,
    client_message_id VARCHAR(255),
    stop_reason VARCHAR(40),
    error_code VARCHAR(40),
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW()
);

CREATE INDEX idx_messages_project_id ON messages (project_id, ordinal);
CREATE INDEX idx_messages_created_at ON messages (created_at);
CREATE INDEX idx_messages_streaming ON messages (status) WHERE status = 'streaming';
CREATE UNIQUE INDEX idx_messages_client_message_id
    ON messages (project_id, client_message_id)
    WHERE client_message_id IS NOT NULL;

-- The project list shows a message count and sorts by last activity; keeping both on the
-- project row makes listing one index scan instead of an aggregate over every message.
ALTER TABLE projects ADD COLUMN message_count INTEGER NOT NULL DEFAULT 0;

CREATE FUNCTION messages_touch_project() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE projects
           SET message_count = message_count + 1, updated_at = NOW()
         WHERE id = NEW.project_id;
    ELSE
        UPDATE projects SET message_count = message_count - 1 WHERE id = OLD.project_id;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER messages_touch_project
    AFTER INSERT OR DELETE ON messages
    FOR EACH ROW EXECUTE FUNCTION messages_touch_project();
