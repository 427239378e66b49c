-- Projects, their members and invitations.
-- Same file name and meaning as migrations/sqlite/0002_projects.sql.

CREATE TABLE projects (
    id          UUID PRIMARY KEY,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    -- Settings later features read: accepted kinds, size limits, reviews per item.
    settings    JSONB NOT NULL,
    created_by  UUID NOT NULL REFERENCES users (id),
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    deleted_at  TIMESTAMPTZ,
    deleted_by  UUID
);
CREATE INDEX projects_live_idx ON projects (id) WHERE deleted_at IS NULL;

CREATE TABLE project_members (
    project_id UUID NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id    UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       TEXT NOT NULL CHECK (role IN ('admin', 'contributor', 'reviewer')),
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (project_id, user_id)
);
CREATE INDEX project_members_user_idx ON project_members (user_id, project_id);

CREATE TABLE project_invitations (
    id          UUID PRIMARY KEY,
    project_id  UUID NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    email       TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('admin', 'contributor', 'reviewer')),
    token_hash  TEXT NOT NULL UNIQUE,
    state       TEXT NOT NULL CHECK (state IN ('pending', 'accepted', 'revoked')),
    invited_by  UUID NOT NULL REFERENCES users (id),
    expires_at  TIMESTAMPTZ NOT NULL,
    accepted_by UUID,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
-- At most one pending invitation per address and project.
CREATE UNIQUE INDEX project_invitations_pending_key ON project_invitations (project_id, email) WHERE state = 'pending';
CREATE INDEX audit_log_project_idx ON audit_log (project_id, at);
