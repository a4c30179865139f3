"""zmartd as a real process: the example config, readiness, SIGHUP, SIGTERM.

These tests run ``python -m zmartd`` exactly as an operator would, on the
embedded PostgreSQL (pgserver) in a temporary data dir, so they also prove
that ``zmartd.toml.example`` runs as is.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow

EXAMPLE = ROOT / "zmartd.toml.example"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A traversable data dir outside pytest's tmp tree (which pytest keeps at
    mode 0700), so that as root the cluster lives in ``<data_dir>/postgres``
    (tests/test_embedded_root.py covers untraversable ones)."""
    path = Path(tempfile.mkdtemp(prefix="zmartd-e2e-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def example_config(tmp_path: Path, http_port: int, data_dir: Path) -> Path:
    """The example file as is, but with free ports and a private data dir."""
    text = EXAMPLE.read_text()
    ports = iter([http_port] + [free_port() for _ in range(8)])
    text = re.sub(
        r"^(port|ws_port) = \d+$", lambda m: f"{m.group(1)} = {next(ports)}", text, flags=re.M
    )
    text = re.sub(r'^data_dir = ".*"$', f'data_dir = "{data_dir}"', text, flags=re.M)
    path = tmp_path / "zmartd.toml"
    path.write_text(text)
    return path


class Daemon:
    def __init__(self, config: Path, port: int, python: str = sys.executable) -> None:
        self.config = config
        self.base = f"http://127.0.0.1:{port}"
        self.log = config.parent / "zmartd.log"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("XDG_RUNTIME_DIR", None)
        self.proc = subprocess.Popen(
            [python, "-m", "zmartd", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("wb"),
            env=env,
            cwd=config.parent,
        )

    def get(self, path: str, base: str | None = None) -> httpx.Response:
        return httpx.get((base or self.base) + path, timeout=2)

    def wait_ready(self, timeout: float, base: str | None = None) -> float:
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            assert self.proc.poll() is None, f"zmartd exited early:\n{self.logs()}"
            try:
                if self.get("/ready", base).status_code == 200:
                    return time.monotonic() - start
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"not ready within {timeout}s:\n{self.logs()}")

    def logs(self) -> str:
        return self.log.read_text(errors="replace")

    def log_events(self) -> list[dict[str, object]]:
        events = []
        for line in self.logs().splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
        return events

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def daemon_factory() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for d in started:
        d.stop()


def test_example_config_reaches_ready_fast_reloads_and_drains(
    tmp_path: Path, data_dir: Path, daemon_factory: list[Daemon]
) -> None:
    port = free_port()
    config = example_config(tmp_path, port, data_dir)
    d = Daemon(config, port)
    daemon_factory.append(d)

    elapsed = d.wait_ready(timeout=30.0)
    assert elapsed < 6.0, f"ready only after {elapsed:.1f}s (goal: under 6 s)\n{d.logs()}"
    health = d.get("/health").json()
    assert health["ready"] is True
    storage_started = {a["name"]: a for a in health["actors"]}["storage"]["started_at"]
    # The Quickstart serves /v1 and the original frontend's /api side by side.
    assert d.get("/v1/markets").status_code == 200
    legacy = d.get("/api/markets")
    assert legacy.status_code == 200 and set(legacy.json()) == {
        "markets",
        "count",
        "offset",
        "limit",
    }
    assert "categories" in d.get("/api/markets/categories").json()

    # SIGHUP with a changed, valid file: http moves to a new port; storage untouched.
    new_port = free_port()
    text = config.read_text()
    config.write_text(re.sub(rf"^port = {port}$", f"port = {new_port}", text, count=1, flags=re.M))
    d.proc.send_signal(signal.SIGHUP)
    new_base = f"http://127.0.0.1:{new_port}"
    d.wait_ready(timeout=10, base=new_base)
    health = d.get("/health", new_base).json()
    assert health["config_generation"] == 2
    actors = {a["name"]: a for a in health["actors"]}
    assert actors["storage"]["started_at"] == storage_started
    with pytest.raises(httpx.TransportError):
        d.get("/health")  # the old port is closed

    # SIGHUP with an invalid file: still serving on the old config, counter at 1.
    good = config.read_text()
    config.write_text(re.sub(r"^max_body_bytes = \d+$", 'max_body_bytes = "80a"', good, flags=re.M))
    d.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    metrics = ""
    while time.monotonic() < deadline:
        metrics = d.get("/metrics", new_base).text
        if "zmartd_config_reload_failures_total 1.0" in metrics:
            break
        time.sleep(0.05)
    assert "zmartd_config_reload_failures_total 1.0" in metrics
    assert d.get("/ready", new_base).status_code == 200
    assert d.get("/health", new_base).json()["config_generation"] == 2
    rejected = [
        e for e in d.log_events() if str(e.get("event", "")).startswith("config reload rejected")
    ]
    assert rejected, d.logs()
    assert any("http.max_body_bytes" in str(e.get("errors")) for e in rejected)

    # SIGTERM: graceful stop, exit 0 well within shutdown_timeout.
    t0 = time.monotonic()
    d.proc.send_signal(signal.SIGTERM)
    assert d.proc.wait(timeout=15) == 0, d.logs()
    assert time.monotonic() - t0 < 10
    events = [e.get("event") for e in d.log_events()]
    assert "shutdown requested" in events
    assert events[-1] == "zmartd stopped" or "zmartd stopped" in events
    # The embedded PostgreSQL was stopped with us (no orphaned postmaster).
    pid_file = data_dir / "postgres" / "postmaster.pid"
    assert not pid_file.exists()


def test_invalid_config_at_start_exits_2_with_every_error(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[http]\nport = "80a"\nprot = 1\n[nope]\n')
    out = subprocess.run(
        [sys.executable, "-m", "zmartd", "check-config", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    assert "http.port: expected integer" in out.stderr and '"80a"' in out.stderr
    assert "http.prot" in out.stderr and "nope" in out.stderr
    run = subprocess.run(
        [sys.executable, "-m", "zmartd", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2
    assert "invalid configuration" in run.stderr


def test_cli_commands(tmp_path: Path, data_dir: Path) -> None:
    def zmartd(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "zmartd", *args], capture_output=True, text=True, timeout=60
        )

    version = zmartd("--version")
    assert version.returncode == 0 and version.stdout.startswith("zmartd ")
    tree = zmartd("tree", "--config", str(EXAMPLE))
    assert tree.returncode == 0
    assert "root supervisor" in tree.stdout and "storage" in tree.stdout
    assert "chain.logs" in tree.stdout
    check = zmartd("check-config", "--config", str(EXAMPLE))
    assert check.returncode == 0, check.stderr
    dump = zmartd("config", "dump", "--config", str(EXAMPLE))
    assert dump.returncode == 0 and "[http]" in dump.stdout
    cfg = tmp_path / "migrate.toml"
    cfg.write_text(f'[daemon]\ndata_dir = "{data_dir}"\n')  # embedded server in a temp dir
    migrate = zmartd("migrate", "--config", str(cfg))
    assert migrate.returncode == 0, migrate.stderr
    assert "applied 0001_chain_mirror" in migrate.stdout
    status = zmartd("migrate", "--status", "--config", str(cfg))
    assert status.returncode == 0 and "pending" not in status.stdout
    again = zmartd("migrate", "--config", str(cfg))
    assert again.returncode == 0 and "applied 0001" not in again.stdout
    missing = zmartd("check-config", "--config", str(tmp_path / "absent.toml"))
    assert missing.returncode == 1 and "absent.toml" in missing.stderr


def test_embedded_postgres_orphaned_by_sigkill_is_adopted_and_stopped(
    tmp_path: Path, data_dir: Path, daemon_factory: list[Daemon]
) -> None:
    """pgserver leaves PostgreSQL running when its owner is SIGKILLed; the next
    zmartd must adopt that server and stop it on its own exit."""
    port = free_port()
    config = example_config(tmp_path, port, data_dir)
    first = Daemon(config, port)
    daemon_factory.append(first)
    first.wait_ready(timeout=10)
    pid_file = data_dir / "postgres" / "postmaster.pid"
    orphan = int(pid_file.read_text().split()[0])
    first.proc.kill()
    first.proc.wait()
    os.kill(orphan, 0)  # still running: orphaned

    second = Daemon(config, port)
    daemon_factory.append(second)
    second.wait_ready(timeout=10)
    assert int(pid_file.read_text().split()[0]) == orphan  # reattached, not a second server
    second.proc.send_signal(signal.SIGTERM)
    assert second.proc.wait(timeout=15) == 0, second.logs()
    assert not pid_file.exists()
    with pytest.raises(ProcessLookupError):
        for _ in range(50):
            os.kill(orphan, 0)
            time.sleep(0.1)
    assert "adopting embedded postgres" in second.logs()


def test_second_sigint_forces_exit_during_drain(
    tmp_path: Path, data_dir: Path, daemon_factory: list[Daemon]
) -> None:
    """A request still in flight (its body half sent) makes the HTTP drain
    last graceful_timeout (2 s in the example); a second SIGINT must not wait
    for it.  (An idle keep-alive connection no longer does: it is closed as
    the drain starts.)"""
    port = free_port()
    config = example_config(tmp_path, port, data_dir)
    d = Daemon(config, port)
    daemon_factory.append(d)
    d.wait_ready(timeout=10)
    with socket.create_connection(("127.0.0.1", port)) as in_flight:
        in_flight.sendall(
            b"POST /v1/auth/nonce HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 60\r\n\r\n"
            b'{"wallet": '
        )
        time.sleep(0.2)
        t0 = time.monotonic()
        d.proc.send_signal(signal.SIGINT)
        time.sleep(0.3)
        assert d.proc.poll() is None  # still draining
        d.proc.send_signal(signal.SIGINT)
        assert d.proc.wait(timeout=10) == 130, d.logs()
        assert time.monotonic() - t0 < 1.9
    assert "second signal: forcing exit" in d.logs()
