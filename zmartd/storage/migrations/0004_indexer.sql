-- What the chain indexer records beside the mirror tables of 0001 (PROGRAM.md §5, §8):
-- every applied zmart event, failed transactions, per-trade fees and prices, the global
-- config, and the durable inbox that webhook deliveries are acknowledged from.
--
-- None of these tables has a foreign key to `markets`: they are logs keyed like
-- processed_transactions, so deleting or re-deriving a market never has to touch them.

-- Every zmart-core event of a successful transaction, decoded (claims, liquidity
-- withdrawals, config changes, aggregations, ... as well as trades and votes).  `data` is
-- the event's fields as JSON (pubkeys base58, byte arrays hex, u64 as numbers).
CREATE TABLE chain_events (
    signature          tx_signature NOT NULL,
    instruction_index  smallint NOT NULL CHECK (instruction_index >= 0),
    event_index        smallint NOT NULL CHECK (event_index >= 0),
    slot               slot_no NOT NULL,
    block_time         timestamptz,
    name               text NOT NULL CHECK (name ~ '^[A-Z][A-Za-z]{1,63}$'),
    market_id          market_key,
    wallet             pubkey,
    data               jsonb NOT NULL,
    finalized          boolean NOT NULL DEFAULT false,
    PRIMARY KEY (signature, instruction_index, event_index)
);
CREATE INDEX chain_events_market ON chain_events (market_id, slot DESC) WHERE market_id IS NOT NULL;
CREATE INDEX chain_events_name ON chain_events (name, slot DESC);
CREATE INDEX chain_events_slot ON chain_events (slot);

-- Transactions that invoked zmart-core and failed (meta.err): no effects, kept for error
-- analytics (e.g. every sell on the deployed program, PROGRAM.md §11.1).
CREATE TABLE failed_transactions (
    signature                 tx_signature PRIMARY KEY,
    slot                      slot_no NOT NULL,
    block_time                timestamptz,
    err                       jsonb NOT NULL,
    instructions              text[] NOT NULL,
    failed_instruction_index  smallint,
    error_code                integer,
    error_name                text,
    signer                    pubkey
);
CREATE INDEX failed_transactions_slot ON failed_transactions (slot);
CREATE INDEX failed_transactions_error ON failed_transactions (error_name, slot DESC);

-- Per-trade numbers the trades table does not carry: the YES price before the trade and
-- the fee split (PROGRAM.md §9.6) with the bps that were in force.
CREATE TABLE trade_fees (
    trade_id      bigint PRIMARY KEY REFERENCES trades (id) ON DELETE CASCADE,
    price_before  price_e9 NOT NULL,
    -- buy: the pre-fee LMSR cost; sell: the gross proceeds
    base_amount   u64 NOT NULL,
    protocol_fee  u64 NOT NULL,
    resolver_fee  u64 NOT NULL,
    lp_fee        u64 NOT NULL
);

-- The GlobalConfig account (one per program id), from account data.
CREATE TABLE global_config (
    address                      pubkey PRIMARY KEY,
    admin                        pubkey NOT NULL,
    backend_authority            pubkey NOT NULL,
    protocol_fee_wallet          pubkey NOT NULL,
    protocol_fee_bps             integer NOT NULL CHECK (protocol_fee_bps BETWEEN 0 AND 65535),
    resolver_reward_bps          integer NOT NULL CHECK (resolver_reward_bps BETWEEN 0 AND 65535),
    liquidity_provider_fee_bps   integer NOT NULL
                                 CHECK (liquidity_provider_fee_bps BETWEEN 0 AND 65535),
    proposal_approval_threshold  integer NOT NULL,
    dispute_success_threshold    integer NOT NULL,
    min_resolution_delay         bigint NOT NULL,
    dispute_period               bigint NOT NULL,
    is_paused                    boolean NOT NULL,
    slot                         slot_no NOT NULL,
    updated_at                   timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER global_config_slot_forward BEFORE UPDATE ON global_config
    FOR EACH ROW EXECUTE FUNCTION forbid_slot_regression();

-- Webhook deliveries, stored before the HTTP 200 so that an acknowledged delivery is never
-- lost; the indexer deletes a row in the same transaction that applies it.  `body` is one
-- raw transaction element (getTransaction json); NULL = only the signature is known
-- (enhanced webhooks carry no logs), so the indexer fetches the transaction.
CREATE TABLE webhook_inbox (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    signature    tx_signature NOT NULL,
    slot         slot_no,
    body         jsonb,
    received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_inbox_signature ON webhook_inbox (signature);
