"""Wire value types and the one encoding rule for them, shared by the REST API's
validation and the views that the indexer publishes.

* :class:`U64` is an unsigned 64-bit on-chain quantity; :class:`Amount` a positive one.
* :func:`enc_hook` writes public keys and signatures as base58 text and U64 values as
  integers; views that must survive JavaScript's ``JSON.parse`` declare u64 fields as
  decimal strings (see :mod:`zmartd.model.views`).
"""

from __future__ import annotations

from typing import Any, Final

from solders.pubkey import Pubkey
from solders.signature import Signature

__all__ = ["U64", "U64_MAX", "Amount", "enc_hook"]

U64_MAX: Final = 2**64 - 1


class U64(int):
    """An unsigned 64-bit on-chain quantity (lamports, shares): 0..2^64-1.

    A class rather than ``Annotated[int, Meta(le=...)]`` because msgspec's
    bounds must fit an int64, and the chain's amounts are u64.  Decoded,
    encoded and documented by the hooks below; behaves as a plain ``int``.
    """

    minimum: int = 0


class Amount(U64):
    """A positive u64 amount (1..2^64-1): a trade or deposit of 0 is never meaningful."""

    minimum = 1


def enc_hook(obj: Any) -> Any:
    if isinstance(obj, Pubkey | Signature):
        return str(obj)
    if isinstance(obj, U64):
        return int(obj)
    raise NotImplementedError(f"cannot encode {type(obj).__name__}")
