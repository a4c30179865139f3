"""Everything that talks to PostgreSQL.  SQL lives only in this package.

* :mod:`.database` -- the asyncpg pool behind trio-asyncio;
* :mod:`.embedded` -- the embedded server (pgserver) used without a DSN;
* :mod:`.actor` -- the supervised actor that owns both.
"""
