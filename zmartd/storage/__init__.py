"""Everything that talks to PostgreSQL.  SQL lives only in this package.

* :mod:`.database` -- the asyncpg pool behind trio-asyncio;
* :mod:`.embedded` -- the embedded server (pgserver's binaries) used without a DSN,
  :mod:`.pg_placement` -- where its cluster lives and as whom it runs;
* :mod:`.actor` -- the supervised actor that owns both.
"""
