-- Google sign-in (OpenID Connect, authorization-code flow with PKCE). Same file name and
-- meaning as migrations/sqlite/0014_google_signin.sql.

-- An account's sign-in identities at OpenID providers: (issuer, subject) names one
-- provider account for good (its email may change; `email` is the one it last gave).
CREATE TABLE user_identities (
    id            UUID PRIMARY KEY,
    user_id       UUID NOT NULL REFERENCES users (id),
    issuer        TEXT NOT NULL,
    subject       TEXT NOT NULL,
    email         TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    last_login_at TIMESTAMPTZ NOT NULL,
    UNIQUE (issuer, subject)
);
CREATE INDEX user_identities_user_idx ON user_identities (user_id);

-- A sign-in started at GET /api/auth/google/login: its `state` (only the SHA-256 is
-- kept), the nonce and PKCE verifier that stay on the server, and the SHA-256 of the
-- browser-binding cookie. Single use (used_at), 10 minutes; expired rows are deleted
-- when new ones are written.
CREATE TABLE oidc_login_states (
    state_hash    TEXT PRIMARY KEY,
    id            UUID NOT NULL UNIQUE,
    nonce         TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    browser_hash  TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL,
    used_at       TIMESTAMPTZ
);
CREATE INDEX oidc_login_states_expires_idx ON oidc_login_states (expires_at);

-- One-time codes handed to the frontend after a provider sign-in (in the redirect's
-- fragment) and exchanged for tokens at POST /api/auth/google/exchange: 256 random bits,
-- only the SHA-256 kept, single use, 60 seconds.
CREATE TABLE login_codes (
    code_hash  TEXT PRIMARY KEY,
    id         UUID NOT NULL UNIQUE,
    user_id    UUID NOT NULL REFERENCES users (id),
    -- How the person proved who they are (the session's method): google.
    method     TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ,
    -- The session it opened: ended if the code is presented again (a stolen copy).
    session_id UUID
);
CREATE INDEX login_codes_expires_idx ON login_codes (expires_at);
CREATE INDEX login_codes_user_idx ON login_codes (user_id);
