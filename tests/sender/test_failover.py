"""Three instances on one database: one leader per singleton role, failover after kill -9.

Real processes: ``zmartd devchain`` (demo seed, transactions land late so some are in
flight at the kill) and three ``zmartd`` instances in rpc mode sharing one PostgreSQL
database. Each instance's ``/health`` says which leader-only actors lead there. Intents
keep arriving; the instance leading the sender is killed with SIGKILL in the middle of
them. Within 10 s another instance leads every role the dead one led, every intent lands,
and the chain holds exactly one successful transaction per intent.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_DSN, _with_database
from tests.sender.conftest import AUTHORITY, NEW_LANG, aggregate_data
from tests.sender.test_kill import executions_on_chain, rpc, spawn, sql
from tests.test_e2e_daemon import free_port
from zmartd.chain.rpc import b58encode

pytestmark = pytest.mark.slow

ROLES = ("indexer", "sender", "aggregator", "snapshotter")
INSTANCES = 3
FAILOVER_SECONDS = 10.0


@pytest.fixture
def fresh_dsn() -> Iterator[str]:
    """A database of its own: the instances migrate and index it from scratch."""
    import secrets

    name = f"zmartd_failover_{secrets.token_hex(4)}"
    sql(ADMIN_DSN, f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(ADMIN_DSN, name)
    finally:
        sql(ADMIN_DSN, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _roles(port: int) -> dict[str, str] | None:
    try:
        roles: dict[str, str] = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json()[
            "roles"
        ]
    except (httpx.TransportError, ValueError, KeyError):
        return None
    return roles


def _leaders(ports: dict[int, int]) -> dict[str, list[int]]:
    """role -> the instances (by index) whose /health says they lead it."""
    out: dict[str, list[int]] = {role: [] for role in ROLES}
    for i, port in ports.items():
        for role, state in (_roles(port) or {}).items():
            if state == "leader" and role in out:
                out[role].append(i)
    return out


def test_one_leader_per_role_and_failover_after_kill_9(tmp_path: Path, fresh_dsn: str) -> None:
    key_file = tmp_path / "authority.json"
    key_file.write_text(json.dumps(list(bytes(AUTHORITY))))
    key_file.chmod(0o600)
    chain_port, chain_ws = free_port(), free_port()
    (tmp_path / "chain.toml").write_text('[chain]\nkeypair_file = "authority.json"\n')
    chain = spawn(
        [
            "devchain",
            "--config",
            str(tmp_path / "chain.toml"),
            "--port",
            str(chain_port),
            "--ws-port",
            str(chain_ws),
            "--seed",
            "demo",
            "--slot-interval",
            "0.1",
        ],
        tmp_path / "devchain.log",
        tmp_path,
    )
    url = f"http://127.0.0.1:{chain_port}"
    ports = {i: free_port() for i in range(INSTANCES)}
    daemons: dict[int, Any] = {}
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                rpc(url, "getHealth")
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        for i, port in ports.items():
            (tmp_path / f"z{i}.toml").write_text(f"""
[daemon]
data_dir = "{tmp_path / f"var{i}"}"
instance_name = "zmartd-{i}"
[http]
port = {port}
[ws]
enabled = false
[database]
dsn = "{fresh_dsn}"
embedded = false
[chain]
mode = "rpc"
rpc_urls = ["{url}"]
ws_url = "ws://127.0.0.1:{chain_ws}"
keypair_file = "authority.json"
request_timeout = 2.0
[aggregator]
enabled = true
interval = 3600.0
# it leads and tallies (its own intents are not the test's), but never approves: the
# test's intents aggregate new-lang's counts, which an approved market would refuse
min_votes = 1000000
[sender]
rebroadcast_interval = 0.5
[log]
format = "json"
""")
            daemons[i] = spawn(
                ["--config", str(tmp_path / f"z{i}.toml")], tmp_path / f"z{i}.log", tmp_path
            )
        # one leader per role, among the three
        deadline = time.monotonic() + 60
        while True:
            leaders = _leaders(ports)
            if all(len(v) == 1 for v in leaders.values()):
                break
            assert all(len(v) <= 1 for v in leaders.values()), leaders  # never two
            assert time.monotonic() < deadline, leaders
            time.sleep(0.2)
        # transactions stay in flight for a while: they land 6 slots late
        rpc(url, "zmart_delayLanding", 6)
        expected: dict[str, int] = {}
        for n in range(500, 506):
            key = f"failover:{n}"
            sql(
                fresh_dsn,
                "INSERT INTO intents (kind, market_id, args, idempotency_key) "
                "VALUES ('aggregate_proposal_votes', $1, $2::jsonb, $3)",
                NEW_LANG.hex(),
                json.dumps({"likes": n, "dislikes": 1}),
                key,
            )
            expected[key] = n
        time.sleep(1.0)  # the sender leader has signed and sent some of them
        victim = leaders["sender"][0]
        lost_roles = [role for role, who in leaders.items() if who == [victim]]
        daemons[victim].kill()
        daemons[victim].wait()
        killed = time.monotonic()
        del ports[victim]
        # every role the victim led has a new leader within 10 s
        while True:
            leaders = _leaders(ports)
            if all(len(leaders[role]) == 1 for role in lost_roles):
                break
            assert all(len(v) <= 1 for v in leaders.values()), leaders
            assert time.monotonic() - killed < FAILOVER_SECONDS, (lost_roles, leaders)
            time.sleep(0.2)
        took = time.monotonic() - killed
        for n in range(506, 509):  # and new work is taken up by the new leader
            key = f"failover:{n}"
            sql(
                fresh_dsn,
                "INSERT INTO intents (kind, market_id, args, idempotency_key) "
                "VALUES ('aggregate_proposal_votes', $1, $2::jsonb, $3)",
                NEW_LANG.hex(),
                json.dumps({"likes": n, "dislikes": 1}),
                key,
            )
            expected[key] = n
        deadline = time.monotonic() + 90
        while True:
            rows = sql(
                fresh_dsn,
                "SELECT idempotency_key, state FROM intents "
                "WHERE idempotency_key LIKE 'failover:%' ORDER BY id",
            )
            if len(rows) == len(expected) and all(r["state"] == "landed" for r in rows):
                break
            assert time.monotonic() < deadline, rows
            time.sleep(0.3)
        found = executions_on_chain(url)
        for key, n in expected.items():
            assert found[b58encode(aggregate_data(n, 1))] == 1, (key, found)
        print(f"roles {lost_roles} failed over in {took:.1f} s")
    finally:
        for d in daemons.values():
            if d.poll() is None:
                d.kill()
                d.wait()
        chain.terminate()
        chain.wait(timeout=10)
