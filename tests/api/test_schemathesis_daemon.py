"""schemathesis against zmartd running as a process, the way a user tries it.

``zmartd`` starts as a subprocess from ``zmartd.toml.example`` (free ports,
its devchain and demo markets, a fresh database on the test PostgreSQL),
the test signs in with Sign-In-With-Solana, and schemathesis' command line
runs every phase (examples, coverage, fuzzing, stateful) with every check,
authenticated with that session (``schemathesis_hooks.py``), twice: with a
fixed seed, then with a random one that a failure prints.  Goal: no
failure, no error (a request timing out is one), at least
:data:`MIN_CASES` cases in all.  This is the run that found the keep-alive
hang (requests that never got an answer), schema-valid values rejected and
``OPTIONS`` advertising methods the schema does not document; the
in-process test (``test_schemathesis.py``) seeds richer data instead.

schemathesis' settings, and why (written to ``schemathesis.toml``):

* ``positive_data_acceptance`` also expects 400: the answer to a request
  that is valid by the schema but not by what a schema cannot state -- a
  cursor the server did not issue, base58 of a key's shape that decodes to
  no key, ``from`` after ``to``.  422 stays a failure there: a 422 means
  "your request breaks the documented schema", which such a request does
  not.
* Stateful links are the ones the document declares, not inferred from
  parameter names (``market_id`` of registered metadata is not a market
  that ``GET /v1/markets/{market_id}`` serves until the chain has it).
* One worker: two workers on this version tripped over a thread-unsafe
  cache in hypothesis' lambda descriptions (a ``KeyError`` inside
  schemathesis, not an answer of zmartd).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.api.siws import sign_in
from tests.conftest import ADMIN_DSN, ROOT, _with_database
from tests.test_e2e_daemon import Daemon, example_config, free_port

pytestmark = pytest.mark.slow

FIXED_SEED = 1312
#: cases per operation and phase, per run (two runs)
MAX_EXAMPLES = 40
MIN_CASES = 3000
PHASES = "examples,coverage,fuzzing,stateful"
SETTINGS = """\
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"]

[phases.stateful.inference]
algorithms = []
"""


@pytest.fixture
def database() -> Iterator[str]:
    """A fresh database for the daemon (it applies the migrations itself)."""
    name = f"zmartd_st_{os.getpid()}_{secrets.token_hex(4)}"

    async def admin(sql: str) -> None:
        con = await asyncpg.connect(ADMIN_DSN, timeout=10)
        try:
            await con.execute(sql)
        finally:
            await con.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield _with_database(ADMIN_DSN, name)
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def daemon(tmp_path: Path, database: str) -> Iterator[Daemon]:
    port = free_port()
    data_dir = tmp_path / "var"
    data_dir.mkdir()
    config = example_config(tmp_path, port, data_dir)
    text = config.read_text()
    for pattern, value in [
        (r'^public_url = ".*"$', f'public_url = "http://127.0.0.1:{port}"'),
        (r'^dsn = ""$', f'dsn = "{database}"'),
        (r"^embedded = true$", "embedded = false"),
        # thousands of requests from one address, by design
        (r"^((reads|writes|auth)_(ip|wallet)_(per_minute|burst)) = \d+$", r"\1 = 1000000"),
    ]:
        text, n = re.subn(pattern, value, text, count=1 if "dsn" in pattern else 0, flags=re.M)
        assert n, pattern
    config.write_text(text)
    d = Daemon(config, port)
    try:
        d.wait_ready(timeout=60.0)
        yield d
    finally:
        d.stop()


def _schemathesis(d: Daemon, token: str, seed: int, workdir: Path) -> dict[str, Any]:
    settings = workdir / "schemathesis.toml"
    settings.write_text(SETTINGS)
    report = workdir / f"run-{seed}.json"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "ZMARTD_ST_URL": d.base,
        "ZMARTD_ST_TOKEN": token,
        "SCHEMATHESIS_HOOKS": "tests.api.schemathesis_hooks",
    }
    command = [
        str(Path(sys.executable).with_name("st")),
        "--config-file",
        str(settings),
        "run",
        f"{d.base}/openapi.json",
        "--phases",
        PHASES,
        "--checks",
        "all",
        "--seed",
        str(seed),
        "--max-examples",
        str(MAX_EXAMPLES),
        "--workers",
        "1",
        "--request-timeout",
        "10",
        "--generation-database",
        "none",
        "--no-color",
        "--report",
        "json",
        "--report-json-path",
        str(report),
    ]
    out = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
    summary: dict[str, Any] = json.loads(report.read_text()) if report.exists() else {}
    ok = (
        out.returncode == 0
        and summary.get("complete") is True
        and not summary.get("failures")
        and not summary.get("errors")
    )
    assert ok, (
        f"schemathesis seed {seed} (re-run with st ... --seed {seed}):\n"
        f"{out.stdout[-20000:]}\n{out.stderr[-3000:]}\n--- zmartd ---\n"
        f"{d.logs()[-5000:]}"
    )
    return summary


def test_schemathesis_against_the_running_daemon(daemon: Daemon, tmp_path: Path) -> None:
    token = sign_in(daemon.base)
    auth = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{daemon.base}/v1/auth/session", headers=auth).status_code == 200
    generated = 0
    for seed in (FIXED_SEED, secrets.randbelow(2**31)):
        print(f"schemathesis seed {seed}")
        summary = _schemathesis(daemon, token, seed, tmp_path)
        cases = summary["test_cases"]
        assert cases["errored"] == 0 and cases["with_failures"] == 0, cases
        generated += cases["generated"]
    assert generated >= MIN_CASES, generated
    # the session survived (logout was exercised on sessions of its own) ...
    assert httpx.get(f"{daemon.base}/v1/auth/session", headers=auth).status_code == 200
    # ... and nothing was answered from an unhandled error
    unhandled = [e for e in daemon.log_events() if e.get("event") == "unhandled error in a request"]
    assert unhandled == [], unhandled[:3]
    print(f"schemathesis: {generated} cases, 0 failures")
