-- Daily discussion snapshots (the snapshotter actor, zmartd/snapshotter): each per-market
-- snapshot and each day's root document is an ipfs_anchors row that also says which UTC
-- period it covers, how many posts it holds, which backend stores it and whether it was
-- pruned. Rows are never deleted: pruning unpins the content and sets pruned_at.

ALTER TABLE ipfs_anchors DROP CONSTRAINT ipfs_anchors_kind_check;
ALTER TABLE ipfs_anchors ADD CONSTRAINT ipfs_anchors_kind_check
    CHECK (kind IN ('market_metadata', 'evidence', 'discussions', 'discussions_root', 'votes'));
ALTER TABLE ipfs_anchors
    ADD COLUMN period_start timestamptz,
    ADD COLUMN period_end   timestamptz,
    ADD COLUMN post_count   integer CHECK (post_count >= 0),
    ADD COLUMN backend      text CHECK (backend IN ('local', 'kubo', 'pinning-service')),
    ADD COLUMN pruned_at    timestamptz,
    ADD CONSTRAINT ipfs_anchors_period CHECK (
        (period_start IS NULL) = (period_end IS NULL) AND period_start < period_end);
-- one complete snapshot per (kind, market, day): the snapshotter's idempotency key
CREATE UNIQUE INDEX ipfs_anchors_period_once
    ON ipfs_anchors (kind, market_id, period_start) NULLS NOT DISTINCT
    WHERE period_start IS NOT NULL AND covers_until = period_end;
CREATE INDEX ipfs_anchors_prunable ON ipfs_anchors (period_start)
    WHERE period_start IS NOT NULL AND pruned_at IS NULL;
CREATE INDEX ipfs_anchors_cid ON ipfs_anchors (cid);
-- a snapshot reads every post of a market in (created_at, id) order, and finds the day's
-- active markets by when posts were written, edited or deleted
CREATE INDEX discussions_market_order ON discussions (market_id, created_at, id);
CREATE INDEX discussions_created ON discussions (created_at);
CREATE INDEX discussions_edited ON discussions (edited_at) WHERE edited_at IS NOT NULL;
CREATE INDEX discussions_deleted ON discussions (deleted_at) WHERE deleted_at IS NOT NULL;
