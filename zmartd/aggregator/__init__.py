"""The vote aggregator: tallies votes in SQL and turns them into intents
(:mod:`.policy` the arithmetic, :mod:`.actor` the cycle)."""
