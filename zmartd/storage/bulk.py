"""Many rows as ONE JSON parameter, expanded by PostgreSQL.

The indexer writes a unit of up to a thousand transactions with a handful of
multi-row statements.  Passed as one array parameter per column, asyncpg
encodes every element on its own (an iterable check per element, u64 amounts
through ``numeric``'s text form): that was about a fifth of a backfill's
Python CPU, measured with py-spy.  msgspec encodes the same rows -- the
storage structs as they are -- into one JSON text in C, and
``json_to_recordset`` turns it back into typed columns on the server.
``json`` (not ``jsonb``) keeps each number's text, so u64 values arrive
exact as ``numeric``; datetimes travel as RFC 3339 with their offset (a
naive one is read in the session's time zone, which ``Database`` sets to UTC).

A statement selects ``FROM {recordset(1, COLUMNS)}`` and is called with
``rows_json(rows)`` for ``$1``.  Columns are matched to the JSON keys by name
(the struct field names); keys the column list does not name are ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

import asyncpg
import msgspec

__all__ = ["recordset", "rows_json", "write_newest"]

_encoder = msgspec.json.Encoder()


def rows_json(rows: Sequence[Any]) -> str:
    """``rows`` (msgspec structs, dicts, ...) as one JSON array text."""
    return _encoder.encode(rows).decode()


def recordset(
    param: int, columns: Mapping[str, str], *, alias: str = "x", ordinality: bool = False
) -> str:
    """A FROM item expanding JSON parameter ``$param`` into ``columns``
    (name → SQL type), in the rows' order; ``ordinality`` adds ``ord``
    (1, 2, ...) for statements that must keep that order explicitly."""
    definition = ", ".join(f"{name} {sql_type}" for name, sql_type in columns.items())
    if not ordinality:
        return f"json_to_recordset(${param}::json) AS {alias}({definition})"
    names = ", ".join(columns)
    return (
        f"ROWS FROM (json_to_recordset(${param}::json) AS ({definition})) "
        f"WITH ORDINALITY AS {alias}({names}, ord)"
    )


class _Slotted(Protocol):
    @property
    def slot(self) -> int: ...


S = TypeVar("S", bound=_Slotted)


async def write_newest(
    con: asyncpg.Connection, statement: str, states: Sequence[S], key: Callable[[S], Hashable]
) -> int:
    """Run an account upsert ``statement`` (``$1`` = the rows as JSON) with the newest
    state (highest slot) of each ``key``; returns the rows written.

    One row per key per statement (PostgreSQL refuses to update a row twice in one
    ``INSERT ... ON CONFLICT``); the statement's own ``WHERE slot <= EXCLUDED.slot``
    skips states older than the stored one, since account updates may arrive out of
    order (backfill next to the live feed).
    """
    latest: dict[Hashable, S] = {}
    for s in states:
        k = key(s)
        if k not in latest or latest[k].slot <= s.slot:
            latest[k] = s
    if not latest:
        return 0
    status: str = await con.execute(statement, rows_json(list(latest.values())))
    return int(status.rsplit(" ", 1)[-1])
