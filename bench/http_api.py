"""The REST API under load, against a bare ASGI baseline measured in the same run.

Run from the repository root (about 3 minutes; needs ``wrk`` on PATH --
Debian: ``apt-get install wrk`` -- and the PostgreSQL of ``ZMARTD_TEST_PG``,
default ``postgresql://postgres@127.0.0.1:5432/postgres``)::

    .venv/bin/python bench/http_api.py
    .venv/bin/python bench/http_api.py --seconds 5 --connections 100   # quicker
    .venv/bin/python bench/http_api.py --profile /tmp/prof              # + py-spy of zmartd

What it does:

1. creates a database ``zmartd_bench_<pid>``, migrates it and seeds
   ``--markets`` ACTIVE markets with creator metadata through the storage
   layer (``edit_metadata``, ``upsert_markets``);
2. starts a real daemon, ``python -m zmartd --config <tmp>/bench.toml``, with
   storage + http only: ``[ws] enabled = false``, ``[chain] mode = "rpc"``
   pointed at a closed port with ``required = false`` (so no devchain; the
   indexer actor exists in every tree and retries its connection in the
   background, as a daemon with a dead RPC would), and **``[ratelimit]
   enabled = false``** (otherwise one client IP gets 429 after 120 reads);
   every other setting is the default (``max_in_flight = 512``,
   ``cache_ttl = 30``, metrics on);
3. starts the baseline, ``bench/_http_baseline.py``: a bare ASGI callable
   answering ``{"hello":"world"}``, served like zmartd (hypercorn's trio
   worker on zmartd's accept loop, ``zmartd.api.server.serve``) with the
   hypercorn settings zmartd derives from the same TOML file; and the
   same answer from a one-route Quart-Trio app (``--app quart``), which
   tells the framework's share of a request from zmartd's own;
4. for each ``--connections`` level: baseline, quart-trio hello,
   ``GET /v1/markets/{id}`` (one market, so answers are hot-cache hits
   except when its 30 s TTL runs out; fresh hits are answered by the fast
   path, ``zmartd/api/fastpath.py``, before Quart), the same market as
   ``GET //v1/markets/{id}`` (``{id} via Quart``: Quart normalises the
   doubled slash and answers from the same cache entry, but the fast path
   looks up the raw path and passes it on -- the cost of a cached hit
   through Quart, for comparison), ``GET /v1/markets`` (first page,
   cached), baseline again -- each a ``wrk -t 1`` run of ``--seconds``
   after a short warm-up.  ``ratio`` is req/s over the mean of the two
   baseline runs around it.  From ``--check-from`` connections on, a trio
   client in this process then runs the same closed loop against the
   baseline and both zmartd routes, counting what wrk cannot see: wrk
   counts a timeout only when a late answer finally arrives, never a
   request still unanswered when the run ends, and starts its clock after
   the TCP connect (a connect stuck in SYN retransmits behind a full
   listen queue costs 1 s, 3 s ...).  The trio client's timeout covers the
   connect, and a client that gives up closes its socket and reconnects,
   as browsers and proxies do;
5. stops the servers and drops the database -- also on Ctrl-C / SIGTERM.

wrk runs one thread (this machine has 2 cores: more would starve the
servers) with a Lua script that tallies status codes and ``X-Cache``
values.  Per measurement it prints req/s, p50/p99/max latency of the
answered requests, non-2xx answers (503 = load shedding), socket errors
(connect/read/write) and timeouts (no answer within ``--timeout``), the
server's CPU time per request and share of a core, the trio client's own
CPU share, the kernel's listen-queue overflows (``ovfl``) and the 1-minute
load average (other programs on the machine compete for the same two
cores).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import hashlib
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
ADMIN_DSN = os.environ.get("ZMARTD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
CLK_TCK = os.sysconf("SC_CLK_TCK")
LAMPORTS = 1_000_000_000

#: wrk script: count statuses and X-Cache values per thread, sum them in done()
#: and print one JSON line (latencies in microseconds).
WRK_LUA = r"""
statuses = {}
caches = {}
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  local x = headers["x-cache"] or headers["X-Cache"]
  if x ~= nil then caches[x] = (caches[x] or 0) + 1 end
end

local function obj(t)
  local parts = {}
  for k, v in pairs(t) do
    parts[#parts + 1] = string.format('"%s":%d', tostring(k), v)
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

function done(summary, latency, requests)
  local st, xc = {}, {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("statuses") or {}) do st[k] = (st[k] or 0) + v end
    for k, v in pairs(t:get("caches") or {}) do xc[k] = (xc[k] or 0) + v end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"statuses":%s,"cache":%s}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(99), latency.max,
    obj(st), obj(xc)))
end
"""


class BenchError(Exception):
    """Something the bench needs is missing or broke (printed, exit 1)."""


# --------------------------------------------------------------------------- database


def _dsn_for(database: str) -> str:
    return urlunsplit(urlsplit(ADMIN_DSN)._replace(path=f"/{database}"))


def _admin(sql: str) -> None:
    import asyncpg

    async def run() -> None:
        con = await asyncpg.connect(ADMIN_DSN, timeout=10)
        try:
            await con.execute(sql)
        finally:
            await con.close()

    asyncio.run(run())


def market_id(n: int) -> str:
    return hashlib.sha256(f"bench-market{n}".encode()).hexdigest()


def seed(dsn: str, count: int) -> None:
    """``count`` ACTIVE markets with metadata, written by the storage layer
    exactly as the API's creators and the indexer write them."""
    import trio
    import trio_asyncio
    from solders.pubkey import Pubkey

    from zmartd.storage import markets
    from zmartd.storage.database import Database
    from zmartd.storage.migrate import migrate
    from zmartd.storage.records import MarketChainState

    def store(meta: markets.MarketMetadataInput) -> markets.MetadataDecision:
        """Register ``meta`` as it is (seeding; the API's rules are not this bench's)."""
        return lambda market, existing: meta

    def key(label: str, n: int) -> str:
        return str(Pubkey(hashlib.sha256(f"bench-{label}{n}".encode()).digest()))

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    categories = ("crypto", "sports", "politics", "science", "culture")

    async def run() -> None:
        async with trio_asyncio.open_loop():
            db = await Database.connect(dsn, min_size=1, max_size=4, statement_timeout=30)
            try:
                await migrate(db)
                states = []
                for n in range(count):
                    mid, creator = market_id(n), key("creator", n % 97)
                    # Metadata first, as a creator registers it before the market leaves
                    # PROPOSED (the chain row below is ACTIVE).
                    metadata = markets.MarketMetadataInput(
                        title=f"Will benchmark market #{n} resolve YES?",
                        description="A seeded market for bench/http_api.py. " * 6,
                        category=categories[n % len(categories)],
                        tags=("bench", f"group-{n % 10}"),
                        resolution_source="https://example.com/source",
                        end_time=t0 + timedelta(days=30 + n % 300),
                    )
                    await markets.edit_metadata(
                        db, market_id=mid, creator=creator, decide=store(metadata)
                    )
                    b = 100 * LAMPORTS
                    states.append(
                        MarketChainState(
                            market_id=mid,
                            address=key("address", n),
                            creator=creator,
                            state=2,
                            b_parameter=b,
                            initial_liquidity=b,
                            current_liquidity=b + n * 1000,
                            shares_yes=b // 1000 + n * 7919,
                            shares_no=b // 1000,
                            total_volume=n * 3 * LAMPORTS,
                            created_at=t0 + timedelta(minutes=n),
                            slot=1000 + n,
                            activated_at=t0 + timedelta(minutes=n, seconds=30),
                        )
                    )
                await markets.upsert_markets(db, states)
            finally:
                await db.close()

    trio.run(run)


# --------------------------------------------------------------------------- processes


def _drop_script_dir() -> None:
    """Run as ``python bench/http_api.py``, this file's directory comes first on
    ``sys.path``; keep it off so that no bench module can shadow a library
    module (this file was once ``bench/http.py`` and hid the stdlib ``http``)."""
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def write_config(directory: Path, dsn: str, port: int, http: dict[str, int]) -> Path:
    path = directory / "bench.toml"
    path.write_text(f"""\
# bench/http_api.py: storage + http only; every unlisted setting is zmartd's default.
[daemon]
data_dir = "{directory}"
instance_name = "bench"
shutdown_timeout = 5.0

[http]
host = "127.0.0.1"
port = {port}
public_url = "http://127.0.0.1:{port}"
{"".join(f"{key} = {value}" + chr(10) for key, value in http.items())}
[ratelimit]
enabled = false

[ws]
enabled = false

[database]
dsn = "{dsn}"
embedded = false

[chain]
mode = "rpc"
rpc_urls = ["http://127.0.0.1:9"]
max_retries = 0
required = false

[log]
level = "warning"
format = "json"
""")
    return path


def _pin(cpu: int | None) -> Any:
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    url: str

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process so far (from /proc)."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def wait_idle(self, limit: float = 10.0) -> None:
        """Until the process uses < 10 % of a core over 0.3 s (at most
        ``limit`` s): a run must not inherit the work that the previous one
        left queued (requests of clients that gave up are still served)."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            before = self.cpu_seconds()
            time.sleep(0.3)
            if self.cpu_seconds() - before < 0.03:
                return

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise BenchError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_server(
    name: str, cmd: list[str], log: Path, url: str, probe: str, cpu: int | None
) -> Server:
    import urllib.error
    import urllib.request

    with open(log, "wb") as out:
        # Own session: a Ctrl-C reaches this process (which stops the servers
        # in order, then drops the database), not the servers mid-measurement.
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_pin(cpu),
            start_new_session=True,
        )
    server = Server(name, proc, log, url)
    deadline = time.monotonic() + 60
    while True:
        server.check_alive()
        try:
            with urllib.request.urlopen(url + probe, timeout=2) as r:
                if r.status == 200:
                    return server
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise BenchError(f"{name} did not answer {probe} within 60 s:\n{server.tail()}")
        time.sleep(0.2)


# --------------------------------------------------------------------------- wrk


@dataclass
class Result:
    target: str
    connections: int
    requests: int
    seconds: float
    statuses: dict[str, int]
    cache: dict[str, int]
    errors: dict[str, int]
    p50_ms: float
    p99_ms: float
    max_ms: float
    bytes_per_response: float
    cpu_us_per_request: float
    cpu_share: float
    load1: float
    ratio: float | None = None
    client: str = "wrk"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def non_2xx(self) -> int:
        return sum(n for s, n in self.statuses.items() if not 200 <= int(s) < 300)


def run_wrk(
    url: str, connections: int, seconds: int, timeout: int, script: Path, cpu: int | None
) -> dict[str, Any]:
    cmd = [
        "wrk",
        "-t",
        "1",
        "-c",
        str(connections),
        "-d",
        f"{seconds}s",
        "--timeout",
        f"{timeout}s",
        "-s",
        str(script),
        url,
    ]
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=seconds + timeout + 30, preexec_fn=_pin(cpu)
    )
    match = re.search(r"^BENCHJSON (.*)$", done.stdout, re.M)
    if done.returncode != 0 or match is None:
        raise BenchError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    result: dict[str, Any] = json.loads(match.group(1))
    return result


def measure(
    server: Server, path: str, label: str, connections: int, args: argparse.Namespace, script: Path
) -> Result:
    url = server.url + path
    server.check_alive()
    server.wait_idle()
    if args.warmup > 0:
        run_wrk(url, connections, args.warmup, args.timeout, script, args.client_cpu)
    load1 = os.getloadavg()[0]
    overflows = listen_overflows()
    cpu0 = server.cpu_seconds()
    raw = run_wrk(url, connections, args.seconds, args.timeout, script, args.client_cpu)
    cpu = server.cpu_seconds() - cpu0
    server.check_alive()
    seconds = raw["duration_us"] / 1e6
    requests = raw["requests"]
    result = Result(
        target=label,
        connections=connections,
        requests=requests,
        seconds=seconds,
        statuses=raw["statuses"],
        cache=raw["cache"],
        errors={k: raw[k] for k in ("connect", "read", "write", "timeout")},
        p50_ms=raw["p50_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        bytes_per_response=raw["bytes"] / requests if requests else 0.0,
        cpu_us_per_request=cpu / requests * 1e6 if requests else 0.0,
        cpu_share=cpu / seconds if seconds else 0.0,
        load1=load1,
    )
    result.extra["listen_overflows"] = listen_overflows() - overflows
    return result


# --------------------------------------------------------------------------- timeout check


def listen_overflows() -> int:
    """The kernel's count of connections dropped because a listen queue was
    full (TcpExt ListenOverflows; machine-wide, but this bench is what
    opens 1,000 loopback connections at once)."""
    with open("/proc/net/netstat") as f:
        rows = [line.split() for line in f if line.startswith("TcpExt:")]
    return int(dict(zip(rows[0][1:], rows[1][1:], strict=True))["ListenOverflows"])


async def _closed_loop(
    host: str, port: int, path: str, connections: int, seconds: float, timeout: float
) -> dict[str, Any]:
    """``connections`` keep-alive clients, each sending the next request when
    the previous answer arrives, with a real per-request timeout that
    includes connecting (a client that gives up closes its socket and
    reconnects).  A request still unanswered when the run ends and younger
    than ``timeout`` is not counted either way."""
    import trio

    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    latencies: list[float] = []
    statuses: collections.Counter[str] = collections.Counter()
    counts: collections.Counter[str] = collections.Counter()

    async def read_response(stream: Any, buf: bytearray) -> tuple[int, bool]:
        while b"\r\n\r\n" not in buf:
            chunk = await stream.receive_some(65536)
            if not chunk:
                raise EOFError
            buf += chunk
        head, _, rest = bytes(buf).partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        headers = dict(line.lower().split(b":", 1) for line in lines[1:] if b":" in line)
        length = int(headers.get(b"content-length", b"0"))
        while len(rest) < length:
            chunk = await stream.receive_some(65536)
            if not chunk:
                raise EOFError
            rest += chunk
        buf[:] = rest[length:]
        return status, headers.get(b"connection", b"").strip() == b"close"

    async def client() -> None:
        stream: Any = None
        buf = bytearray()
        while True:
            started = trio.current_time()
            with trio.move_on_after(timeout) as scope:
                try:
                    if stream is None:
                        stream = await trio.open_tcp_stream(host, port)
                        buf.clear()
                    await stream.send_all(request)
                    status, close = await read_response(stream, buf)
                except (OSError, EOFError, trio.BrokenResourceError) as exc:
                    counts["connect" if stream is None else "read"] += 1
                    if stream is not None:
                        await stream.aclose()
                    stream = None
                    if isinstance(exc, OSError) and not isinstance(exc, trio.BrokenResourceError):
                        await trio.sleep(0.05)
                    continue
            if scope.cancelled_caught:
                counts["timeout"] += 1
                if stream is not None:
                    await stream.aclose()
                stream = None
                continue
            latencies.append(trio.current_time() - started)
            statuses[str(status)] += 1
            if close:
                await stream.aclose()
                stream = None

    async with trio.open_nursery() as nursery:
        nursery.cancel_scope.deadline = trio.current_time() + seconds
        for _ in range(connections):
            nursery.start_soon(client)
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000

    return {
        "requests": len(latencies),
        "statuses": dict(statuses),
        "errors": {k: counts[k] for k in ("connect", "read", "timeout")},
        "p50_ms": pct(50) if latencies else 0.0,
        "p99_ms": pct(99) if latencies else 0.0,
        "max_ms": latencies[-1] * 1000 if latencies else 0.0,
    }


def timeout_check(
    server: Server, path: str, label: str, connections: int, args: argparse.Namespace
) -> Result:
    """The same closed loop as wrk, from a trio client in this process that
    counts what wrk cannot: requests never answered within ``--timeout``
    (wrk only counts answers that arrive late) including the time to
    connect (wrk starts its clock after connecting)."""
    import trio

    split = urlsplit(server.url)
    server.check_alive()
    server.wait_idle()
    load1 = os.getloadavg()[0]
    overflows = listen_overflows()
    cpu0, own0 = server.cpu_seconds(), time.process_time()
    raw = trio.run(
        _closed_loop,
        split.hostname or "127.0.0.1",
        split.port or 80,
        path,
        connections,
        float(args.check_seconds),
        float(args.timeout),
    )
    cpu = server.cpu_seconds() - cpu0
    server.check_alive()
    requests = raw["requests"]
    result = Result(
        target=label,
        connections=connections,
        requests=requests,
        seconds=float(args.check_seconds),
        statuses=raw["statuses"],
        cache={},
        client="trio",
        errors={
            "connect": raw["errors"]["connect"],
            "read": raw["errors"]["read"],
            "write": 0,
            "timeout": raw["errors"]["timeout"],
        },
        p50_ms=raw["p50_ms"],
        p99_ms=raw["p99_ms"],
        max_ms=raw["max_ms"],
        bytes_per_response=0.0,
        cpu_us_per_request=cpu / requests * 1e6 if requests else 0.0,
        cpu_share=cpu / args.check_seconds,
        load1=load1,
    )
    result.extra["listen_overflows"] = listen_overflows() - overflows
    result.extra["client_cpu"] = (time.process_time() - own0) / args.check_seconds
    return result


# --------------------------------------------------------------------------- profile


def profile(
    server: Server, path: str, connections: int, args: argparse.Namespace, script: Path, out: Path
) -> Path:
    """py-spy (sampling, non-blocking) on the daemon during an extra wrk run."""
    pyspy = shutil.which("py-spy")
    if pyspy is None:
        raise BenchError("--profile needs py-spy on PATH (pip install py-spy)")
    dest = out / f"zmartd{path.replace('/', '_')}.txt"
    spy = subprocess.Popen(
        [
            pyspy,
            "record",
            "--pid",
            str(server.proc.pid),
            "--duration",
            str(int(args.seconds)),
            "--rate",
            "250",
            "--nonblocking",
            "--format",
            "raw",
            "--output",
            str(dest),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        time.sleep(1)
        run_wrk(server.url + path, connections, args.seconds, args.timeout, script, args.client_cpu)
        spy.wait(timeout=args.seconds + 30)
    finally:
        if spy.poll() is None:
            spy.kill()
            spy.wait()
    return dest


#: Frames every busy sample of the daemon passes through: left out of "inclusive".
_ROOT_FRAMES = re.compile(
    r"<frozen runpy>|\(zmartd/(__main__|cli|app)\.py\)|^(run|unrolled_run) \(trio/"
)
#: Self time is also summed per package (the first of these in the leaf's path).
_PACKAGES = (
    "zmartd/",
    "quart_trio/",
    "quart/",
    "werkzeug/",
    "hypercorn/",
    "h11/",
    "trio/",
    "msgspec",
    "prometheus_client/",
    "structlog/",
    "asyncio/",
    "asyncpg/",
)


def summarize_profile(collapsed: Path, top: int = 20) -> str:
    """Self time per package, and inclusive and self shares per function
    (file:line dropped), of a py-spy ``raw`` (collapsed stacks) file.  With
    ``--nonblocking`` some stacks are torn (sampled mid-update); they still
    count for self time."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    packages: collections.Counter[str] = collections.Counter()
    total = 0
    strip = re.compile(rf"\(/.*?(site-packages|lib/python3\.\d+|{re.escape(str(ROOT))})/")
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [strip.sub("(", re.sub(r":\d+\)$", ")", f)) for f in stack.split(";")]
        for f in set(frames):
            if not _ROOT_FRAMES.search(f):
                inclusive[f] += n
        own[frames[-1]] += n
        packages[next((p for p in _PACKAGES if f"({p}" in frames[-1]), "other")] += n
    if total == 0:
        return "  (no samples)"
    lines = [f"  {total} samples (busy time only)", "  self time by package:"]
    lines += [f"    {n / total:6.1%}  {p}" for p, n in packages.most_common()]
    lines.append("  inclusive:")
    lines += [f"    {n / total:6.1%}  {f}" for f, n in inclusive.most_common(top)]
    lines.append("  self:")
    lines += [f"    {n / total:6.1%}  {f}" for f, n in own.most_common(top)]
    return "\n".join(lines)


# --------------------------------------------------------------------------- report


def _fmt_counts(counts: dict[str, int]) -> str:
    return " ".join(f"{k}:{v}" for k, v in sorted(counts.items())) or "-"


def print_table(results: Sequence[Result]) -> None:
    head = (
        f"{'conns':>5} {'client':<6} {'target':<22}{'req/s':>7}{'ratio':>7}{'p50 ms':>8}"
        f"{'p99 ms':>8}{'max ms':>8}{'non-2xx':>8}{'conn/rd/wr':>11}{'tmo':>6}"
        f"{'cpu us/req':>11}{'cpu':>6}{'cli':>5}{'B/resp':>7}{'ovfl':>6}{'load1':>6}"
        f"  statuses / X-Cache"
    )
    print(head)
    for r in results:
        ratio = f"{r.ratio:.2f}" if r.ratio is not None else "-"
        sock = f"{r.errors['connect']}/{r.errors['read']}/{r.errors['write']}"
        print(
            f"{r.connections:>5} {r.client:<6} {r.target:<22}{r.rps:>7.0f}{ratio:>7}"
            f"{r.p50_ms:>8.1f}{r.p99_ms:>8.1f}{r.max_ms:>8.0f}{r.non_2xx:>8}{sock:>11}"
            f"{r.errors['timeout']:>6}{r.cpu_us_per_request:>11.0f}{r.cpu_share:>6.0%}"
            f"{r.extra.get('client_cpu', 0):>5.0%}"
            f"{r.bytes_per_response:>7.0f}{r.extra.get('listen_overflows', 0):>6}"
            f"{r.load1:>6.2f}  {_fmt_counts(r.statuses)} / {_fmt_counts(r.cache)}",
            flush=True,
        )


# --------------------------------------------------------------------------- main


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM and SIGINT unwind as KeyboardInterrupt, so every ``finally``
    below runs (SIGINT explicitly: a shell starts background jobs with it
    ignored, and Python then installs no handler of its own)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--connections",
        type=int,
        nargs="+",
        default=[100, 1000],
        help="concurrency levels (default: 100 1000)",
    )
    p.add_argument("--seconds", type=int, default=10, help="per measurement (default 10)")
    p.add_argument("--warmup", type=int, default=1, help="wrk warm-up before each (1; 0: none)")
    p.add_argument(
        "--timeout",
        type=int,
        default=2,
        help="a request unanswered after this many seconds counts as a timeout "
        "(wrk --timeout; default 2)",
    )
    p.add_argument(
        "--check-from",
        type=int,
        default=1000,
        metavar="N",
        help="at N connections and more, also run the trio timeout check after wrk (default 1000)",
    )
    p.add_argument("--check-seconds", type=int, default=8, help="per timeout check (8)")
    p.add_argument("--markets", type=int, default=1000, help="markets seeded (default 1000)")
    p.add_argument(
        "--max-in-flight",
        type=int,
        metavar="N",
        help="zmartd's [http] max_in_flight (default: zmartd's default)",
    )
    p.add_argument("--pin", action="store_true", help="pin wrk to CPU 0 and both servers to CPU 1")
    p.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="after the measurements, py-spy the daemon during one extra run per "
        "zmartd target at the first concurrency level; stacks go to DIR",
    )
    args = p.parse_args(argv)
    args.client_cpu = 0 if args.pin else None
    args.server_cpu = 1 if args.pin else None
    return args


def main(argv: Sequence[str] | None = None) -> int:
    _drop_script_dir()
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print("bench/http_api.py needs wrk on PATH (Debian: apt-get install wrk)", file=sys.stderr)
        return 1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(args.connections) * 2 + 256
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    database = f"zmartd_bench_{os.getpid()}"
    dsn = _dsn_for(database)
    servers: list[Server] = []
    created = False
    with terminate_as_interrupt(), tempfile.TemporaryDirectory(prefix="zmartd-bench-") as tmp:
        work = Path(tmp)
        script = work / "count.lua"
        script.write_text(WRK_LUA)
        try:
            _admin(f'CREATE DATABASE "{database}"')
            created = True
            t = time.perf_counter()
            seed(dsn, args.markets)
            print(
                f"seeded {args.markets} markets into {database} in {time.perf_counter() - t:.1f} s",
                flush=True,
            )
            port = free_port()
            http = {"max_in_flight": args.max_in_flight}
            config = write_config(work, dsn, port, {k: v for k, v in http.items() if v is not None})
            detail = f"/v1/markets/{market_id(0)}"
            zmartd = start_server(
                "zmartd",
                [sys.executable, "-m", "zmartd", "--config", str(config)],
                work / "zmartd.log",
                f"http://127.0.0.1:{port}",
                detail,
                args.server_cpu,
            )
            servers.append(zmartd)
            base_port = free_port()
            baseline = start_server(
                "baseline",
                [
                    sys.executable,
                    "-m",
                    "bench._http_baseline",
                    "--config",
                    str(config),
                    "--port",
                    str(base_port),
                ],
                work / "baseline.log",
                f"http://127.0.0.1:{base_port}",
                "/",
                args.server_cpu,
            )
            servers.append(baseline)
            quart_port = free_port()
            quart = start_server(
                "quart",
                [
                    sys.executable,
                    "-m",
                    "bench._http_baseline",
                    "--app",
                    "quart",
                    "--config",
                    str(config),
                    "--port",
                    str(quart_port),
                ],
                work / "quart.log",
                f"http://127.0.0.1:{quart_port}",
                "/",
                args.server_cpu,
            )
            servers.append(quart)
            print(
                f"wrk -t 1, {args.seconds:g} s per measurement after {args.warmup:g} s "
                f"warm-up, timeout {args.timeout:g} s; pinned: {args.pin}; "
                f"{os.cpu_count()} CPUs; load average at start "
                f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}",
                flush=True,
            )
            results: list[Result] = []
            for conns in args.connections:
                before = measure(baseline, "/", "baseline (before)", conns, args, script)
                targets = [
                    measure(quart, "/", "quart-trio hello", conns, args, script),
                    measure(zmartd, detail, "GET /v1/markets/{id}", conns, args, script),
                    measure(zmartd, "/" + detail, "{id} via Quart", conns, args, script),
                    measure(zmartd, "/v1/markets", "GET /v1/markets", conns, args, script),
                ]
                after = measure(baseline, "/", "baseline (after)", conns, args, script)
                base_rps = (before.rps + after.rps) / 2
                for r in targets:
                    r.ratio = r.rps / base_rps if base_rps else None
                block = [before, *targets, after]
                if conns >= args.check_from:
                    check = [
                        timeout_check(baseline, "/", "baseline", conns, args),
                        timeout_check(zmartd, detail, "GET /v1/markets/{id}", conns, args),
                        timeout_check(zmartd, "/v1/markets", "GET /v1/markets", conns, args),
                    ]
                    for r in check[1:]:
                        r.ratio = r.rps / check[0].rps if check[0].rps else None
                    block += check
                results += block
                print_table(block)
            print()
            print_table(results)
            if args.profile is not None:
                args.profile.mkdir(parents=True, exist_ok=True)
                for path in (detail, "/v1/markets"):
                    stacks = profile(zmartd, path, args.connections[0], args, script, args.profile)
                    print(
                        f"\npy-spy of zmartd under GET {path} at {args.connections[0]} "
                        f"connections ({stacks}):"
                    )
                    print(summarize_profile(stacks), flush=True)
            return 0
        except BenchError as exc:
            print(f"bench/http_api.py: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("interrupted; cleaning up", file=sys.stderr)
            return 130
        finally:
            for server in reversed(servers):
                server.stop()
            if created:
                _admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


if __name__ == "__main__":
    sys.exit(main())
