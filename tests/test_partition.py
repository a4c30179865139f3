"""A network cut between one instance and PostgreSQL: that instance gives up its
leadership, another takes it over, and at no moment do two instances lead one role.

Two real ``zmartd`` processes share a database; instance A reaches it through a TCP proxy
in this test (tests/test_storage_actor.py), B directly. A starts first and leads. The
proxy then drops A's connections and refuses new ones. Both ``/health`` documents are
sampled every 50 ms throughout: never two leaders of a role; B leads every role within
15 s; A still answers (it serves, it just does not lead).
"""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import trio

from tests.sender.test_failover import fresh_dsn  # noqa: F401  (fixture)
from tests.sender.test_kill import spawn
from tests.test_e2e_daemon import free_port
from tests.test_storage_actor import Proxy

pytestmark = pytest.mark.slow

ROLES = ("indexer", "snapshotter", "sender", "aggregator")


def _config(path: Path, *, port: int, dsn: str, data: Path) -> Path:
    path.write_text(f"""
[daemon]
data_dir = "{data}"
[http]
port = {port}
[ws]
enabled = false
[database]
dsn = "{dsn}"
embedded = false
[chain]
mode = "rpc"
rpc_urls = ["http://127.0.0.1:{free_port()}"]
required = false
[log]
format = "json"
""")
    return path


async def _roles(client: httpx.AsyncClient, port: int) -> dict[str, str] | None:
    try:
        r = await client.get(f"http://127.0.0.1:{port}/health", timeout=1)
        roles: dict[str, str] = r.json()["roles"]
        return roles
    except (httpx.TransportError, ValueError, KeyError):
        return None


async def test_a_cut_instance_stops_leading_and_never_two_lead(
    tmp_path: Path,
    fresh_dsn: str,  # noqa: F811
) -> None:
    parts = urlsplit(fresh_dsn)
    proxy = Proxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    async with trio.open_nursery() as nursery, httpx.AsyncClient() as client:
        await nursery.start(proxy.serve)
        via_proxy = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))
        a_port, b_port = free_port(), free_port()
        a = spawn(
            [
                "--config",
                str(_config(tmp_path / "a.toml", port=a_port, dsn=via_proxy, data=tmp_path / "a")),
            ],
            tmp_path / "a.log",
            tmp_path,
        )
        b = None
        try:
            with trio.fail_after(60):
                while (roles := await _roles(client, a_port)) is None or any(
                    roles.get(r) != "leader" for r in ("indexer", "snapshotter")
                ):
                    await trio.sleep(0.1)
            led_by_a = sorted(r for r, s in roles.items() if s == "leader")
            b = spawn(
                [
                    "--config",
                    str(
                        _config(
                            tmp_path / "b.toml", port=b_port, dsn=fresh_dsn, data=tmp_path / "b"
                        )
                    ),
                ],
                tmp_path / "b.log",
                tmp_path,
            )
            with trio.fail_after(60):
                while (await _roles(client, b_port)) is None:
                    await trio.sleep(0.1)
            proxy.cut()
            cut_at = time.monotonic()
            taken_over = None
            while time.monotonic() - cut_at < 20:
                ra = await _roles(client, a_port) or {}
                rb = await _roles(client, b_port) or {}
                both = [r for r in ROLES if ra.get(r) == "leader" and rb.get(r) == "leader"]
                assert not both, (both, ra, rb)
                if taken_over is None and all(rb.get(r) == "leader" for r in led_by_a):
                    taken_over = time.monotonic() - cut_at
                if taken_over is not None and time.monotonic() - cut_at > taken_over + 2:
                    break
                await trio.sleep(0.05)
            assert taken_over is not None and taken_over < 15, (led_by_a, ra, rb)
            assert await _roles(client, a_port) is not None  # A still answers
            print(f"{led_by_a} moved to B {taken_over:.1f} s after the cut")
        finally:
            for p in (a, b):
                if p is not None and p.poll() is None:
                    p.kill()
                    p.wait()
            nursery.cancel_scope.cancel()
