-- The write side: intents that the transaction sender executes exactly once, and the vote
-- aggregator's per-market outcomes.
--
-- An intent is stored before anything is signed.  Its signed transaction (the exact bytes,
-- with the signature and the blockhash's last valid block height) is stored before it is
-- sent, so a restarted sender first asks the chain about that signature and rebroadcasts
-- the same bytes instead of signing again.  states:
--   pending  no live signed transaction: build, simulate, sign (the next step)
--   signed   `signed_tx` may be on the wire: confirm, rebroadcast, or prove it expired
--   landed   confirmed on chain without error (or its effect was found on chain)
--   failed   a deterministic program error (simulation or landed with an error); a human
--            may re-queue it (`zmartd intents retry ID`) after fixing the cause
CREATE TABLE intents (
    id                      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind                    text NOT NULL CHECK (kind IN (
                                'aggregate_proposal_votes', 'approve_proposal',
                                'finalize_market', 'cancel_market')),
    market_id               market_key NOT NULL,
    args                    jsonb NOT NULL DEFAULT '{}',
    idempotency_key         text NOT NULL UNIQUE CHECK (length(idempotency_key) BETWEEN 1 AND 200),
    state                   text NOT NULL DEFAULT 'pending'
                                CHECK (state IN ('pending', 'signed', 'landed', 'failed')),
    attempts                integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- the live signed transaction (state 'signed') and, after it, the one that landed
    signature               tx_signature,
    signed_tx               bytea,
    last_valid_block_height bigint,
    -- every signature ever signed for this intent, oldest first
    signatures              text[] NOT NULL DEFAULT '{}',
    sends                   integer NOT NULL DEFAULT 0 CHECK (sends >= 0),
    last_error              text,
    error_name              text,
    landed_slot             bigint,
    signed_at               timestamptz,
    landed_at               timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT intents_signed_has_tx CHECK (
        state <> 'signed' OR (signature IS NOT NULL AND signed_tx IS NOT NULL
                              AND last_valid_block_height IS NOT NULL))
);
CREATE INDEX intents_open ON intents (id) WHERE state IN ('pending', 'signed');
CREATE INDEX intents_market ON intents (market_id, id DESC);
CREATE INDEX intents_state ON intents (state, id DESC);

-- Which intent carried an aggregation's counts on chain.
ALTER TABLE vote_aggregations ADD COLUMN intent_id bigint REFERENCES intents (id);

-- The aggregator's last decision per market and kind (GET /v1/markets/{id}/votes).
CREATE TABLE aggregator_outcomes (
    market_id   market_key NOT NULL REFERENCES markets (market_id),
    kind        text NOT NULL CHECK (kind IN ('proposal', 'dispute')),
    at          timestamptz NOT NULL DEFAULT now(),
    outcome     text NOT NULL CHECK (length(outcome) BETWEEN 1 AND 64),
    detail      text NOT NULL DEFAULT '',
    yes_count   bigint NOT NULL CHECK (yes_count >= 0),
    no_count    bigint NOT NULL CHECK (no_count >= 0),
    aggregation_id bigint REFERENCES vote_aggregations (id),
    intent_id   bigint REFERENCES intents (id),
    PRIMARY KEY (market_id, kind)
);

-- The tally reads (market_id, vote, source) of every vote of the markets it counts; with
-- these covering indexes it is an index-only scan.
CREATE INDEX proposal_votes_tally ON proposal_votes (market_id) INCLUDE (vote, source, excluded);
CREATE INDEX dispute_votes_tally ON dispute_votes (market_id) INCLUDE (vote, source, excluded);
