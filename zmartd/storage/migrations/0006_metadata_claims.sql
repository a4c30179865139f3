-- Metadata belongs to the on-chain creator (an attacker's probe: a wallet registered
-- metadata for a market id that was not indexed yet, and the real creator was then shown
-- the squatter's title and refused 403 forever).
--
-- market_metadata now only holds the metadata of indexed markets, registered by their
-- creator. Registrations for a market id the indexer has not seen yet are *claims*, one
-- per wallet, in market_metadata_claims: none blocks another. When the indexer first
-- writes a market, its creator's claim (if any) becomes its metadata and every claim on
-- the id is dropped. Reads keep joining market_metadata on market_id alone.

CREATE TABLE market_metadata_claims (LIKE market_metadata INCLUDING DEFAULTS INCLUDING CONSTRAINTS
                                     EXCLUDING GENERATED);
ALTER TABLE market_metadata_claims DROP COLUMN search;
ALTER TABLE market_metadata_claims ADD PRIMARY KEY (market_id, creator);

-- registrations stored for ids not indexed yet become claims
INSERT INTO market_metadata_claims (market_id, creator, title, description, category, tags,
                                    image_url, resolution_source, end_time, created_at,
                                    updated_at)
SELECT md.market_id, md.creator, md.title, md.description, md.category, md.tags,
       md.image_url, md.resolution_source, md.end_time, md.created_at, md.updated_at
  FROM market_metadata md
 WHERE NOT EXISTS (SELECT 1 FROM markets m WHERE m.market_id = md.market_id);
DELETE FROM market_metadata md
 WHERE NOT EXISTS (SELECT 1 FROM markets m WHERE m.market_id = md.market_id);
-- registrations by someone else than an indexed market's creator are dropped
DELETE FROM market_metadata md
 USING markets m
 WHERE m.market_id = md.market_id AND m.creator <> md.creator;

CREATE FUNCTION market_metadata_attach_claim() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO market_metadata (market_id, creator, title, description, category, tags,
                                 image_url, resolution_source, end_time, created_at,
                                 updated_at)
    SELECT c.market_id, c.creator, c.title, c.description, c.category, c.tags,
           c.image_url, c.resolution_source, c.end_time, c.created_at, c.updated_at
      FROM market_metadata_claims c
     WHERE c.market_id = NEW.market_id AND c.creator = NEW.creator
    ON CONFLICT (market_id) DO NOTHING;
    DELETE FROM market_metadata_claims WHERE market_id = NEW.market_id;
    RETURN NULL;
END
$$;

-- a market's creator never changes, so its first write is the only one that matters
CREATE TRIGGER markets_attach_metadata_claim
    AFTER INSERT ON markets
    FOR EACH ROW EXECUTE FUNCTION market_metadata_attach_claim();
