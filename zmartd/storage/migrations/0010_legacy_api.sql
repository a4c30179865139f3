-- The legacy /api surface (zmartd/api/compat, docs/legacy-api.md).
--
-- Single use of the original frontend's wallet-signature header: every accepted
-- (wallet, timestamp, signature) is remembered until its +/-5 min window has passed,
-- so a header seen once (in a proxy log, by a browser extension) cannot be replayed.
-- Kept in PostgreSQL rather than Redis: Redis is optional, and every instance
-- behind one proxy shares this database, so the guarantee holds everywhere.
CREATE TABLE legacy_signatures (
    signature   text PRIMARY KEY,
    wallet      text NOT NULL,
    signed_at   timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX legacy_signatures_expiry ON legacy_signatures (expires_at);

-- The platform-wide recent-activity feed and the 24 h trending volume read trades by time
-- across all markets; without this they scan and sort the whole table.
CREATE INDEX trades_time ON trades (block_time DESC, id DESC);
