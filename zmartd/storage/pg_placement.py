"""Where the embedded PostgreSQL lives and as whom it runs.

PostgreSQL refuses to run as root, so a root zmartd must run it as another
user, and that user must be able to reach the cluster directory and the
server binaries (which ``pgserver`` ships inside the virtualenv).  pgserver's
own answer is to ``chmod o+rx`` every ancestor of both -- which turns
``/root`` world-readable on a typical VPS.  zmartd never changes the mode or
owner of a directory it did not create; instead, as root:

* PostgreSQL runs as the system user :data:`SYSTEM_USER` (created with
  ``useradd --system`` when missing; no home, no login shell);
* a new cluster goes to ``<data_dir>/postgres`` when that user can already
  traverse ``data_dir`` and its ancestors, else to
  ``/var/lib/zmartd/postgres/<id>`` where ``<id>`` is derived from the
  resolved ``data_dir`` path (``<id>.data_dir`` beside it names that path);
  an existing cluster in either place is used where it is, run as its owner
  (so clusters made by earlier versions, owned by ``pgserver``, keep working);
* when the binaries are not reachable for that user, ``initdb``,
  ``pg_ctl`` and ``postgres`` with the libraries and share files they load
  (about 19 MB) are copied once to ``/var/lib/zmartd/pginstall/<key>``
  (``<key>`` = PostgreSQL and pgserver versions).

zmartd creates ``/var/lib/zmartd`` and its subdirectories itself (mode 755,
the cluster 700); if one exists and is not usable, or the user cannot be
created, :class:`EmbeddedPostgresRefused` names the directory and the two
ways out.  As a normal user nothing of this applies: the cluster is
``<data_dir>/postgres`` and the binaries run in place.

The socket lives in the cluster directory unless that path is too long for a
Unix socket; then it goes to ``<tmp>/zmartd-pg-<hash>``, a 0700 directory of
the server's user (refused if it exists otherwise).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "STATE_DIR",
    "SYSTEM_USER",
    "Account",
    "EmbeddedPostgresError",
    "EmbeddedPostgresRefused",
    "Placement",
    "cluster_id",
    "pginstall_dir",
    "place",
]

SYSTEM_USER = "zmartd-postgres"
STATE_DIR = Path("/var/lib/zmartd")
# The socket is <dir>/.s.PGSQL.5432 and sun_path holds 107 bytes plus NUL.
_SOCKET_NAME = ".s.PGSQL.5432"
_SUN_PATH_MAX = 107
# What initdb/pg_ctl/postgres need at run time, relative to site-packages.
_BINARIES = ("initdb", "pg_ctl", "postgres")
_TREES = ("pgserver/pginstall/lib/postgresql", "pgserver/pginstall/share", "pgserver.libs")

WAYS_OUT = (
    "Either set [database] dsn to a PostgreSQL server you run, or set [daemon] data_dir to "
    "a directory that every user can traverse (mode o+x on it and all its ancestors, e.g. "
    "under /srv or /opt). zmartd does not change the permissions of directories it did "
    "not create."
)


class EmbeddedPostgresError(RuntimeError):
    """The embedded server cannot start (the message says why)."""


class EmbeddedPostgresRefused(EmbeddedPostgresError):
    """The embedded server cannot be arranged without loosening permissions."""

    def __init__(self, reason: str, path: Path) -> None:
        self.path = path
        super().__init__(f"embedded PostgreSQL refused: {reason}: {path}. {WAYS_OUT}")


@dataclass(frozen=True)
class Account:
    """The unprivileged user PostgreSQL runs as (only when zmartd is root)."""

    name: str
    uid: int
    gid: int
    groups: frozenset[int]

    @classmethod
    def of(cls, entry: pwd.struct_passwd) -> Account:
        groups = frozenset(os.getgrouplist(entry.pw_name, entry.pw_gid))
        return cls(entry.pw_name, entry.pw_uid, entry.pw_gid, groups)


@dataclass(frozen=True)
class Placement:
    """Everything the server's lifecycle needs to know about its location."""

    pgdata: Path
    bindir: Path
    socket_dir: Path
    account: Account | None  # None: run as ourselves

    # Beside the cluster, not in it: the directory above is zmartd's, while
    # PostgreSQL's user could plant a symlink inside pgdata for root to write
    # through.
    @property
    def lock_file(self) -> Path:
        return self.pgdata.parent / f"{self.pgdata.name}.lock"

    @property
    def owners_file(self) -> Path:
        return self.pgdata.parent / f"{self.pgdata.name}.owners"

    @property
    def run_as(self) -> str:
        if self.account:
            return self.account.name
        try:
            return pwd.getpwuid(os.geteuid()).pw_name
        except KeyError:  # containers may run an uid without a passwd entry
            return str(os.geteuid())


def cluster_id(data_dir: Path) -> str:
    """A stable name for ``data_dir``'s cluster under :data:`STATE_DIR`."""
    return hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:16]


def pginstall_dir() -> Path:
    """pgserver's ``pginstall`` directory, found without importing pgserver
    (its import creates a runtime directory and a lock file)."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedPostgresError("the pgserver package (embedded PostgreSQL) is not installed")
    pginstall = Path(next(iter(spec.submodule_search_locations))) / "pginstall"
    missing = [b for b in _BINARIES if not (pginstall / "bin" / b).is_file()]
    if missing:
        raise EmbeddedPostgresError(
            f"pgserver's wheel lacks {', '.join(missing)} in {pginstall / 'bin'} "
            "(a pgserver version with another layout?)"
        )
    return pginstall


def place(data_dir: Path, *, state_dir: Path = STATE_DIR) -> Placement:
    """Decide (and create what is missing) where the embedded server runs."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pgdata = data_dir / "postgres"
        pgdata.mkdir(mode=0o700, exist_ok=True)
        return Placement(pgdata, pginstall_dir() / "bin", _socket_dir(pgdata, None), None)
    account = _system_account(data_dir)
    in_data_dir = data_dir / "postgres"
    in_state_dir = state_dir / "postgres" / cluster_id(data_dir)
    for existing in (in_data_dir, in_state_dir):
        if (existing / "PG_VERSION").exists():
            return _as_owner(existing, state_dir)
    if in_data_dir.exists() and in_data_dir.stat().st_uid != 0:
        return _as_owner(in_data_dir, state_dir)  # an earlier, unfinished initdb
    try:
        if not in_data_dir.exists() and _first_untraversable(data_dir, account) is None:
            _create_owned(in_data_dir, account)
            pgdata = in_data_dir
        else:
            _make_dirs(state_dir / "postgres", 0o755, account)
            _create_owned(in_state_dir, account)
            (in_state_dir.parent / f"{in_state_dir.name}.data_dir").write_text(f"{data_dir}\n")
            pgdata = in_state_dir
    except OSError as exc:  # e.g. no CAP_CHOWN in a container
        raise EmbeddedPostgresRefused(
            f"cannot prepare the cluster directory ({exc})", Path(exc.filename or data_dir)
        ) from exc
    return _as_owner(pgdata, state_dir)


def _create_owned(path: Path, account: Account) -> None:
    """Create ``path`` (mode 700) owned by ``account``, atomically, so that a
    concurrent zmartd never sees it root-owned; an existing one is kept."""
    if path.exists():
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.mkdir(mode=0o700)
    try:
        os.chown(tmp, account.uid, account.gid)
        os.rename(tmp, path)  # fails (non-empty) if another zmartd ran initdb there
    except OSError:
        if not path.exists():
            raise
    finally:
        if tmp.exists():
            tmp.rmdir()


def _as_owner(pgdata: Path, state_dir: Path) -> Placement:
    """Run the cluster in ``pgdata`` as the user owning it (root: refused)."""
    st = pgdata.stat()
    if st.st_uid == 0:
        raise EmbeddedPostgresRefused(
            "the cluster directory is owned by root, and PostgreSQL cannot run as root", pgdata
        )
    try:
        account = Account.of(pwd.getpwuid(st.st_uid))
    except KeyError:
        raise EmbeddedPostgresRefused(
            f"the cluster directory's owner (uid {st.st_uid}) has no passwd entry", pgdata
        ) from None
    blocked = _first_untraversable(pgdata.parent, account)
    if blocked is not None:
        raise EmbeddedPostgresRefused(
            f"user {account.name} (which runs PostgreSQL) cannot traverse", blocked
        )
    bindir = _reachable_binaries(account, state_dir)
    return Placement(pgdata, bindir, _socket_dir(pgdata, account), account)


def _system_account(data_dir: Path) -> Account:
    """:data:`SYSTEM_USER`, created when missing (no home, no login shell)."""
    try:
        return Account.of(pwd.getpwnam(SYSTEM_USER))
    except KeyError:
        pass
    cmd = ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir",
           "/nonexistent", "--shell", "/usr/sbin/nologin", "--comment",
           "zmartd embedded PostgreSQL", SYSTEM_USER]  # fmt: skip
    try:
        why = subprocess.run(cmd, capture_output=True, text=True, timeout=30).stderr.strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        why = str(exc)
    try:  # also when a concurrent zmartd created it first
        return Account.of(pwd.getpwnam(SYSTEM_USER))
    except KeyError:
        raise EmbeddedPostgresRefused(
            f"cannot create the system user {SYSTEM_USER} ({why}; `{' '.join(cmd)}` "
            "creates it) to run PostgreSQL for the data directory",
            data_dir,
        ) from None


def _may(st: os.stat_result, account: Account, user: int, group: int, other: int) -> bool:
    if st.st_uid == account.uid:
        return bool(st.st_mode & user)
    if st.st_gid in account.groups:
        return bool(st.st_mode & group)
    return bool(st.st_mode & other)


def _traversable(path: Path, account: Account) -> bool:
    return _may(path.stat(), account, stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH)


def _first_untraversable(directory: Path, account: Account) -> Path | None:
    """The first of ``directory`` and its ancestors ``account`` cannot enter."""
    for path in (*reversed(directory.parents), directory):
        if not _traversable(path, account):
            return path
    return None


def _make_dirs(path: Path, mode: int, account: Account) -> None:
    """Create ``path`` and missing parents with exactly ``mode``.  Existing
    directories are left as they are, so each must already be traversable by
    ``account``; the first that is not is refused before anything is created
    beneath it."""
    for directory in (*reversed(path.parents), path):
        if directory.is_dir():
            if not _traversable(directory, account):
                raise EmbeddedPostgresRefused(
                    f"user {account.name} (which runs PostgreSQL) cannot traverse", directory
                )
            continue
        try:
            directory.mkdir(mode=mode)
        except FileExistsError:
            continue  # a concurrent zmartd created it (its way)
        except OSError as exc:
            raise EmbeddedPostgresRefused(f"cannot create a directory ({exc})", directory) from exc
        directory.chmod(mode)  # created just now: the umask must not narrow it


def _reachable_binaries(account: Account, state_dir: Path) -> Path:
    """pgserver's ``bin`` if ``account`` can use it in place, else the copy."""
    site = pginstall_dir().parent.parent
    needed = [site / "pgserver/pginstall/bin" / b for b in _BINARIES]
    needed += [site / t for t in _TREES if (site / t).exists()]
    if all(_usable(p, account) for p in needed):
        return site / "pgserver/pginstall/bin"
    return _cached_copy(site, account, state_dir)


def _usable(path: Path, account: Account) -> bool:
    if _first_untraversable(path.parent, account) is not None:
        return False
    if path.is_dir():
        return all(
            _may(p.stat(), account, stat.S_IRUSR, stat.S_IRGRP, stat.S_IROTH)
            and (not p.is_dir() or _traversable(p, account))
            for p in (path, *path.rglob("*"))
        )
    return _may(path.stat(), account, stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH)


def _cache_key(site: Path) -> str:
    postgres = site / "pgserver/pginstall/bin/postgres"
    try:
        out = subprocess.run([str(postgres), "-V"], capture_output=True, text=True, check=True,
                             timeout=30).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        raise EmbeddedPostgresError(f"cannot run {postgres} -V: {exc}") from exc
    pg_version = out.split()[-1]  # "postgres (PostgreSQL) 16.2"
    return f"pg{pg_version}-pgserver{importlib.metadata.version('pgserver')}"


def _cached_copy(site: Path, account: Account, state_dir: Path) -> Path:
    """Copy what the server needs to ``<state_dir>/pginstall/<key>`` once,
    keeping the site-packages layout (initdb finds libpq through the relative
    rpath ``$ORIGIN/../../../pgserver.libs``, and PostgreSQL finds its share
    and lib directories relative to its binaries)."""
    cache = state_dir / "pginstall"
    final = cache / _cache_key(site)
    bindir = final / "pgserver/pginstall/bin"
    if not final.exists():
        _make_dirs(cache, 0o755, account)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=cache))
        try:
            for name in _BINARIES:
                target = tmp / "pgserver/pginstall/bin" / name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(site / "pgserver/pginstall/bin" / name, target)
            for tree in _TREES:
                if (site / tree).exists():
                    shutil.copytree(site / tree, tmp / tree, copy_function=shutil.copyfile)
            for path in (tmp, *tmp.rglob("*")):
                executable = path.is_dir() or path.parent.name == "bin" or ".so" in path.name
                path.chmod(0o755 if executable else 0o644)
            os.rename(tmp, final)
        except FileExistsError:
            pass  # another zmartd finished the same copy first
        except OSError as exc:
            if not final.exists():
                raise EmbeddedPostgresRefused(
                    f"cannot copy the PostgreSQL binaries ({exc})", cache
                ) from exc
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    blocked = _first_untraversable(bindir, account)
    if blocked is not None:
        raise EmbeddedPostgresRefused(
            f"user {account.name} (which runs PostgreSQL) cannot traverse", blocked
        )
    return bindir


def _socket_dir(pgdata: Path, account: Account | None) -> Path:
    """``pgdata`` when the socket path fits ``sun_path``, else a private
    directory in the temp dir (created here, owned by whoever runs the server)."""
    if len(str(pgdata / _SOCKET_NAME).encode()) <= _SUN_PATH_MAX:
        return pgdata
    uid = account.uid if account else os.geteuid()
    digest = hashlib.sha256(bytes(pgdata)).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"zmartd-pg-{digest}"
    if account:
        _create_owned(path, account)
    else:
        path.mkdir(mode=0o700, exist_ok=True)
    st = path.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid or stat.S_IMODE(st.st_mode) != 0o700:
        raise EmbeddedPostgresRefused(
            "the data directory's path is too long for a Unix socket, and the socket "
            "directory in its place is not a private directory of the server's user",
            path,
        )
    return path
