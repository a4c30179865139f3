-- Off-chain votes carry an eligibility verdict (an attacker's probe: 12 fresh keypairs
-- with 0 SOL, from one address, turned a proposal's tally from 3 votes / 66.7 % likes to
-- 15 votes / 13.3 %, past min_votes). The API decides at vote time (zmartd/api/handlers/
-- votes.py); an excluded vote is kept, with its reason, and never counted: not in tallies,
-- not in aggregations. client_ip is the address the vote came from (per-address limit).

ALTER TABLE proposal_votes
    ADD COLUMN excluded  text CHECK (excluded IN ('no_history', 'address_limit')),
    ADD COLUMN client_ip inet;
ALTER TABLE dispute_votes
    ADD COLUMN excluded  text CHECK (excluded IN ('no_history', 'address_limit')),
    ADD COLUMN client_ip inet;
ALTER TABLE proposal_votes ADD CONSTRAINT proposal_votes_onchain_counted
    CHECK (source = 'offchain' OR excluded IS NULL);
ALTER TABLE dispute_votes ADD CONSTRAINT dispute_votes_onchain_counted
    CHECK (source = 'offchain' OR excluded IS NULL);
CREATE INDEX proposal_votes_address ON proposal_votes (market_id, client_ip)
    WHERE client_ip IS NOT NULL;
CREATE INDEX dispute_votes_address ON dispute_votes (market_id, client_ip)
    WHERE client_ip IS NOT NULL;
