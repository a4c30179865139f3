"""The market monitor end to end, on real processes: the chain double on its own
(``zmartd devchain``, demo seed, its clock warped with ``zmart_warpClock``),
``zmartd`` in rpc mode on the real PostgreSQL, a webhook receiver and an SMTP
server (aiosmtpd) inside the test.

* sol-200 is resolved now; warped to 30 s before the end of its dispute
  window, the monitor does nothing for several cycles; warped past it, it
  stores one finalize intent -- the daemon is killed (SIGKILL) right then and
  restarted -- and the market is finalized exactly once on chain, at or after
  the window's end in chain time.
* eth-etf's metadata says it ended two hours ago (chain time) with no
  resolution: one "needs resolution" alert, notified once however many cycles
  see it; the webhook answers 500 twice (retried, HMAC checked on every
  attempt), the mail reaches the SMTP server; once eth-etf is resolved on
  chain, one resolved notice.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import mailbox
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.sender.conftest import AUTHORITY, module_dsn  # noqa: F401  (fixture)
from tests.sender.test_aggregator_e2e import send
from tests.sender.test_kill import rpc, spawn, sql
from tests.test_e2e_daemon import free_port
from zmartd.chain import instructions as ix
from zmartd.chain.pda import PROGRAM_ID, market_pda
from zmartd.chain.rpc import b58encode
from zmartd.model.demo import demo_keypair

pytestmark = pytest.mark.slow

SECRET = "monitor test hmac secret"
DISPUTE_PERIOD = 259_200


def mid(slug: str) -> bytes:
    return hashlib.sha256(f"zmartd demo market {slug}".encode()).digest()


class Receiver(ThreadingHTTPServer):
    """Answers 500 to the first ``fail_first`` POSTs of each alert, then 200;
    keeps every attempt with whether its signature verified."""

    def __init__(self, fail_first: int) -> None:
        self.fail_first = fail_first
        self.attempts: list[tuple[int, bool, dict[str, Any]]] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def delivered(self) -> list[dict[str, Any]]:
        with self.lock:
            return [doc for status, _, doc in self.attempts if status == 200]


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        ok = hmac.compare_digest(self.headers.get("X-Zmartd-Signature", ""), expected)
        with self.server.lock:
            key = json.loads(body)["alert"]["key"]
            earlier = sum(1 for _, _, d in self.server.attempts if d["alert"]["key"] == key)
            status = 500 if earlier < self.server.fail_first else 200
            if not ok:
                status = 401
            self.server.attempts.append((status, ok, json.loads(body)))
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


class Mailbox:
    """A real SMTP server in its own process (``python -m aiosmtpd``, plain SMTP),
    storing what it receives in a Maildir with the envelope in X-MailFrom and
    X-RcptTo headers."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "maildir"
        self.port = free_port()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                f"127.0.0.1:{self.port}",
                "-c",
                "aiosmtpd.handlers.Mailbox",
                str(self.dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "aiosmtpd did not start"
                time.sleep(0.1)

    def messages(self) -> list[Message]:
        if not self.dir.exists():
            return []
        return [message_from_bytes(m.as_bytes()) for m in mailbox.Maildir(self.dir)]

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver(fail_first=2)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[Mailbox]:
    box = Mailbox(tmp_path)
    yield box
    box.stop()


def wait(what: str, check: Any, timeout: float, log: Path) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} not seen in {timeout}s\n" + (
            log.read_text()[-5000:] if log.exists() else ""
        )
        time.sleep(0.2)


def chain_now(url: str) -> int:
    return int(rpc(url, "getBlockTime", rpc(url, "getSlot", {"commitment": "confirmed"})))


def market_row(dsn: str, slug: str) -> dict[str, Any]:
    return sql(dsn, "SELECT * FROM markets WHERE market_id = $1", mid(slug).hex())[0]


def finalize_runs(url: str, slug: str) -> list[Any]:
    """Successful transactions on chain carrying finalize_market(None, None) for ``slug``."""
    data = b58encode(
        bytes(ix.finalize_market(backend_authority=AUTHORITY.pubkey(), market_id=mid(slug)).data)
    )
    market = str(market_pda(mid(slug), PROGRAM_ID)[0])
    found = []
    for entry in rpc(
        url, "getSignaturesForAddress", market, {"limit": 1000, "commitment": "confirmed"}
    ):
        if entry["err"] is not None:
            continue
        tx = rpc(
            url,
            "getTransaction",
            entry["signature"],
            {"encoding": "json", "maxSupportedTransactionVersion": 0, "commitment": "confirmed"},
        )
        if any(i["data"] == data for i in tx["transaction"]["message"]["instructions"]):
            found.append(entry["signature"])
    return found


def test_monitor_finalizes_once_in_chain_time_and_alerts_once(
    tmp_path: Path,
    module_dsn: str,  # noqa: F811
    receiver: Receiver,
    smtp: Mailbox,
) -> None:
    key_file = tmp_path / "authority.json"
    key_file.write_text(json.dumps(list(bytes(AUTHORITY))))
    key_file.chmod(0o600)
    chain_port, chain_ws = free_port(), free_port()
    (tmp_path / "chain.toml").write_text('[chain]\nkeypair_file = "authority.json"\n')
    chain_log = tmp_path / "devchain.log"
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
        chain_log,
        tmp_path,
    )
    url = f"http://127.0.0.1:{chain_port}"
    http_port = free_port()
    config = tmp_path / "zmartd.toml"
    config.write_text(f"""
[daemon]
data_dir = "{tmp_path / "var"}"
instance_name = "monitor-e2e"
[http]
port = {http_port}
[ws]
enabled = false
[database]
dsn = "{module_dsn}"
embedded = false
[chain]
mode = "rpc"
rpc_urls = ["{url}"]
ws_url = "ws://127.0.0.1:{chain_ws}"
keypair_file = "authority.json"
request_timeout = 2.0
reconcile_interval = 3600.0
[aggregator]
enabled = false
[sender]
rebroadcast_interval = 0.5
[monitor]
interval = 1.0
resolution_grace = 60.0
webhook_url = "http://127.0.0.1:{receiver.server_address[1]}/alerts"
webhook_secret = "{SECRET}"
webhook_timeout = 2.0
retries = 4
retry_backoff = 0.1
smtp_host = "127.0.0.1"
smtp_port = {smtp.port}
smtp_security = "none"
email_from = "zmartd@example.com"
email_to = ["ops@example.com", "oncall@example.com"]
[log]
format = "json"
""")
    log = tmp_path / "zmartd.log"
    daemon: Any = None
    try:
        wait("the devchain", lambda: _healthy(url), 30, chain_log)
        sql(module_dsn, "TRUNCATE intents, vote_aggregations, aggregator_outcomes, alerts CASCADE")
        # sol-200 resolved (NO) now: its dispute window opens at this chain time
        send(
            url,
            demo_keypair("dave"),
            ix.resolve_market(
                resolver=demo_keypair("dave").pubkey(),
                market_id=mid("sol-200"),
                proposed_outcome=False,
                ipfs_evidence_hash=b"Qm" + b"2" * 44,
            ),
        )
        daemon = spawn(["--config", str(config)], log, tmp_path)
        wait(
            "sol-200 indexed as RESOLVING",
            lambda: sql(
                module_dsn,
                "SELECT 1 FROM markets WHERE market_id = $1 AND state = 3",
                mid("sol-200").hex(),
            ),
            60,
            log,
        )
        proposed = int(market_row(module_dsn, "sol-200")["resolution_proposed_at"].timestamp())
        deadline = proposed + DISPUTE_PERIOD
        # eth-etf "ended" two hours ago in chain time (its metadata), nobody resolved it
        eth = mid("eth-etf").hex()
        sql(
            module_dsn,
            "INSERT INTO market_metadata (market_id, creator, title, end_time) "
            "VALUES ($1, $2, 'Will an ETH staking ETF launch this year?', "
            "to_timestamp($3)) ON CONFLICT (market_id) DO UPDATE SET end_time = EXCLUDED.end_time",
            eth,
            str(demo_keypair("bob").pubkey()),
            float(chain_now(url) - 7200),
        )

        # --- the ACTIVE market past its end: one alert, one notice per channel
        alert_key = f"needs_resolution:{eth}"
        wait(
            "the needs-resolution webhook",
            lambda: [d for d in receiver.delivered() if d["alert"]["key"] == alert_key],
            30,
            log,
        )

        # metrics (before the restart below resets them): firing alerts by severity, notices
        # and single attempts by channel
        def metrics() -> str:
            return httpx.get(f"http://127.0.0.1:{http_port}/metrics", timeout=5).text

        sent = [
            'zmartd_alert_notifications_total{channel="webhook",result="sent"} 1.0',
            'zmartd_alert_notifications_total{channel="email",result="sent"} 1.0',
        ]
        text = wait(
            "the notices counted", lambda: all(x in (m := metrics()) for x in sent) and m, 10, log
        )
        assert 'zmartd_alerts_firing{severity="warning"} 1.0' in text
        assert 'zmartd_alert_delivery_attempts_total{channel="webhook",result="error"} 2.0' in text

        # --- sol-200: 30 s before the window ends (chain time), nothing happens
        rpc(url, "zmart_warpClock", deadline - chain_now(url) - 30)
        assert chain_now(url) < deadline
        time.sleep(5)  # five monitor cycles
        assert chain_now(url) < deadline
        assert (
            sql(module_dsn, "SELECT id FROM intents WHERE market_id = $1", mid("sol-200").hex())
            == []
        )
        assert market_row(module_dsn, "sol-200")["state"] == 3

        # --- past the window: one intent; kill -9 as soon as it is stored, restart
        rpc(url, "zmart_warpClock", 31)
        wait(
            "the finalize intent",
            lambda: sql(
                module_dsn, "SELECT id FROM intents WHERE market_id = $1", mid("sol-200").hex()
            ),
            30,
            log,
        )
        daemon.kill()
        daemon.wait()
        daemon = spawn(["--config", str(config)], log, tmp_path)
        wait(
            "sol-200 finalized (indexed)",
            lambda: market_row(module_dsn, "sol-200")["state"] == 5,
            60,
            log,
        )
        intents = wait(
            "the intent landed",
            lambda: (
                (
                    found := sql(
                        module_dsn,
                        "SELECT kind, state, idempotency_key FROM intents WHERE market_id = $1",
                        mid("sol-200").hex(),
                    )
                )
                and all(i["state"] != "signed" for i in found)
                and found
            ),
            30,
            log,
        )
        assert [(i["kind"], i["state"]) for i in intents] == [("finalize_market", "landed")]
        assert intents[0]["idempotency_key"] == f"finalize_market:{mid('sol-200').hex()}:{proposed}"
        assert len(finalize_runs(url, "sol-200")) == 1
        row = market_row(module_dsn, "sol-200")
        assert row["finalized_at"].timestamp() >= deadline and row["final_outcome"] is False
        events = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
        fin = [e for e in events if e.get("event") == "dispute window passed: finalizing market"]
        sol_fin = [e for e in fin if e["market"] == mid("sol-200").hex()]
        assert sol_fin and all(e["chain_time"] >= _iso(deadline) for e in sol_fin), sol_fin

        # --- the alert was notified once (after two 500s) however many cycles saw it
        attempts = [
            (status, ok)
            for status, ok, doc in receiver.attempts
            if doc["alert"]["key"] == alert_key
        ]
        assert all(ok for _, ok in attempts), attempts  # every attempt carried a valid HMAC
        assert [s for s, _ in attempts] == [500, 500, 200], attempts
        [firing] = [d for d in receiver.delivered() if d["alert"]["key"] == alert_key]
        assert firing["kind"] == "firing" and firing["instance"] == "monitor-e2e"
        assert firing["alert"]["details"]["creator"] == str(demo_keypair("bob").pubkey())
        assert "needs resolution" in firing["text"]
        [stored] = sql(module_dsn, "SELECT * FROM alerts WHERE dedup_key = $1", alert_key)
        assert stored["state"] == "firing" and stored["count"] > 5  # seen every cycle
        assert sorted(stored["notified"]) == ["email", "webhook"]
        mails = [m for m in smtp.messages() if "needs resolution" in str(m["Subject"])]
        assert len(mails) == 1, [m["Subject"] for m in smtp.messages()]
        msg = mails[0]
        assert msg["X-MailFrom"] == "zmartd@example.com" == msg["From"]
        assert msg["X-RcptTo"] == "ops@example.com, oncall@example.com" == msg["To"]
        assert msg["Subject"].startswith("[zmartd warning]")
        body = msg.get_payload(decode=True)
        assert isinstance(body, bytes)
        assert eth in body.decode() and str(demo_keypair("bob").pubkey()) in body.decode()

        # --- resolved on chain: one resolved notice
        send(
            url,
            demo_keypair("bob"),
            ix.resolve_market(
                resolver=demo_keypair("bob").pubkey(),
                market_id=mid("eth-etf"),
                proposed_outcome=True,
                ipfs_evidence_hash=b"Qm" + b"3" * 44,
            ),
        )
        wait(
            "the resolved notice",
            lambda: [
                d
                for d in receiver.delivered()
                if d["alert"]["key"] == alert_key and d["kind"] == "resolved"
            ],
            30,
            log,
        )
        time.sleep(3)
        notices = [d["kind"] for d in receiver.delivered() if d["alert"]["key"] == alert_key]
        assert notices == ["firing", "resolved"]
        [stored] = sql(module_dsn, "SELECT * FROM alerts WHERE dedup_key = $1", alert_key)
        assert stored["state"] == "resolved" and stored["resolved_at"] is not None
    finally:
        for proc in (daemon, chain):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


def _healthy(url: str) -> bool:
    try:
        rpc(url, "getHealth")
        return True
    except httpx.TransportError:
        return False


def _iso(unix: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(unix, UTC).isoformat()
