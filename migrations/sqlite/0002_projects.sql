-- Projects, their members and invitations.
-- Same file name and meaning as migrations/postgres/0002_projects.sql (SQLite types as in 0001).

CREATE TABLE projects (
    id          BLOB PRIMARY KEY,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    -- Settings later features read: accepted kinds, size limits, reviews per item.
    settings    TEXT NOT NULL,
    created_by  BLOB NOT NULL REFERENCES users (id),
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    deleted_at  TEXT,
    deleted_by  BLOB
);
CREATE INDEX projects_live_idx ON projects (id) WHERE deleted_at IS NULL;

CREATE TABLE project_members (
    project_id BLOB NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       TEXT NOT NULL CHECK (role IN ('admin', 'contributor', 'reviewer')),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (project_id, user_id)
);
CREATE INDEX project_members_user_idx ON project_members (user_id, project_id);

CREATE TABLE project_invitations (
    id          BLOB PRIMARY KEY,
    project_id  BLOB NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    email       TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('admin', 'contributor', 'reviewer')),
    token_hash  TEXT NOT NULL UNIQUE,
    state       TEXT NOT NULL CHECK (state IN ('pending', 'accepted', 'revoked')),
    invited_by  BLOB NOT NULL REFERENCES users (id),
    expires_at  TEXT NOT NULL,
    accepted_by BLOB,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
-- At most one pending invitation per address and project.
CREATE UNIQUE INDEX project_invitations_pending_key ON project_invitations (project_id, email) WHERE state = 'pending';
CREATE INDEX audit_log_project_idx ON audit_log (project_id, at);
