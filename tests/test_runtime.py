"""Process-wide interpreter settings (zmartd/runtime.py)."""

from __future__ import annotations

import gc

import pytest

from tests.conftest import ROOT
from zmartd import cli
from zmartd.runtime import GC_THRESHOLDS


def test_the_cli_entry_point_tunes_the_collector(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, ...]] = []
    monkeypatch.setattr(gc, "set_threshold", lambda *t: calls.append(t))
    assert cli.main(["check-config", "--config", str(ROOT / "zmartd.toml.example")]) == 0
    assert calls == [GC_THRESHOLDS]
    # young collections far apart: a backfill page (~50,000 containers) fits
    assert GC_THRESHOLDS[0] >= 50_000
