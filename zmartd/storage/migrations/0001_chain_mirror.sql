-- The chain mirror: what the indexer writes from zmart-core accounts and events
-- (shared/chain/PROGRAM.md §3, §5).  The chain is the source of truth for these rows.
--
-- Units: lamports and share-units as exact integers (u64 as NUMERIC(20,0)), never floats.
-- Chain timestamps (unix seconds, 0 = unset) are stored as timestamptz, NULL when unset.
-- Every row carries the slot it reflects and a `finalized` commitment marker.

CREATE DOMAIN u64 AS numeric(20, 0)
    CHECK (VALUE >= 0 AND VALUE <= 18446744073709551615);
CREATE DOMAIN u32 AS bigint
    CHECK (VALUE >= 0 AND VALUE <= 4294967295);
CREATE DOMAIN slot_no AS bigint
    CHECK (VALUE >= 0);
-- base58 public key (32 bytes encode to 32..44 characters)
CREATE DOMAIN pubkey AS text
    CHECK (VALUE ~ '^[1-9A-HJ-NP-Za-km-z]{32,44}$');
-- base58 transaction signature (64 bytes encode to 64..88 characters)
CREATE DOMAIN tx_signature AS text
    CHECK (VALUE ~ '^[1-9A-HJ-NP-Za-km-z]{64,88}$');
-- the 32-byte market_id chosen by the creator, as 64 lowercase hex characters
CREATE DOMAIN market_key AS text
    CHECK (VALUE ~ '^[0-9a-f]{64}$');
-- a price scaled by 1e9 (SharesBought.new_price_yes): 0..1e9
CREATE DOMAIN price_e9 AS bigint
    CHECK (VALUE >= 0 AND VALUE <= 1000000000);

-- MarketAccount (PDA ["market", market_id]).  state is the chain's MarketState 0..6:
-- 0 Proposed, 1 Approved, 2 Active, 3 Resolving, 4 Disputed, 5 Finalized, 6 Cancelled.
CREATE TABLE markets (
    market_id                 market_key PRIMARY KEY,
    address                   pubkey NOT NULL UNIQUE,
    creator                   pubkey NOT NULL,
    state                     smallint NOT NULL CHECK (state BETWEEN 0 AND 6),
    b_parameter               u64 NOT NULL CHECK (b_parameter > 0),
    initial_liquidity         u64 NOT NULL,
    current_liquidity         u64 NOT NULL,
    shares_yes                u64 NOT NULL,
    shares_no                 u64 NOT NULL,
    total_volume              u64 NOT NULL DEFAULT 0,
    -- last displayed YES price (new_price_yes of the latest trade; 0.5 before any trade)
    price_yes                 price_e9 NOT NULL DEFAULT 500000000,
    created_at                timestamptz NOT NULL,
    approved_at               timestamptz,
    activated_at              timestamptz,
    resolution_proposed_at    timestamptz,
    resolved_at               timestamptz,
    finalized_at              timestamptz,
    dispute_initiated_at      timestamptz,
    cancelled_at              timestamptz,
    resolver                  pubkey,
    proposed_outcome          boolean,
    final_outcome             boolean,
    ipfs_question_hash        text CHECK (char_length(ipfs_question_hash) <= 46),
    ipfs_evidence_hash        text CHECK (char_length(ipfs_evidence_hash) <= 46),
    dispute_initiator         pubkey,
    accumulated_resolver_fees u64 NOT NULL DEFAULT 0,
    accumulated_lp_fees       u64 NOT NULL DEFAULT 0,
    proposal_likes            u32 NOT NULL DEFAULT 0,
    proposal_dislikes         u32 NOT NULL DEFAULT 0,
    proposal_total_votes      u32 NOT NULL DEFAULT 0,
    dispute_agree             u32 NOT NULL DEFAULT 0,
    dispute_disagree          u32 NOT NULL DEFAULT 0,
    dispute_total_votes       u32 NOT NULL DEFAULT 0,
    was_disputed              boolean NOT NULL DEFAULT false,
    -- the slot of the account state this row reflects; only moves forward
    slot                      slot_no NOT NULL,
    finalized                 boolean NOT NULL DEFAULT false,
    indexed_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now(),
    -- Resolving, Disputed and Finalized markets have a proposed outcome (PROGRAM.md §3.2).
    CONSTRAINT markets_resolution_has_outcome
        CHECK (state NOT IN (3, 4, 5) OR proposed_outcome IS NOT NULL),
    -- only finalize_market sets final_outcome, and it moves the market to Finalized
    CONSTRAINT markets_final_outcome_only_finalized
        CHECK (final_outcome IS NULL OR state = 5),
    CONSTRAINT markets_cancelled_has_time
        CHECK (state <> 6 OR cancelled_at IS NOT NULL)
);
-- one index per list sort (keyset pagination on (key, market_id)), plus the filtered variants
CREATE INDEX markets_newest ON markets (created_at DESC, market_id DESC);
CREATE INDEX markets_volume ON markets (total_volume DESC, market_id DESC);
CREATE INDEX markets_liquidity ON markets (current_liquidity DESC, market_id DESC);
CREATE INDEX markets_state_newest ON markets (state, created_at DESC, market_id DESC);
CREATE INDEX markets_creator_newest ON markets (creator, created_at DESC, market_id DESC);

-- A row's slot never goes backwards: a stale (replayed, out-of-order) account state must not
-- overwrite a newer one.  Writers skip stale rows with `WHERE slot <= EXCLUDED.slot`; this
-- trigger makes the bad state impossible even for a writer that forgets.
CREATE FUNCTION forbid_slot_regression() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.slot < OLD.slot THEN
        RAISE EXCEPTION '%: slot may not move backwards (% -> %)', TG_TABLE_NAME, OLD.slot, NEW.slot
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER markets_slot_forward BEFORE UPDATE ON markets
    FOR EACH ROW EXECUTE FUNCTION forbid_slot_regression();

-- UserPosition (PDA ["position", market, user]).
CREATE TABLE positions (
    market_id       market_key NOT NULL REFERENCES markets (market_id),
    wallet          pubkey NOT NULL,
    address         pubkey NOT NULL UNIQUE,
    shares_yes      u64 NOT NULL,
    shares_no       u64 NOT NULL,
    total_invested  u64 NOT NULL,
    trades_count    u32 NOT NULL,
    last_trade_at   timestamptz NOT NULL,
    has_claimed     boolean NOT NULL DEFAULT false,
    claimed_amount  u64 NOT NULL DEFAULT 0,
    slot            slot_no NOT NULL,
    finalized       boolean NOT NULL DEFAULT false,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (market_id, wallet),
    CONSTRAINT positions_claim_consistent CHECK (has_claimed OR claimed_amount = 0)
);
CREATE INDEX positions_wallet ON positions (wallet, last_trade_at DESC, market_id DESC);
CREATE INDEX positions_holders ON positions (market_id, ((shares_yes + shares_no)) DESC, wallet)
    WHERE shares_yes > 0 OR shares_no > 0;
CREATE TRIGGER positions_slot_forward BEFORE UPDATE ON positions
    FOR EACH ROW EXECUTE FUNCTION forbid_slot_regression();

-- SharesBought / SharesSold events.  amount = cost incl. fees (buy) or net proceeds (sell).
-- (signature, instruction_index, event_index) identifies the event: replays are no-ops.
CREATE TABLE trades (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    market_id          market_key NOT NULL REFERENCES markets (market_id),
    wallet             pubkey NOT NULL,
    side               text NOT NULL CHECK (side IN ('buy', 'sell')),
    outcome            text NOT NULL CHECK (outcome IN ('YES', 'NO')),
    shares             u64 NOT NULL CHECK (shares > 0),
    amount             u64 NOT NULL,
    price_yes          price_e9 NOT NULL,
    block_time         timestamptz NOT NULL,
    slot               slot_no NOT NULL,
    signature          tx_signature NOT NULL,
    instruction_index  smallint NOT NULL CHECK (instruction_index >= 0),
    event_index        smallint NOT NULL CHECK (event_index >= 0),
    finalized          boolean NOT NULL DEFAULT false,
    indexed_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT trades_event_once UNIQUE (signature, instruction_index, event_index)
);
CREATE INDEX trades_market_time ON trades (market_id, block_time DESC, id DESC);
CREATE INDEX trades_wallet_time ON trades (wallet, block_time DESC, id DESC);

-- YES price points for candles: one per trade (same transaction as the trade), plus the
-- creation point and optional snapshots.  volume = the trade's amount (0 for non-trades).
CREATE TABLE price_points (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    market_id  market_key NOT NULL REFERENCES markets (market_id),
    at         timestamptz NOT NULL,
    price_yes  price_e9 NOT NULL,
    volume     u64 NOT NULL DEFAULT 0,
    source     text NOT NULL CHECK (source IN ('create', 'trade', 'snapshot')),
    trade_id   bigint UNIQUE REFERENCES trades (id) ON DELETE CASCADE,
    slot       slot_no NOT NULL,
    CONSTRAINT price_points_trade_link CHECK ((source = 'trade') = (trade_id IS NOT NULL))
);
CREATE INDEX price_points_market_at ON price_points (market_id, at, id) INCLUDE (price_yes, volume);

-- Indexer progress: one watermark per stream (e.g. 'live', 'backfill'), advanced in the same
-- transaction as the effects of the transactions it covers.
CREATE TABLE chain_cursors (
    stream      text PRIMARY KEY CHECK (stream ~ '^[a-z][a-z0-9_.-]{0,63}$'),
    slot        slot_no NOT NULL,
    signature   tx_signature,
    block_time  timestamptz,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Exactly-once processing: one row per applied zmart instruction/event.
CREATE TABLE processed_transactions (
    signature          tx_signature NOT NULL,
    instruction_index  smallint NOT NULL CHECK (instruction_index >= 0),
    event_index        smallint NOT NULL CHECK (event_index >= 0),
    slot               slot_no NOT NULL,
    block_time         timestamptz,
    finalized          boolean NOT NULL DEFAULT false,
    processed_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (signature, instruction_index, event_index)
);
CREATE INDEX processed_transactions_slot ON processed_transactions (slot);

-- Transactions the indexer could not decode or apply, kept for inspection and retry.
CREATE TABLE dead_letters (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    signature      tx_signature NOT NULL UNIQUE,
    slot           slot_no,
    reason         text NOT NULL CHECK (char_length(reason) BETWEEN 1 AND 4000),
    payload        jsonb,
    attempts       integer NOT NULL DEFAULT 1 CHECK (attempts >= 1),
    first_seen_at  timestamptz NOT NULL DEFAULT now(),
    last_seen_at   timestamptz NOT NULL DEFAULT now(),
    resolved_at    timestamptz
);
CREATE INDEX dead_letters_open ON dead_letters (first_seen_at) WHERE resolved_at IS NULL;
