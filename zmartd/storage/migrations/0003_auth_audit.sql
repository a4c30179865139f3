-- Sign-In-With-Solana nonces and sessions, and the admin audit log.

-- A nonce is bound to a wallet and a domain, expires, and is consumed exactly once
-- (UPDATE ... WHERE used_at IS NULL AND expires_at > now() RETURNING).
CREATE TABLE auth_nonces (
    nonce       text PRIMARY KEY CHECK (nonce ~ '^[A-Za-z0-9]{8,64}$'),
    wallet      pubkey NOT NULL,
    domain      text NOT NULL CHECK (char_length(domain) BETWEEN 1 AND 253),
    issued_at   timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    CONSTRAINT auth_nonces_expiry CHECK (expires_at > issued_at)
);
CREATE INDEX auth_nonces_expires ON auth_nonces (expires_at);

-- Only sha256(token) is stored: a database leak does not leak usable tokens.
CREATE TABLE sessions (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token_hash    bytea NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    wallet        pubkey NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    last_seen_at  timestamptz,
    revoked_at    timestamptz,
    user_agent    text CHECK (char_length(user_agent) <= 512),
    ip            inet,
    CONSTRAINT sessions_expiry CHECK (expires_at > created_at)
);
CREATE INDEX sessions_wallet_live ON sessions (wallet) WHERE revoked_at IS NULL;
CREATE INDEX sessions_expires ON sessions (expires_at);

-- Append-only record of every admin action.
CREATE TABLE admin_audit_log (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    actor        text NOT NULL CHECK (char_length(actor) BETWEEN 1 AND 100),
    action       text NOT NULL CHECK (action ~ '^[a-z][a-z0-9_.]{0,63}$'),
    target_type  text CHECK (char_length(target_type) BETWEEN 1 AND 64),
    target_id    text CHECK (char_length(target_id) BETWEEN 1 AND 200),
    details      jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(details) = 'object'),
    ip           inet,
    request_id   text CHECK (char_length(request_id) <= 100)
);
CREATE INDEX admin_audit_log_at ON admin_audit_log (at DESC, id DESC);
CREATE INDEX admin_audit_log_actor ON admin_audit_log (actor, at DESC, id DESC);
CREATE INDEX admin_audit_log_target ON admin_audit_log (target_type, target_id, at DESC);

CREATE FUNCTION forbid_audit_rewrite() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'admin_audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER admin_audit_log_append_only BEFORE UPDATE OR DELETE ON admin_audit_log
    FOR EACH ROW EXECUTE FUNCTION forbid_audit_rewrite();
