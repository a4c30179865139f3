"""The embedded PostgreSQL used when ``[database] dsn`` is empty.

``pgserver`` ships PostgreSQL binaries in a wheel, so a new user can run
zmartd with no database setup.  zmartd uses those binaries but runs the
server's lifecycle itself (``initdb``, ``pg_ctl start``/``stop``), because
pgserver's ``PostgresServer``, started as root, makes every ancestor of the
data directory and of the virtualenv world-readable.  Where the cluster lives
and as which user it runs is decided in :mod:`.pg_placement`; nothing here
changes the permissions of a directory zmartd did not create.

Several processes share one server: the daemon, and ``zmartd migrate`` or
``zmartd backfill`` run beside it.  Each registers its pid in
``<pgdata>.owners`` beside the cluster; the last one to leave stops the
server.  If an owner is SIGKILLed, the postmaster keeps running and the dead
pid stays in the file: the next starter drops dead pids, reattaches to the
running server (the *orphan*) and so stops it on its own exit.  A running
server without any owner (left by a version that kept its owners elsewhere)
is adopted the same way.  A file lock beside the cluster (``<pgdata>.lock``)
serialises start and stop.  Files inside the cluster, which PostgreSQL's user
controls, are only read, never followed through a symlink.

All of this blocks (initdb takes about a second), so it runs in a thread.
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import structlog
import trio

from zmartd.storage.pg_placement import (
    EmbeddedPostgresError,
    EmbeddedPostgresRefused,
    Placement,
    place,
)

if TYPE_CHECKING:
    from zmartd.config import Config

__all__ = ["EmbeddedPostgres", "EmbeddedPostgresError", "EmbeddedPostgresRefused", "database_dsn"]

log = structlog.get_logger("zmartd.storage.embedded")

START_TIMEOUT = 30  # pg_ctl -t: crash recovery after a kill can take a while


async def database_dsn(config: Config, stack: AsyncExitStack) -> str:
    """The configured ``[database] dsn``; without one, the embedded server's
    (see :mod:`.pg_placement` for where its cluster lives), stopped when
    ``stack`` closes.  The storage actor and the ``migrate``/``backfill``
    commands all connect this way, so a command run beside a daemon finds
    the same data."""
    if config.database.dsn:
        return config.database.dsn.reveal()
    embedded = await EmbeddedPostgres.start(config.daemon.data_dir)
    stack.push_async_callback(embedded.stop)
    return embedded.dsn


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_owners(owners_file: Path) -> list[int]:
    try:
        return [int(p) for p in json.loads(owners_file.read_text())]
    except FileNotFoundError:
        return []
    except (ValueError, TypeError):
        return []


def _write_owners(owners_file: Path, pids: list[int]) -> None:
    owners_file.write_text(json.dumps(pids))


def _forget_dead_owners(owners_file: Path) -> list[int]:
    """Drop pids of processes that no longer exist from the owner list."""
    pids = _read_owners(owners_file)
    dead = [p for p in pids if p != os.getpid() and not _pid_alive(p)]
    if dead:
        _write_owners(owners_file, [p for p in pids if p not in dead])
    return dead


@contextmanager
def _locked(lock_file: Path) -> Iterator[None]:
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _running_postmaster(pgdata: Path) -> tuple[int, Path] | None:
    """(pid, socket dir) of a ready server on ``pgdata``, from its pid file."""
    try:  # written by PostgreSQL's user: no symlink, no FIFO, no huge file
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        fd = os.open(pgdata / "postmaster.pid", flags)
    except OSError:  # absent (or a symlink: not PostgreSQL's own pid file)
        return None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        lines = f.read(4096).decode(errors="replace").splitlines()
    if len(lines) < 8 or lines[7].strip() != "ready" or not lines[0].strip().isdigit():
        return None
    pid = int(lines[0])
    if not _pid_alive(pid):
        return None
    try:  # a pid reused after a reboot is not our postmaster
        if Path(f"/proc/{pid}/comm").read_text().strip() != "postgres":
            return None
    except OSError:
        pass
    return pid, Path(lines[4].strip())


def _run(placement: Placement, program: str, *args: str, timeout: float) -> None:
    """Run a PostgreSQL program as the placement's user, output in temp files
    (a pipe inherited by the postmaster would never reach EOF)."""
    account = placement.account
    command = [str(placement.bindir / program), *args]
    with tempfile.TemporaryFile("w+") as out:
        try:
            subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd="/",
                timeout=timeout,
                check=True,
                user=account.uid if account else None,
                group=account.gid if account else None,
                extra_groups=sorted(account.groups) if account else None,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            out.seek(0)
            raise EmbeddedPostgresError(
                f"{program} failed ({exc}) as user {placement.run_as}:\n{out.read()}"
            ) from exc


def _start_blocking(placement: Placement) -> tuple[Path, bool, list[int]]:
    """Initialise and start (or adopt) the server; returns the socket dir,
    whether a running server without live owners was adopted, and the dead
    owners dropped from the list."""
    pgdata = placement.pgdata
    with _locked(placement.lock_file):
        if not (pgdata / "PG_VERSION").exists():
            _run(
                placement,
                "initdb",
                "-D",
                str(pgdata),
                "--auth=trust",
                "--auth-local=trust",
                "--encoding=utf8",
                "-U",
                "postgres",
                timeout=120,
            )
        dead = _forget_dead_owners(placement.owners_file)
        running = _running_postmaster(pgdata)
        # a running server nobody (alive) owns is an orphan: ours to stop later
        orphan = running is not None and not _read_owners(placement.owners_file)
        if running is None:
            options = f"-h '' -k {shlex.quote(str(placement.socket_dir))}"
            _run(
                placement,
                "pg_ctl",
                "-D",
                str(pgdata),
                "-w",
                "-t",
                str(START_TIMEOUT),
                "-o",
                options,
                "-l",
                str(pgdata / "log"),
                "start",
                timeout=START_TIMEOUT + 5,
            )
            deadline = time.monotonic() + 10
            while (running := _running_postmaster(pgdata)) is None:
                if time.monotonic() > deadline:
                    raise EmbeddedPostgresError(
                        f"pg_ctl started PostgreSQL in {pgdata} but it is not ready; "
                        f"see {pgdata / 'log'}"
                    )
                time.sleep(0.05)
        owners = placement.owners_file
        _write_owners(owners, [*_read_owners(owners), os.getpid()])
        return running[1], orphan, dead


def _stop_blocking(placement: Placement) -> bool:
    """Leave the owner list; the last owner stops the server.  True if stopped."""
    pgdata = placement.pgdata
    with _locked(placement.lock_file):
        owners = _read_owners(placement.owners_file)
        if os.getpid() in owners:
            owners.remove(os.getpid())  # one registration (a process may hold several)
        owners = [p for p in owners if p == os.getpid() or _pid_alive(p)]
        _write_owners(placement.owners_file, owners)
        if owners or _running_postmaster(pgdata) is None:
            return False
        _run(
            placement,
            "pg_ctl",
            "-D",
            str(pgdata),
            "-w",
            "-t",
            str(START_TIMEOUT),
            "-m",
            "fast",
            "stop",
            timeout=START_TIMEOUT + 5,
        )
        return True


@dataclass
class EmbeddedPostgres:
    placement: Placement
    socket_dir: Path

    @property
    def pgdata(self) -> Path:
        return self.placement.pgdata

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres:@/postgres?host={quote(str(self.socket_dir), safe='/')}"

    @classmethod
    async def start(cls, data_dir: Path) -> EmbeddedPostgres:
        """Initialise (first run) and start, or adopt, the server for ``data_dir``.

        Raises :class:`EmbeddedPostgresRefused` when it cannot be arranged
        without loosening directory permissions, :class:`EmbeddedPostgresError`
        when initdb or pg_ctl fail."""
        started = trio.current_time()
        placement = await trio.to_thread.run_sync(place, data_dir)
        socket_dir, orphan, dead = await trio.to_thread.run_sync(_start_blocking, placement)
        if orphan:
            log.warning("adopting embedded postgres left by dead owner(s)", pids=dead)
        log.info(
            "embedded postgres started",
            pgdata=str(placement.pgdata),
            user=placement.run_as,
            bindir=str(placement.bindir),
            seconds=round(trio.current_time() - started, 3),
        )
        return cls(placement, socket_dir)

    async def stop(self) -> None:
        """Leave the server (stopping it if we were its last owner).  Shielded:
        it runs while the owner is being cancelled, and a skipped stop would
        leave the postmaster running until the next start adopts it."""
        stopped = False
        with trio.move_on_after(START_TIMEOUT + 10) as scope:
            scope.shield = True
            try:
                stopped = await trio.to_thread.run_sync(_stop_blocking, self.placement)
            except EmbeddedPostgresError as exc:  # the next start adopts what is left
                log.error("embedded postgres did not stop", pgdata=str(self.pgdata), error=str(exc))
                return
        log.info(
            "embedded postgres stopped" if stopped else "embedded postgres left running",
            pgdata=str(self.pgdata),
        )
