"""Process-wide interpreter settings, applied once by every zmartd entry point.

Garbage collector thresholds.  CPython starts a young-generation collection
every 700 net container allocations.  Decoding one backfill page allocates
~50,000 containers (dicts and lists of ``getTransaction`` JSON, decoded
structs) that live until the page is written, so at 700 the collector ran
~60 times a page, promoted the live page to the old generation and kept
triggering full collections over it: measured with ``gc.callbacks``, 23 % of
the indexer's CPU during a backfill.  That bulk data (JSON documents, decoded
structs, rows) is acyclic and freed by reference counting, so collecting
rarely costs little memory: a young generation of 100,000 objects, a few MB
of cyclic garbage at most.
"""

from __future__ import annotations

import gc

__all__ = ["GC_THRESHOLDS", "tune_gc"]

#: (young, middle, old) -- see the module docstring
GC_THRESHOLDS = (100_000, 20, 10)


def tune_gc() -> None:
    """Apply :data:`GC_THRESHOLDS` (idempotent)."""
    gc.set_threshold(*GC_THRESHOLDS)
