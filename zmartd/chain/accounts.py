"""Decode and encode the four zmart-core account types (docs/chain.md §3).

What is accepted after the Borsh payload, and why:

* A real account's data has its *allocated* length (206 / 488 / 182 / 83
  bytes), which can exceed the payload: GlobalConfig wastes 8 bytes, and a
  MarketAccount's payload is 473..483 bytes depending on its three ``Option``
  fields.  Anchor writes the payload from offset 0 and never clears the
  tail; since no instruction ever turns a ``Some`` back into ``None``, the
  tail of every account the program wrote is all zero.
* Anchor itself (``AccountDeserialize``) ignores whatever follows the
  payload.  We are stricter by default: data longer than the allocated
  length, or a non-zero byte in the tail, raises :class:`DecodeError`.  A
  non-zero tail cannot come from this program, so it means we are reading
  the account with the wrong layout (e.g. an ``Option`` tag mis-read, or a
  different program version) — exactly the silent mis-decode we must not
  make.  ``lenient=True`` reproduces Anchor's acceptance (tail ignored) for
  forensic tools.
* Shorter data down to the bare payload is accepted (it is what a test
  double or a hand-made fixture naturally produces); shorter than the
  payload is a truncation error.

:func:`encode_account` produces the allocated-length image with a zero tail
(``pad=False`` gives the bare payload).
"""

from __future__ import annotations

from typing import Any, TypeVar, cast

from solders.pubkey import Pubkey

from zmartd.chain.borsh import DecodeError, StructCodec, b58encode
from zmartd.chain.spec import load_layout
from zmartd.chain.types import (
    ACCOUNT_TYPES,
    Account,
    GlobalConfig,
    MarketAccount,
    MarketState,
    UserPosition,
    VoteRecord,
    VoteType,
)

__all__ = [
    "ACCOUNT_CODECS",
    "ALLOCATED_LEN",
    "RENT_EXEMPT_LAMPORTS",
    "account_type_of",
    "decode_account",
    "decode_account_as",
    "encode_account",
    "gpa_filters",
    "market_filters",
    "position_filters",
    "vote_record_filters",
]

A = TypeVar("A", GlobalConfig, MarketAccount, UserPosition, VoteRecord)

_ENUMS = {"MarketState": MarketState, "VoteType": VoteType}


def _build() -> tuple[
    dict[type[Any], StructCodec[Any]], dict[type[Any], int], dict[type[Any], int]
]:
    by_name = {cls.__name__: cls for cls in ACCOUNT_TYPES}
    codecs: dict[type[Any], StructCodec[Any]] = {}
    alloc: dict[type[Any], int] = {}
    rent: dict[type[Any], int] = {}
    for entry in load_layout()["accounts"]:
        cls = by_name[entry["name"]]
        codecs[cls] = StructCodec(
            kind="account",
            name=entry["name"],
            cls=cls,
            discriminator=bytes.fromhex(entry["discriminator_hex"]),
            fields=[(f["name"], f["type"]) for f in entry["fields"]],
            enums=_ENUMS,
        )
        alloc[cls] = int(entry["allocated_data_len"])
        rent[cls] = int(entry["rent_exempt_lamports"])
    if set(codecs) != set(ACCOUNT_TYPES):
        raise RuntimeError("layout.json and zmartd.chain.types disagree on the account types")
    return codecs, alloc, rent


ACCOUNT_CODECS, ALLOCATED_LEN, RENT_EXEMPT_LAMPORTS = _build()
_BY_DISCRIMINATOR: dict[bytes, StructCodec[Any]] = {
    c.discriminator: c for c in ACCOUNT_CODECS.values()
}


def account_type_of(data: bytes | memoryview) -> type[Account] | None:
    """The account class named by the first 8 bytes, or ``None``."""
    codec = _BY_DISCRIMINATOR.get(bytes(data[:8]))
    return None if codec is None else cast(type[Account], codec.cls)


def _decode_with(codec: StructCodec[Any], data: bytes | memoryview, lenient: bool) -> Any:
    value, end = codec.decode(data)
    if lenient:
        return value
    allocated = ALLOCATED_LEN[codec.cls]
    if len(data) > allocated:
        raise DecodeError(
            codec.name,
            None,
            allocated,
            f"data is {len(data)} bytes, longer than the allocated {allocated}",
        )
    tail = bytes(data[end:])
    if tail.strip(b"\x00"):
        first = end + next(i for i, b in enumerate(tail) if b)
        raise DecodeError(
            codec.name,
            None,
            first,
            f"non-zero byte {data[first]} in the unused tail after the {end}-byte payload "
            "(the program never writes there: wrong layout?)",
        )
    return value


def decode_account(data: bytes | memoryview, *, lenient: bool = False) -> Account:
    """Decode any zmart-core account, choosing the type by discriminator."""
    codec = _BY_DISCRIMINATOR.get(bytes(data[:8]))
    if codec is None:
        raise DecodeError(
            "Account",
            "discriminator",
            0,
            f"unknown account discriminator {bytes(data[:8]).hex()!r}",
        )
    return cast(Account, _decode_with(codec, data, lenient))


def decode_account_as(cls: type[A], data: bytes | memoryview, *, lenient: bool = False) -> A:
    """Decode data that must be a ``cls`` account (wrong discriminator → DecodeError)."""
    return cast(A, _decode_with(ACCOUNT_CODECS[cls], data, lenient))


def encode_account(value: Account, *, pad: bool = True) -> bytes:
    """Account data as the program writes it: discriminator, Borsh payload and,
    with ``pad`` (default), a zero tail up to the allocated length."""
    codec = ACCOUNT_CODECS[type(value)]
    payload = codec.encode(value)
    if not pad:
        return payload
    return payload.ljust(ALLOCATED_LEN[type(value)], b"\x00")


# ------------------------------------------------------------ getProgramAccounts

Filter = dict[str, Any]


def _memcmp(offset: int, raw: bytes) -> Filter:
    return {"memcmp": {"offset": offset, "bytes": b58encode(raw)}}


def gpa_filters(cls: type[Account]) -> list[Filter]:
    """``getProgramAccounts`` filters that select exactly the accounts of one
    type: ``dataSize`` (allocated length) and the discriminator at offset 0."""
    codec = ACCOUNT_CODECS[cls]
    return [{"dataSize": ALLOCATED_LEN[cls]}, _memcmp(0, codec.discriminator)]


def _fixed_offset(cls: type[Account], field: str) -> int:
    """Offset of a field that precedes every Option (usable in memcmp)."""
    for fl in ACCOUNT_CODECS[cls].field_layouts():
        if fl.name == field:
            if fl.offset_min != fl.offset_max:
                raise ValueError(f"{cls.__name__}.{field} has no fixed offset")
            return fl.offset_min
    raise KeyError(field)


def market_filters(
    *, state: MarketState | None = None, creator: Pubkey | None = None
) -> list[Filter]:
    """Market accounts, optionally only those in ``state`` (byte at offset 72)
    and/or created by ``creator`` (offset 40)."""
    out = gpa_filters(MarketAccount)
    if state is not None:
        out.append(_memcmp(_fixed_offset(MarketAccount, "state"), bytes([MarketState(state)])))
    if creator is not None:
        out.append(_memcmp(_fixed_offset(MarketAccount, "creator"), bytes(creator)))
    return out


def position_filters(*, market: Pubkey | None = None, user: Pubkey | None = None) -> list[Filter]:
    """UserPosition accounts, optionally of one market (offset 8) / user (offset 40)."""
    out = gpa_filters(UserPosition)
    if market is not None:
        out.append(_memcmp(_fixed_offset(UserPosition, "market"), bytes(market)))
    if user is not None:
        out.append(_memcmp(_fixed_offset(UserPosition, "user"), bytes(user)))
    return out


def vote_record_filters(
    *,
    market: Pubkey | None = None,
    user: Pubkey | None = None,
    vote_type: VoteType | None = None,
) -> list[Filter]:
    """VoteRecord accounts, optionally by market (8), user (40), vote type (72)."""
    out = gpa_filters(VoteRecord)
    if market is not None:
        out.append(_memcmp(_fixed_offset(VoteRecord, "market"), bytes(market)))
    if user is not None:
        out.append(_memcmp(_fixed_offset(VoteRecord, "user"), bytes(user)))
    if vote_type is not None:
        out.append(_memcmp(_fixed_offset(VoteRecord, "vote_type"), bytes([VoteType(vote_type)])))
    return out
