"""Request parsing: bodies, queries, solders types, bounds, depth, error shapes."""

from __future__ import annotations

from typing import Annotated

import msgspec
import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature
from werkzeug.datastructures import MultiDict

from zmartd.api.pagination import PageQuery
from zmartd.api.problems import KINDS, Problem, from_exception, type_uri
from zmartd.api.validation import (
    U64,
    Amount,
    Body,
    Query,
    check_json_depth,
    decode_body,
    decode_path,
    decode_query,
    encode,
)
from zmartd.services import ServiceUnavailable
from zmartd.storage.records import InvalidArgument, InvalidCursor, NotFound, NotPermitted

JSON = "application/json"


class Trade(Body, frozen=True, kw_only=True):
    wallet: Pubkey
    amount: Amount
    fee: U64 = U64(0)
    memo: Annotated[str, msgspec.Meta(max_length=10)] | None = None


class Filters(Query, frozen=True, kw_only=True):
    tag: list[str] = []
    open: bool = False
    limit: Annotated[int, msgspec.Meta(ge=1, le=5)] = 2


WALLET = str(Keypair().pubkey())


def problem(fn: object, *args: object, **kw: object) -> Problem:
    with pytest.raises(Problem) as info:
        fn(*args, **kw)  # type: ignore[operator]
    return info.value


def test_body_decodes_solders_types_and_u64() -> None:
    t = decode_body(
        msgspec.json.encode({"wallet": WALLET, "amount": 5}), Trade, content_type=JSON, max_depth=8
    )
    assert t.wallet == Pubkey.from_string(WALLET) and t.amount == 5
    big = decode_body(
        msgspec.json.encode({"wallet": WALLET, "amount": 2**64 - 1}),
        Trade,
        content_type=JSON,
        max_depth=8,
    )
    assert big.amount == 2**64 - 1 and isinstance(big.amount, Amount)
    assert msgspec.json.decode(encode(t)) == {"wallet": WALLET, "amount": 5, "fee": 0, "memo": None}


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"wallet": "abc", "amount": 1}, "wallet", "expected a base58 public key (32 bytes)"),
        ({"wallet": 7, "amount": 1}, "wallet", "expected a base58 public key string"),
        ({"wallet": WALLET, "amount": 0}, "amount", "expected an integer 1..18446744073709551615"),
        (
            {"wallet": WALLET, "amount": 2**64},
            "amount",
            "expected an integer 1..18446744073709551615",
        ),
        (
            {"wallet": WALLET, "amount": 1, "fee": -1},
            "fee",
            "expected an integer 0..18446744073709551615",
        ),
        (
            {"wallet": WALLET, "amount": "1"},
            "amount",
            "expected an integer 1..18446744073709551615",
        ),
        (
            {"wallet": WALLET, "amount": True},
            "amount",
            "expected an integer 1..18446744073709551615",
        ),
        (
            {"wallet": WALLET, "amount": 1, "memo": "x" * 11},
            "memo",
            "Expected `str` of length <= 10",
        ),
        (
            {"wallet": WALLET, "amount": 1, "amout": 1},
            "amout",
            "Object contains unknown field `amout`",
        ),
        ({"amount": 1}, "wallet", "Object missing required field `wallet`"),
        ([1], "", "Expected `object`, got `array`"),
    ],
)
def test_invalid_bodies_name_the_field(body: object, field: str, message: str) -> None:
    p = problem(decode_body, msgspec.json.encode(body), Trade, content_type=JSON, max_depth=8)
    assert p.status == 422 and p.kind.type == type_uri("validation")
    assert p.errors is not None and len(p.errors) == 1
    assert (p.errors[0].field, p.errors[0].message) == (field, message)
    doc = msgspec.json.decode(p.body("/x"))
    assert doc["errors"] == [{"field": field, "message": message}] and doc["instance"] == "/x"


def test_malformed_bodies() -> None:
    assert problem(decode_body, b"{", Trade, content_type=JSON, max_depth=8).status == 400
    assert problem(decode_body, b"  ", Trade, content_type=JSON, max_depth=8).status == 422
    p = problem(decode_body, b"{}", Trade, content_type="text/plain", max_depth=8)
    assert p.status == 415
    decode_body(
        msgspec.json.encode({"wallet": WALLET, "amount": 1}),
        Trade,
        content_type="application/merge-patch+json; charset=utf-8",
        max_depth=8,
    )


def test_json_depth_counts_only_structure() -> None:
    check_json_depth(b'{"a": "[[[[[[[[[[[[", "b": [[1]]}', 3)
    check_json_depth(b'{"a": "\\"[[[[[[[["}', 1)
    with pytest.raises(Problem) as info:
        check_json_depth(b"[" * 5 + b"]" * 5, 4)
    assert info.value.status == 400 and "4 levels" in (info.value.detail or "")
    check_json_depth(b"[" * 4 + b"]" * 4, 4)


def test_query_conversion_repeats_and_unknowns() -> None:
    q = decode_query(
        MultiDict([("tag", "a"), ("tag", "b"), ("open", "true"), ("limit", "3")]), Filters
    )
    assert (q.tag, q.open, q.limit) == (["a", "b"], True, 3)
    assert decode_query(MultiDict(), Filters) == Filters()
    p = problem(decode_query, MultiDict([("limit", "1"), ("limit", "2")]), Filters)
    assert p.errors is not None and p.errors[0].field == "limit"
    p = problem(decode_query, MultiDict([("limit", "9")]), Filters)
    assert p.errors is not None and p.errors[0].field == "limit"
    p = problem(decode_query, MultiDict([("nope", "1")]), Filters)
    assert p.errors is not None and p.errors[0].field == "nope"
    page = decode_query(MultiDict([("cursor", "abc_-1"), ("limit", "100")]), PageQuery)
    assert (page.cursor, page.limit) == ("abc_-1", 100)
    assert problem(decode_query, MultiDict([("limit", "101")]), PageQuery).status == 422
    assert problem(decode_query, MultiDict([("cursor", "a b")]), PageQuery).status == 422


def test_path_conversion() -> None:
    class P(Query, frozen=True):
        wallet: Pubkey
        amount: Amount = Amount(1)

    assert decode_path({"wallet": WALLET}, P).wallet == Pubkey.from_string(WALLET)
    assert decode_path({"wallet": WALLET, "amount": str(2**64 - 1)}, P).amount == 2**64 - 1
    assert problem(decode_path, {"wallet": WALLET, "amount": "0"}, P).status == 422
    assert problem(decode_path, {"wallet": WALLET, "amount": "-1"}, P).status == 422
    p = problem(decode_path, {"wallet": "0OIl"}, P)
    assert p.errors is not None and p.errors[0].field == "wallet"


def test_signature_type() -> None:
    class S(Body, frozen=True):
        sig: Signature

    sig = Keypair().sign_message(b"m")
    assert msgspec.json.decode(
        encode(
            decode_body(msgspec.json.encode({"sig": str(sig)}), S, content_type=JSON, max_depth=3)
        )
    ) == {"sig": str(sig)}
    p = problem(decode_body, b'{"sig": "abc"}', S, content_type=JSON, max_depth=3)
    assert p.errors is not None and "64 bytes" in p.errors[0].message


def test_exceptions_map_to_problems() -> None:
    cases = {
        ServiceUnavailable("database"): ("unavailable", 503),
        OSError("connection reset"): ("unavailable", 503),
        InvalidCursor("bad"): ("malformed", 400),
        InvalidArgument("bad"): ("validation", 422),
        NotFound("no market"): ("not-found", 404),
        NotPermitted("already exists"): ("conflict", 409),
    }
    for exc, (slug, status) in cases.items():
        p = from_exception(exc)
        assert p is not None and (p.kind.slug, p.status) == (slug, status), exc
    unavailable = from_exception(ServiceUnavailable("database"))
    assert unavailable is not None and unavailable.headers["Retry-After"] == "5"
    cursor = from_exception(InvalidCursor("x"))
    assert cursor is not None and cursor.detail is not None and "cursor" in cursor.detail
    assert from_exception(ZeroDivisionError()) is None
    assert len({k.type for k in KINDS.values()}) == len(KINDS)
    with pytest.raises(ValueError, match="unknown problem kind"):
        Problem("teapot")
