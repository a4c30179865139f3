"""The rules for people's text: display names and discussion posts.

* Stored text is NFKC-normalised, so compatibility forms (full-width letters, ligatures,
  circled digits) are stored as the letters they display as.
* Text that shows nothing (only whitespace, zero-width and other format characters) is
  refused, like an empty one.
* Display names are unique by their *skeleton* (:func:`name_key`), not by their letters:
  ``\\u0410lice`` (a Cyrillic A), ``alice`` with a zero-width joiner and ``ALICE`` are one
  name. The skeleton follows UTS #39: after case folding, each character becomes its
  ASCII prototype from Unicode's confusables data (the ``confusable-homoglyphs`` package
  ships it), accents and invisible characters are dropped.
"""

from __future__ import annotations

import unicodedata
from functools import cache
from typing import Final

from confusable_homoglyphs.confusables import confusables_data

__all__ = ["name_key", "normalize", "shows_something"]

#: ASCII characters UTS #39 also folds together ("1" and "|" look like "l", "0" like
#: "o"); applied after case folding, so "I" has already become "i"
_ASCII_PROTOTYPES: Final = {"0": "o", "1": "l", "|": "l"}
_INVISIBLE: Final = frozenset(("Cc", "Cf", "Zl", "Zp", "Mn", "Me", "Co", "Cn"))


def normalize(text: str) -> str:
    """The form text is stored in (NFKC)."""
    return unicodedata.normalize("NFKC", text)


def shows_something(text: str) -> bool:
    """Whether ``text`` has a character a reader can see."""
    return any(not ch.isspace() and unicodedata.category(ch) not in _INVISIBLE for ch in text)


@cache
def _prototype(ch: str) -> str:
    if ch.isascii():
        return _ASCII_PROTOTYPES.get(ch, ch)
    for glyph in confusables_data.get(ch, ()):
        candidate: str = glyph["c"]
        if candidate.isascii() and candidate.isprintable():
            return _ASCII_PROTOTYPES.get(candidate, candidate)
    return ch


def name_key(name: str) -> str:
    """The uniqueness key of a display name: its confusable skeleton, case-folded,
    without invisible characters and with runs of spaces made one."""
    chars = []
    for ch in unicodedata.normalize("NFKD", normalize(name).casefold()):
        if unicodedata.category(ch) in _INVISIBLE:
            continue
        chars.append(" " if ch.isspace() else _prototype(ch).casefold())
    return " ".join("".join(chars).split())
