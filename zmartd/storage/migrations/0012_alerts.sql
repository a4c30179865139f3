-- Operator alerts raised by the market monitor.  One row per condition (dedup_key): a
-- condition that persists updates last_seen/count instead of adding rows, and the row goes
-- back to 'firing' when a resolved condition returns.  `notified` lists the channels that
-- accepted the latest notice (webhook, email); an alert is stored even when none is set up.
CREATE TABLE alerts (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dedup_key     text NOT NULL UNIQUE CHECK (length(dedup_key) BETWEEN 1 AND 200),
    severity      text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    title         text NOT NULL CHECK (length(title) BETWEEN 1 AND 300),
    details       jsonb NOT NULL DEFAULT '{}',
    state         text NOT NULL DEFAULT 'firing' CHECK (state IN ('firing', 'resolved')),
    -- the current firing episode
    first_seen    timestamptz NOT NULL DEFAULT now(),
    last_seen     timestamptz NOT NULL DEFAULT now(),
    count         integer NOT NULL DEFAULT 1 CHECK (count >= 1),
    resolved_at   timestamptz,
    -- when the last notice (firing, repeat or resolved) was sent out
    notified_at   timestamptz,
    notified      text[] NOT NULL DEFAULT '{}',
    notify_failures integer NOT NULL DEFAULT 0 CHECK (notify_failures >= 0),
    CONSTRAINT alerts_resolved_has_time CHECK (state <> 'resolved' OR resolved_at IS NOT NULL)
);
CREATE INDEX alerts_list ON alerts (id DESC);
CREATE INDEX alerts_state ON alerts (state, severity, id DESC);
