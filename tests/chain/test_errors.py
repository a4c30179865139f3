"""Error codes → names: the one table both the decoder and the chain double use."""

from __future__ import annotations

import json

from tests.conftest import FIXTURES
from zmartd.chain.errors import ANCHOR_ERRORS, from_logs, lookup


def test_program_codes_follow_the_current_numbering() -> None:
    layout = json.loads((FIXTURES.parent.parent / "zmartd/chain/spec/layout.json").read_text())
    for entry in layout["errors"]:
        err = lookup(entry["code"])
        assert err is not None and (err.name, err.msg) == (entry["name"], entry["msg"])
    unauthorized = lookup(6029)
    assert unauthorized is not None and unauthorized.name == "Unauthorized"  # 6028 in the stale IDL


def test_anchor_errors_carry_their_messages() -> None:
    for code, (name, msg) in ANCHOR_ERRORS.items():
        err = lookup(code)
        assert err is not None and err.source == "anchor"
        assert (err.name, err.msg) == (name, msg) and err.msg != err.name


def test_from_logs_finds_the_error_in_either_form() -> None:
    anchor = [
        "Program log: AnchorError thrown in x.rs:1. Error Code: SlippageExceeded. "
        "Error Number: 6015. Error Message: Slippage tolerance exceeded."
    ]
    assert from_logs(anchor).name == "SlippageExceeded"  # type: ignore[union-attr]
    runtime = ["Program 6s8b failed: custom program error: 0x178d"]
    assert from_logs(runtime).name == "Unauthorized"  # type: ignore[union-attr]
    unknown = from_logs(["Program x failed: custom program error: 0x2"])
    assert unknown is not None and (unknown.code, unknown.name) == (2, "Custom")
    assert from_logs(["Program log: nothing wrong"]) is None
