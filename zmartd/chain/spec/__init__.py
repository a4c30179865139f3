"""The program's machine-readable interface (docs/chain.md is the prose half).

``layout.json`` is the source of truth for byte layouts, discriminators, PDA
seeds and error codes; the codec is driven by it and the tests check the
codec against it.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

__all__ = ["load_layout"]


@cache
def load_layout() -> dict[str, Any]:
    """The parsed ``layout.json`` (read once per process)."""
    text = resources.files(__package__).joinpath("layout.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data
