"""systemd notifications: a fake NOTIFY_SOCKET receives READY, RELOADING/READY around a
SIGHUP reload, STOPPING on drain, and WATCHDOG pings, in that order."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import pytest
import trio

from tests.test_daemon import Worker, tree_with, wait_for, write_config
from zmartd.app import Daemon
from zmartd.config import load_config
from zmartd.sdnotify import Notifier


def _datagrams(sock: socket.socket) -> list[str]:
    out = []
    while True:
        try:
            out.append(sock.recv(4096).decode())
        except BlockingIOError:
            return out


def test_no_socket_means_no_op() -> None:
    n = Notifier({})
    assert not n.enabled and n.notify("READY=1") is False and n.watchdog_interval is None


def test_abstract_socket_and_watchdog_settings() -> None:
    n = Notifier(
        {
            "NOTIFY_SOCKET": "@zmartd-test",
            "WATCHDOG_USEC": "30000000",
            "WATCHDOG_PID": str(os.getpid()),
        }
    )
    assert n.address == "\0zmartd-test" and n.watchdog_interval == 15.0
    other = Notifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"})
    assert other.watchdog_interval is None  # the watchdog is another process's


async def test_the_daemon_tells_systemd_what_it_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # pings every 0.1 s
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    config_path = write_config(tmp_path)
    daemon = Daemon(load_config(config_path), config_path, tree_with(Worker()))
    got: list[str] = []
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(daemon.run)
            with trio.fail_after(10):
                await daemon.ready.wait()
            await trio.sleep(0.3)
            os.kill(os.getpid(), signal.SIGHUP)
            await wait_for(lambda: daemon.generation == 2)
            await trio.sleep(0.1)
            os.kill(os.getpid(), signal.SIGTERM)
        got = _datagrams(sock)
    finally:
        sock.close()
    kinds = [g.splitlines()[0].split("=")[0] for g in got if not g.startswith("WATCHDOG")]
    assert kinds == ["READY", "RELOADING", "READY", "STOPPING"], got
    assert sum(g == "WATCHDOG=1" for g in got) >= 3
    reloading = next(g for g in got if g.startswith("RELOADING"))
    assert "MONOTONIC_USEC=" in reloading
