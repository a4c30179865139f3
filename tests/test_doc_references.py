"""Guardrail: comments and documents point inside the repository.

The program's interface is described in ``docs/chain.md``; code used to cite
a ``PROGRAM.md`` and ``../shared/...`` files that are not part of the project,
so a reader of the repository alone could not follow them.  These tests keep
it that way and check that every ``docs/chain.md §N`` citation names a section
that exists.

SQL migrations are exempt (they are checksummed: editing an applied one would
break deployed databases, so their old comments stay), and so are the vendored
fixtures under ``tests/fixtures``.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHAIN_DOC = ROOT / "docs" / "chain.md"

#: Text that points outside the repository.
FORBIDDEN = ("PROGRAM.md", "../shared")

#: Paths (relative to the root, POSIX) whose text is not ours to change.
EXEMPT_PREFIXES = ("zmartd/storage/migrations/", "tests/fixtures/")

#: This file names the forbidden strings in order to look for them.
SELF = Path(__file__).resolve().relative_to(ROOT).as_posix()

_CITATION = re.compile(r"docs/chain\.md\s+§(\d+(?:\.\d+)?)")
_ANCHOR = re.compile(r'<a id="s(\d+(?:\.\d+)?)"></a>')


def _source_files() -> list[str]:
    """Tracked ``.py``/``.md`` files; every such file when not in a git checkout."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--", "*.py", "*.md"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout.decode()
        files = [f for f in out.split("\0") if f]
    except (OSError, subprocess.CalledProcessError):
        files = [
            p.relative_to(ROOT).as_posix()
            for pattern in ("*.py", "*.md")
            for p in ROOT.rglob(pattern)
            if not {".venv", ".git", "build"} & set(p.relative_to(ROOT).parts)
        ]
    assert files, "found no source files to check"
    return [f for f in files if not f.startswith(EXEMPT_PREFIXES) and f != SELF]


def test_no_reference_points_outside_the_repository() -> None:
    offenders = [
        f"{name}:{lineno}: {line.strip()}"
        for name in _source_files()
        for lineno, line in enumerate(
            (ROOT / name).read_text(encoding="utf-8").splitlines(), start=1
        )
        if any(s in line for s in FORBIDDEN)
    ]
    assert not offenders, "cite docs/chain.md instead of:\n" + "\n".join(offenders)


def test_every_chain_doc_citation_names_an_existing_section() -> None:
    sections = set(_ANCHOR.findall(CHAIN_DOC.read_text(encoding="utf-8")))
    assert {"4.16", "11.1", "14.4"} <= sections  # the anchors themselves are found
    dangling = [
        f"{name}: §{number}"
        for name in _source_files()
        for number in _CITATION.findall((ROOT / name).read_text(encoding="utf-8"))
        if number not in sections
    ]
    assert not dangling, "docs/chain.md has no such section:\n" + "\n".join(dangling)
