"""``zmartd intents``: listing with state filters, and re-queueing a failed intent."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.sender.test_kill import sql


def zmartd(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zmartd", "intents", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_list_and_retry(tmp_path: Path, module_dsn: str) -> None:
    sql(module_dsn, "TRUNCATE intents, vote_aggregations, aggregator_outcomes CASCADE")
    market = "ab" * 32
    sql(
        module_dsn,
        "INSERT INTO intents (kind, market_id, args, idempotency_key, state, "
        "error_name, last_error) VALUES ('approve_proposal', $1, '{}', 'a', 'failed', "
        "'InsufficientVotes', 'simulation failed: InsufficientVotes'), "
        "('aggregate_proposal_votes', $1, '{\"likes\": 3, \"dislikes\": 1}', 'b', 'pending', "
        "NULL, NULL)",
        market,
    )
    [failed] = sql(module_dsn, "SELECT id FROM intents WHERE idempotency_key = 'a'")
    config = tmp_path / "zmartd.toml"
    config.write_text(f'[database]\ndsn = "{module_dsn}"\nembedded = false\n')
    table = zmartd(config)
    assert table.returncode == 0, table.stderr
    assert "InsufficientVotes" in table.stdout and "aggregate_proposal_votes" in table.stdout
    only = zmartd(config, "--state", "failed", "--json")
    rows = [json.loads(line) for line in only.stdout.splitlines()]
    assert [(r["id"], r["state"], r["error_name"]) for r in rows] == [
        (failed["id"], "failed", "InsufficientVotes")
    ]
    retried = zmartd(config, "retry", str(failed["id"]))
    assert retried.returncode == 0 and "re-queued" in retried.stdout, retried.stderr
    [row] = sql(
        module_dsn, "SELECT state, error_name, last_error FROM intents WHERE id = $1", failed["id"]
    )
    assert row["state"] == "pending" and row["error_name"] is None
    assert "InsufficientVotes" in row["last_error"]
    again = zmartd(config, "retry", str(failed["id"]))
    assert again.returncode == 1 and "only a failed intent can be retried" in again.stderr
    missing = zmartd(config, "retry", "999999")
    assert missing.returncode == 1 and "not found" in missing.stderr
    bad = zmartd(config, "--state", "lost")
    assert bad.returncode == 2
