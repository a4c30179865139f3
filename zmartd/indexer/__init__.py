"""The chain listener and indexer: makes PostgreSQL a faithful, fresh mirror of
zmart-core (PubSub + webhooks + backfill → one exactly-once pipeline)."""
