-- Off-chain data owned by the API: profiles, market metadata, votes before aggregation,
-- discussions and IPFS anchors.

CREATE TABLE users (
    wallet         pubkey PRIMARY KEY,
    display_name   text CHECK (char_length(display_name) BETWEEN 1 AND 50),
    bio            text CHECK (char_length(bio) <= 500),
    avatar_url     text CHECK (avatar_url ~ '^https?://' AND char_length(avatar_url) <= 1000),
    website_url    text CHECK (website_url ~ '^https?://' AND char_length(website_url) <= 1000),
    twitter        text CHECK (twitter ~ '^[A-Za-z0-9_]{1,15}$'),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    last_login_at  timestamptz
);
CREATE UNIQUE INDEX users_display_name ON users (lower(display_name));

-- What the creator registers about a market (title, description, ...).  Keyed by the
-- market_id the creator chooses, so it may be registered before the indexer has seen the
-- market; editable while the market is PROPOSED (or not yet on chain).
CREATE TABLE market_metadata (
    market_id          market_key PRIMARY KEY,
    creator            pubkey NOT NULL,
    title              text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
    description        text NOT NULL DEFAULT '' CHECK (char_length(description) <= 10000),
    category           text CHECK (category ~ '^[a-z0-9][a-z0-9-]{0,31}$'),
    tags               text[] NOT NULL DEFAULT '{}'
                       CHECK (cardinality(tags) <= 10 AND array_position(tags, NULL) IS NULL),
    image_url          text CHECK (image_url ~ '^https?://' AND char_length(image_url) <= 1000),
    resolution_source  text CHECK (char_length(resolution_source) <= 1000),
    end_time           timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    -- full-text search (built in: pg_trgm is not shipped with the embedded PostgreSQL)
    search             tsvector GENERATED ALWAYS AS (
                           setweight(to_tsvector('english', title), 'A')
                           || setweight(to_tsvector('english', coalesce(category, '')), 'B')
                           || setweight(to_tsvector('english', description), 'C')
                       ) STORED
);
-- fastupdate off: metadata is written rarely and searched constantly; a GIN pending list
-- would make searches scan it (and the planner prefer a Seq Scan) until the next vacuum.
CREATE INDEX market_metadata_search ON market_metadata USING gin (search)
    WITH (fastupdate = off);
CREATE INDEX market_metadata_tags ON market_metadata USING gin (tags) WITH (fastupdate = off);
CREATE INDEX market_metadata_category ON market_metadata (category);
CREATE INDEX market_metadata_closing ON market_metadata (end_time, market_id)
    WHERE end_time IS NOT NULL;

-- One aggregation run per market and kind: the counts zmartd submitted on chain.
CREATE TABLE vote_aggregations (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    market_id   market_key NOT NULL REFERENCES markets (market_id),
    kind        text NOT NULL CHECK (kind IN ('proposal', 'dispute')),
    yes_count   bigint NOT NULL CHECK (yes_count >= 0),
    no_count    bigint NOT NULL CHECK (no_count >= 0),
    signature   tx_signature,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (id, market_id, kind)
);
CREATE INDEX vote_aggregations_market ON vote_aggregations (market_id, kind, created_at DESC);

-- One vote per wallet per market per kind (the primary key).  vote: proposal true = like,
-- dispute true = agree with the dispute.  Off-chain votes may change until aggregated;
-- on-chain votes (VoteRecord) are immutable and take precedence.  The composite foreign key
-- ties an aggregated vote to an aggregation of the same market and kind.
CREATE TABLE proposal_votes (
    market_id       market_key NOT NULL REFERENCES markets (market_id),
    wallet          pubkey NOT NULL,
    vote            boolean NOT NULL,
    source          text NOT NULL CHECK (source IN ('offchain', 'onchain')),
    signature       tx_signature,
    slot            slot_no,
    kind            text NOT NULL DEFAULT 'proposal' CHECK (kind = 'proposal'),
    aggregation_id  bigint,
    aggregated_at   timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (market_id, wallet),
    FOREIGN KEY (aggregation_id, market_id, kind) REFERENCES vote_aggregations (id, market_id, kind),
    CONSTRAINT proposal_votes_aggregated CHECK ((aggregation_id IS NULL) = (aggregated_at IS NULL)),
    CONSTRAINT proposal_votes_onchain CHECK ((source = 'onchain') = (signature IS NOT NULL))
);
CREATE INDEX proposal_votes_wallet ON proposal_votes (wallet, created_at DESC);

CREATE TABLE dispute_votes (
    market_id       market_key NOT NULL REFERENCES markets (market_id),
    wallet          pubkey NOT NULL,
    vote            boolean NOT NULL,
    source          text NOT NULL CHECK (source IN ('offchain', 'onchain')),
    signature       tx_signature,
    slot            slot_no,
    kind            text NOT NULL DEFAULT 'dispute' CHECK (kind = 'dispute'),
    aggregation_id  bigint,
    aggregated_at   timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (market_id, wallet),
    FOREIGN KEY (aggregation_id, market_id, kind) REFERENCES vote_aggregations (id, market_id, kind),
    CONSTRAINT dispute_votes_aggregated CHECK ((aggregation_id IS NULL) = (aggregated_at IS NULL)),
    CONSTRAINT dispute_votes_onchain CHECK ((source = 'onchain') = (signature IS NOT NULL))
);
CREATE INDEX dispute_votes_wallet ON dispute_votes (wallet, created_at DESC);

-- Threaded by parent_id; a reply belongs to its parent's market (composite foreign key).
-- Soft delete keeps the row (the thread's shape) and hides the content in reads.
CREATE TABLE discussions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    market_id   market_key NOT NULL REFERENCES markets (market_id),
    parent_id   bigint,
    wallet      pubkey NOT NULL,
    content     text NOT NULL CHECK (char_length(content) BETWEEN 1 AND 2000),
    created_at  timestamptz NOT NULL DEFAULT now(),
    edited_at   timestamptz,
    deleted_at  timestamptz,
    deleted_by  text CHECK (char_length(deleted_by) BETWEEN 1 AND 100),
    UNIQUE (id, market_id),
    FOREIGN KEY (parent_id, market_id) REFERENCES discussions (id, market_id),
    CONSTRAINT discussions_not_own_parent CHECK (parent_id <> id),
    CONSTRAINT discussions_deleted_by CHECK ((deleted_at IS NULL) = (deleted_by IS NULL))
);
CREATE INDEX discussions_roots ON discussions (market_id, created_at DESC, id DESC)
    WHERE parent_id IS NULL;
CREATE INDEX discussions_children ON discussions (parent_id, created_at, id);
CREATE INDEX discussions_wallet ON discussions (wallet, created_at DESC);

-- Content anchored on IPFS (metadata, evidence, discussion/vote snapshots).
CREATE TABLE ipfs_anchors (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind            text NOT NULL
                    CHECK (kind IN ('market_metadata', 'evidence', 'discussions', 'votes')),
    market_id       market_key,
    cid             text NOT NULL
                    CHECK (cid ~ '^(Qm[1-9A-HJ-NP-Za-km-z]{44}|b[a-z2-7]{20,200})$'),
    content_sha256  bytea NOT NULL CHECK (octet_length(content_sha256) = 32),
    size_bytes      bigint NOT NULL CHECK (size_bytes >= 0),
    covers_until    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    pinned_at       timestamptz,
    CONSTRAINT ipfs_anchors_once UNIQUE NULLS NOT DISTINCT (kind, market_id, cid)
);
CREATE INDEX ipfs_anchors_market ON ipfs_anchors (market_id, kind, created_at DESC, id DESC);
