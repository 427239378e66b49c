-- Passkeys (WebAuthn) and the server-side state of their ceremonies. Same file name and
-- meaning as migrations/postgres/0015_passkeys.sql.

CREATE TABLE passkeys (
    id            BLOB PRIMARY KEY,
    user_id       BLOB NOT NULL REFERENCES users (id),
    -- base64url of the credential id; a credential belongs to one account only.
    credential_id TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    -- webauthn-rs's Passkey (public key, counter, backup flags) as JSON.
    passkey       TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    last_used_at  TEXT
);
CREATE INDEX passkeys_user_idx ON passkeys (user_id, created_at);

-- A registration or login in progress: single use, short-lived, never sent to the client.
CREATE TABLE webauthn_ceremonies (
    id         BLOB PRIMARY KEY,
    -- register | login
    kind       TEXT NOT NULL,
    -- Who started it (registration, login with an email); NULL for a discoverable login.
    user_id    BLOB REFERENCES users (id),
    state      TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX webauthn_ceremonies_expiry_idx ON webauthn_ceremonies (expires_at);
