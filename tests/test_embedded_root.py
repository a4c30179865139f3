"""The embedded PostgreSQL as root never loosens a directory's permissions.

The situation of a first run on a VPS: zmartd runs as root, its data dir and
its virtualenv live under directories of mode 0700 (``/root/...``).  These
tests build exactly that -- a private tree holding the data dir and a real
virtualenv whose site-packages carries its own copy of pgserver (the rest of
the dependencies come from the test virtualenv through a ``.pth`` file) --
then run ``zmartd`` from that virtualenv as a subprocess and check that it
becomes ready, that PostgreSQL runs as ``zmartd-postgres`` from the binary
cache with its cluster in ``/var/lib/zmartd``, and that every directory and
file that existed before kept its mode and owner.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
import trio
import trio_asyncio

from tests.test_e2e_daemon import Daemon, example_config, free_port
from zmartd.storage.embedded import EmbeddedPostgres
from zmartd.storage.pg_placement import (
    STATE_DIR,
    SYSTEM_USER,
    EmbeddedPostgresRefused,
    cluster_id,
    pginstall_dir,
    place,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="covers zmartd running as root"),
]

Snapshot = dict[str, tuple[int, int, int]]


def snapshot(*roots: Path) -> Snapshot:
    """Mode and owner of every existing ancestor of ``roots``, and of
    everything below them."""
    paths: set[Path] = set()
    for root in roots:
        paths.update(root.parents)
        if root.exists():
            paths.add(root)
            paths.update(root.rglob("*"))
    out: Snapshot = {}
    for path in paths:
        st = path.lstat()
        out[str(path)] = (st.st_mode, st.st_uid, st.st_gid)
    return out


def assert_unchanged(before: Snapshot) -> None:
    changed = {}
    for path, old in before.items():
        st = os.lstat(path)
        if (st.st_mode, st.st_uid, st.st_gid) != old:
            changed[path] = (oct(old[0]), old[1:], "->", oct(st.st_mode), st.st_uid)
    assert not changed, f"pre-existing paths changed mode/owner: {changed}"


def kill_postmaster(pgdata: Path) -> None:
    """After a failed test: no postmaster may outlive its (deleted) cluster."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        os.kill(int((pgdata / "postmaster.pid").read_text().split()[0]), signal.SIGKILL)


class Private:
    """``<root>/home/zmartd`` (data dir) and ``<root>/home/venv``, all 0700."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="zmartd-root-", dir="/tmp"))
        home = self.root / "home"
        home.mkdir(mode=0o700)
        self.data_dir = home / "zmartd"
        self.data_dir.mkdir(mode=0o700)
        venv = home / "venv"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        site = next(venv.glob("lib/python3*/site-packages"))
        ours = pginstall_dir().parent.parent
        for name in ("pgserver", "pgserver.libs"):
            if (ours / name).exists():
                shutil.copytree(ours / name, site / name, symlinks=True)
        (site / "zz_test_deps.pth").write_text(f"import site; site.addsitedir({str(ours)!r})\n")
        self.python = str(venv / "bin" / "python")
        where = "import importlib.util as u; print(u.find_spec('pgserver').origin)"
        found = subprocess.run(
            [self.python, "-c", where],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert found.startswith(str(site)), found  # the private copy, not the test venv's
        for path in (self.root, *self.root.rglob("*")):
            if path.is_dir() and not path.is_symlink():
                path.chmod(0o700)
        self.cluster = STATE_DIR / "postgres" / cluster_id(self.data_dir)

    def cleanup(self) -> None:
        kill_postmaster(self.cluster)
        shutil.rmtree(self.cluster, ignore_errors=True)
        for suffix in (".lock", ".data_dir", ".owners"):
            self.cluster.with_name(self.cluster.name + suffix).unlink(missing_ok=True)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def private() -> Iterator[Private]:
    p = Private()
    yield p
    p.cleanup()


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for d in started:
        d.stop()


def postmaster(cluster: Path) -> int:
    return int((cluster / "postmaster.pid").read_text().split()[0])


def process_user(pid: int) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return pwd.getpwuid(int(line.split()[2])).pw_name  # effective uid
    raise AssertionError(f"no Uid line for {pid}")


def started_event(d: Daemon) -> dict[str, object]:
    events = [e for e in d.log_events() if e.get("event") == "embedded postgres started"]
    assert events, d.logs()
    return events[-1]


def state_dirs() -> list[Path]:
    return [p for p in (STATE_DIR, STATE_DIR / "postgres", STATE_DIR / "pginstall") if p.exists()]


def test_root_daemon_in_private_dirs_becomes_ready_without_loosening_anything(
    tmp_path: Path, private: Private, daemons: list[Daemon]
) -> None:
    before = snapshot(private.root, *state_dirs())
    port = free_port()
    config = example_config(tmp_path, port, private.data_dir)
    d = Daemon(config, port, python=private.python)
    daemons.append(d)
    elapsed = d.wait_ready(timeout=30)
    assert elapsed < 6.0, f"ready only after {elapsed:.1f}s (goal: under 6 s)\n{d.logs()}"

    event = started_event(d)
    assert event["pgdata"] == str(private.cluster) and event["user"] == SYSTEM_USER
    assert str(event["bindir"]).startswith(str(STATE_DIR / "pginstall")), event
    pid = postmaster(private.cluster)
    assert process_user(pid) == SYSTEM_USER
    assert os.readlink(f"/proc/{pid}/exe").startswith(str(STATE_DIR / "pginstall"))
    st = private.cluster.stat()
    assert (st.st_mode & 0o777, pwd.getpwuid(st.st_uid).pw_name) == (0o700, SYSTEM_USER)
    assert (private.cluster.parent / f"{private.cluster.name}.data_dir").read_text().strip() == (
        str(private.data_dir)
    )

    # Commands beside the daemon share its server (and leave it running).
    def zmartd(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [private.python, "-m", "zmartd", *args, "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=120,
        )

    migrate = zmartd("migrate", "--status")
    assert migrate.returncode == 0 and "pending" not in migrate.stdout, migrate.stderr
    backfill = zmartd("backfill", "--from-slot", "0")
    assert backfill.returncode == 0 and "backfill done" in backfill.stdout, backfill.stderr
    assert postmaster(private.cluster) == pid
    assert d.get("/ready").status_code == 200

    d.proc.send_signal(signal.SIGTERM)
    assert d.proc.wait(timeout=20) == 0, d.logs()
    assert not (private.cluster / "postmaster.pid").exists()
    assert_unchanged(before)


def test_root_orphan_after_sigkill_is_adopted_in_the_new_layout(
    tmp_path: Path, private: Private, daemons: list[Daemon]
) -> None:
    before = snapshot(private.root, *state_dirs())
    port = free_port()
    config = example_config(tmp_path, port, private.data_dir)
    first = Daemon(config, port, python=private.python)
    daemons.append(first)
    first.wait_ready(timeout=30)
    orphan = postmaster(private.cluster)
    first.proc.kill()
    first.proc.wait()
    os.kill(orphan, 0)  # still running: orphaned

    second = Daemon(config, port, python=private.python)
    daemons.append(second)
    second.wait_ready(timeout=30)
    assert postmaster(private.cluster) == orphan  # reattached, not a second server
    assert "adopting embedded postgres" in second.logs()
    second.proc.send_signal(signal.SIGTERM)
    assert second.proc.wait(timeout=20) == 0, second.logs()
    with pytest.raises(ProcessLookupError):
        for _ in range(50):
            os.kill(orphan, 0)
            time.sleep(0.1)
    assert not (private.cluster / "postmaster.pid").exists()
    assert_unchanged(before)


def test_root_traversable_data_dir_keeps_the_cluster_there(tmp_path: Path) -> None:
    """A data dir every user can reach holds its own cluster, owned by
    zmartd-postgres, and the binaries run in place (the test venv is
    traversable); the storage layer connects as usual, and a stop while its
    owner is being cancelled still stops the server."""
    data_dir = Path(tempfile.mkdtemp(prefix="zmartd-root-", dir="/tmp"))
    data_dir.chmod(0o755)

    async def main() -> tuple[str, int]:
        server = await EmbeddedPostgres.start(data_dir)
        try:
            assert server.pgdata == data_dir / "postgres"
            assert server.placement.bindir == pginstall_dir() / "bin"
            async with trio_asyncio.open_loop():
                con = await trio_asyncio.aio_as_trio(asyncpg.connect)(server.dsn)
                try:
                    one = await trio_asyncio.aio_as_trio(con.fetchval)("SELECT 1")
                finally:
                    await trio_asyncio.aio_as_trio(con.close)()
            return str(one), postmaster(server.pgdata)
        finally:
            with trio.CancelScope() as cancelled:
                cancelled.cancel()
                await server.stop()

    try:
        one, pid = trio.run(main)
        assert one == "1"
        st = (data_dir / "postgres").stat()
        assert (st.st_mode & 0o777, pwd.getpwuid(st.st_uid).pw_name) == (0o700, SYSTEM_USER)
        assert not (data_dir / "postgres" / "postmaster.pid").exists()
        with pytest.raises(ProcessLookupError):
            for _ in range(50):
                os.kill(pid, 0)
                time.sleep(0.1)
    finally:
        kill_postmaster(data_dir / "postgres")
        shutil.rmtree(data_dir, ignore_errors=True)


def test_refusal_names_the_directory_and_the_ways_out(tmp_path: Path) -> None:
    """A state dir that exists but the PostgreSQL user cannot enter is not
    loosened (nor is anything created in it): zmartd refuses, naming it."""
    base = Path(tempfile.mkdtemp(prefix="zmartd-root-", dir="/tmp"))
    try:
        base.chmod(0o755)
        state = base / "state"
        state.mkdir(mode=0o700)
        data_dir = tmp_path / "data"  # pytest's tmp tree is 0700: not traversable
        before = snapshot(tmp_path, base)
        with pytest.raises(EmbeddedPostgresRefused) as refused:
            place(data_dir, state_dir=state)
        message = str(refused.value)
        assert f"cannot traverse: {state}." in message
        assert "[database] dsn" in message and "[daemon] data_dir" in message
        assert list(state.iterdir()) == []
        assert_unchanged(before)
    finally:
        shutil.rmtree(base)


def test_migrate_refuses_a_root_owned_cluster_cleanly(tmp_path: Path) -> None:
    """PostgreSQL cannot run as root; an existing root-owned cluster is an
    error naming it, not a chown."""
    pgdata = tmp_path / "data" / "postgres"
    pgdata.mkdir(parents=True)
    (pgdata / "PG_VERSION").write_text("16\n")
    config = tmp_path / "z.toml"
    config.write_text(f'[daemon]\ndata_dir = "{tmp_path / "data"}"\n')
    before = snapshot(tmp_path)
    out = subprocess.run(
        [sys.executable, "-m", "zmartd", "migrate", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    assert f"owned by root, and PostgreSQL cannot run as root: {pgdata}." in out.stderr
    assert "Traceback" not in out.stderr
    assert_unchanged(before)


NORMAL_USER_SCRIPT = """
import site, sys
site.addsitedir(sys.argv[2])  # the test virtualenv's packages, zmartd included
import json, os, trio, trio_asyncio, asyncpg
from pathlib import Path
from zmartd.storage.embedded import EmbeddedPostgres

async def main():
    server = await EmbeddedPostgres.start(Path(sys.argv[1]))
    try:
        async with trio_asyncio.open_loop():
            con = await trio_asyncio.aio_as_trio(asyncpg.connect)(server.dsn)
            user = await trio_asyncio.aio_as_trio(con.fetchval)("SELECT current_user")
            await trio_asyncio.aio_as_trio(con.close)()
        pid = int((server.pgdata / "postmaster.pid").read_text().split()[0])
        result = {"pgdata": str(server.pgdata), "bindir": str(server.placement.bindir),
                  "pid": pid, "uid": os.stat(f"/proc/{pid}").st_uid, "role": user}
        print("RESULT", json.dumps(result))
    finally:
        await server.stop()

trio.run(main)
"""


def python_for(user: pwd.struct_passwd) -> str:
    """This Python (its realpath, e.g. under /root/.pyenv, may be out of
    reach), or the system's one of the same version."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (os.path.realpath(sys.executable), f"/usr/bin/{version}"):
        try:
            subprocess.run(
                [candidate, "-c", "pass"],
                user=user.pw_uid,
                group=user.pw_gid,
                extra_groups=[],
                cwd="/",
                check=True,
                timeout=30,
            )
        except (OSError, subprocess.CalledProcessError):
            continue
        return candidate
    pytest.skip(f"no {version} that {user.pw_name} can run")


def test_normal_user_runs_the_cluster_in_the_data_dir_as_itself() -> None:
    """As a normal user (``nobody`` here) nothing changes: the cluster is
    ``<data_dir>/postgres``, the binaries run from the virtualenv, PostgreSQL
    runs as that user, and nothing under /var/lib/zmartd is made for it."""
    nobody = pwd.getpwnam("nobody")
    site_packages = pginstall_dir().parent.parent
    base = Path(tempfile.mkdtemp(prefix="zmartd-user-", dir="/tmp"))
    try:
        base.chmod(0o755)
        data_dir = base / "data"
        data_dir.mkdir(mode=0o700)
        os.chown(data_dir, nobody.pw_uid, nobody.pw_gid)
        before = snapshot(base, *state_dirs())
        state_before = {p.name for p in (STATE_DIR / "postgres").glob("*")}
        out = subprocess.run(
            [python_for(nobody), "-c", NORMAL_USER_SCRIPT, str(data_dir), str(site_packages)],
            capture_output=True,
            text=True,
            timeout=120,
            cwd="/",
            user=nobody.pw_uid,
            group=nobody.pw_gid,
            extra_groups=[],
            env={**os.environ, "HOME": str(data_dir)},
        )
        assert out.returncode == 0, out.stderr
        line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))
        result = json.loads(line.removeprefix("RESULT "))
        assert result["pgdata"] == str(data_dir / "postgres")
        assert result["bindir"] == str(pginstall_dir() / "bin")
        assert result["uid"] == nobody.pw_uid and result["role"] == "postgres"
        assert (data_dir / "postgres").stat().st_uid == nobody.pw_uid
        assert not (data_dir / "postgres" / "postmaster.pid").exists()
        assert {p.name for p in (STATE_DIR / "postgres").glob("*")} == state_before
        assert_unchanged(before)
    finally:
        kill_postmaster(base / "data" / "postgres")
        shutil.rmtree(base, ignore_errors=True)


def test_root_long_data_dir_path_gets_a_private_socket_dir() -> None:
    """A cluster path too long for a Unix socket puts the socket in a 0700
    directory of the server's user in the temp dir; the server answers."""
    base = Path(tempfile.mkdtemp(prefix="zmartd-root-", dir="/tmp"))
    base.chmod(0o755)
    data_dir = base / ("x" * 60) / ("y" * 40)

    async def main() -> tuple[Path, int]:
        server = await EmbeddedPostgres.start(data_dir)
        try:
            async with trio_asyncio.open_loop():
                con = await trio_asyncio.aio_as_trio(asyncpg.connect)(server.dsn)
                try:
                    answer = await trio_asyncio.aio_as_trio(con.fetchval)("SELECT 42")
                finally:
                    await trio_asyncio.aio_as_trio(con.close)()
            return server.socket_dir, answer
        finally:
            await server.stop()

    socket_dir = None
    try:
        socket_dir, answer = trio.run(main)
        assert answer == 42
        assert socket_dir.parent == Path(tempfile.gettempdir())
        st = socket_dir.lstat()
        assert (st.st_mode & 0o777, pwd.getpwuid(st.st_uid).pw_name) == (0o700, SYSTEM_USER)
    finally:
        kill_postmaster(data_dir / "postgres")
        shutil.rmtree(base, ignore_errors=True)
        if socket_dir is not None:
            shutil.rmtree(socket_dir, ignore_errors=True)


def test_root_runs_an_existing_cluster_as_its_owner() -> None:
    """A cluster made earlier by another user (clusters of older versions are
    owned by ``pgserver``; ``nobody`` stands in here) is used where it is, as
    that user, not re-owned."""
    nobody = pwd.getpwnam("nobody")
    base = Path(tempfile.mkdtemp(prefix="zmartd-root-", dir="/tmp"))
    pgdata = base / "postgres"
    try:
        base.chmod(0o755)
        pgdata.mkdir(mode=0o700)
        os.chown(pgdata, nobody.pw_uid, nobody.pw_gid)
        initdb = pginstall_dir() / "bin" / "initdb"
        subprocess.run([str(initdb), "-D", str(pgdata), "-U", "postgres", "--auth=trust"],
                       user=nobody.pw_uid, group=nobody.pw_gid, extra_groups=[], cwd="/",
                       capture_output=True, check=True, timeout=120)  # fmt: skip
        before = snapshot(base)

        async def main() -> int:
            server = await EmbeddedPostgres.start(base)
            try:
                assert server.pgdata == pgdata and server.placement.run_as == "nobody"
                return postmaster(pgdata)
            finally:
                await server.stop()

        pid = trio.run(main)
        assert not (pgdata / "postmaster.pid").exists()
        with pytest.raises(ProcessLookupError):
            for _ in range(50):
                os.kill(pid, 0)
                time.sleep(0.1)
        # directories only: PostgreSQL itself rewrites and removes files in pgdata
        assert_unchanged({k: v for k, v in before.items() if Path(k).is_dir()})
    finally:
        kill_postmaster(pgdata)
        shutil.rmtree(base, ignore_errors=True)
