"""deploy/nginx/zmartd.conf, run for real: Debian's nginx in front of two zmartd instances
(one PostgreSQL database, Redis for WebSocket fan-out, one chain double).

The site file is used as shipped; only the lines a deployer edits anyway (ports, the
certificate, the cache path) are replaced, each exactly once, so a change of the file's
shape fails here. Checks: ``nginx -t``; HTTP/2 over TLS; REST routed to both instances;
the micro-cache (a burst of identical reads costs zmartd about one request, and
authenticated requests are never shared); the client address zmartd sees through the
proxy (also when the client forges X-Forwarded-For); the WebSocket upgrade; /metrics not
exposed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import trio
from solders.keypair import Keypair
from trio_websocket import open_websocket_url

from tests.conftest import ROOT
from tests.test_e2e_daemon import Daemon, free_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed"),
]

SITE = ROOT / "deploy" / "nginx" / "zmartd.conf"
CLIENT_IP = "127.0.0.2"  # the test client's own loopback address, distinct from nginx's


def _replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"{old!r} should appear once in {SITE.name}"
    return text.replace(old, new)


def render_site(
    tmp: Path, *, listen: int, http: tuple[int, int], ws: tuple[int, int], cert: Path, key: Path
) -> Path:
    text = SITE.read_text()
    text = _replace_once(text, "server 127.0.0.1:8080 ", f"server 127.0.0.1:{http[0]} ")
    text = _replace_once(text, "server 127.0.0.1:8090 ", f"server 127.0.0.1:{http[1]} ")
    text = _replace_once(text, "server 127.0.0.1:8081 ", f"server 127.0.0.1:{ws[0]} ")
    text = _replace_once(text, "server 127.0.0.1:8091 ", f"server 127.0.0.1:{ws[1]} ")
    text = _replace_once(text, "listen 443 ssl http2;", f"listen 127.0.0.1:{listen} ssl http2;")
    text = _replace_once(text, "    listen [::]:443 ssl http2;\n", "")
    text = re.sub(r"ssl_certificate +\S+;", f"ssl_certificate {cert};", text)
    text = re.sub(r"ssl_certificate_key +\S+;", f"ssl_certificate_key {key};", text)
    text = _replace_once(text, "/var/cache/nginx/zmartd", str(tmp / "cache"))
    site = tmp / "zmartd.conf"
    site.write_text(text)
    main = tmp / "nginx.conf"
    user = "user root root;\n" if os.geteuid() == 0 else ""
    temp = "\n".join(
        f"    {kind}_temp_path {tmp / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    main.write_text(
        f"{user}daemon off;\nworker_processes 1;\npid {tmp / 'nginx.pid'};\n"
        f"error_log {tmp / 'error.log'} warn;\nevents {{ worker_connections 1024; }}\n"
        f"http {{\n    access_log {tmp / 'access.log'};\n{temp}\n    include {site};\n}}\n"
    )
    return main


def instance_config(
    tmp: Path,
    name: str,
    *,
    http: int,
    ws: int,
    dsn: str,
    redis: str,
    prefix: str,
    rpc: int,
    rpc_ws: int,
    public: str,
) -> Path:
    data = tmp / name
    data.mkdir()
    path = tmp / f"{name}.toml"
    path.write_text(f"""
[daemon]
data_dir = "{data}"
instance_name = "{name}"
[http]
port = {http}
trusted_proxies = ["127.0.0.1", "::1"]
public_url = "{public}"
[ws]
port = {ws}
[database]
dsn = "{dsn}"
[redis]
url = "{redis}"
key_prefix = "{prefix}"
[chain]
mode = "rpc"
rpc_urls = ["http://127.0.0.1:{rpc}"]
ws_url = "ws://127.0.0.1:{rpc_ws}"
[log]
level = "warning"
format = "json"
""")
    return path


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float, **kw: object) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"{proc.args!r} exited"
        try:
            httpx.get(url, timeout=1, **kw)  # type: ignore[arg-type]
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError(f"{url} did not answer within {timeout}s")


def _counted(metrics: str, route: str) -> int:
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith("zmartd_http_requests_total{") and f'route="{route}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


@pytest.fixture
def stack(pg_dsn: str, redis_url: str, redis_prefix: str) -> Iterator[dict[str, object]]:
    tmp = Path(tempfile.mkdtemp(prefix="zmartd-nginx-", dir="/tmp"))
    tmp.chmod(0o755)
    procs: list[subprocess.Popen[bytes]] = []
    daemons: list[Daemon] = []
    try:
        key, cert = tmp / "key.pem", tmp / "cert.pem"
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                str(key),
                "-out",
                str(cert),
            ],
            check=True,
            capture_output=True,
        )
        rpc, rpc_ws = free_port(), free_port()
        chain = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "zmartd",
                "devchain",
                "--port",
                str(rpc),
                "--ws-port",
                str(rpc_ws),
                "--seed",
                "demo",
                "--slot-interval",
                "0.1",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(tmp / "devchain.log").open("wb"),
            cwd=tmp,
        )
        procs.append(chain)
        _wait_http(f"http://127.0.0.1:{rpc}", chain, 30)
        listen = free_port()
        public = f"https://127.0.0.1:{listen}"
        ports = [(free_port(), free_port()) for _ in range(2)]
        for i, (http, ws) in enumerate(ports):
            config = instance_config(
                tmp,
                f"zmartd{i}",
                http=http,
                ws=ws,
                dsn=pg_dsn,
                redis=redis_url,
                prefix=redis_prefix,
                rpc=rpc,
                rpc_ws=rpc_ws,
                public=public,
            )
            daemons.append(Daemon(config, http))
        for d in daemons:
            d.wait_ready(60)
        main = render_site(
            tmp,
            listen=listen,
            http=(ports[0][0], ports[1][0]),
            ws=(ports[0][1], ports[1][1]),
            cert=cert,
            key=key,
        )
        checked = subprocess.run(
            ["nginx", "-t", "-c", str(main)], capture_output=True, text=True, check=False
        )
        assert checked.returncode == 0, checked.stderr
        nginx = subprocess.Popen(
            ["nginx", "-c", str(main)],
            stdout=subprocess.DEVNULL,
            stderr=(tmp / "nginx.stderr").open("wb"),
        )
        procs.append(nginx)
        _wait_http(f"{public}/health", nginx, 10, verify=False)
        yield {
            "public": public,
            "daemons": daemons,
            "dsn": pg_dsn,
            "listen": listen,
            "nginx_test": checked.stderr,
        }
    finally:
        for d in daemons:
            d.stop()
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


async def test_nginx_in_front_of_two_instances(stack: dict[str, object]) -> None:
    public = str(stack["public"])
    daemons: list[Daemon] = stack["daemons"]  # type: ignore[assignment]
    assert "syntax is ok" in str(stack["nginx_test"])
    transport = httpx.AsyncHTTPTransport(local_address=CLIENT_IP, verify=False)
    async with httpx.AsyncClient(base_url=public, transport=transport) as c:
        # HTTP/2 over TLS, answered by zmartd
        curl = await trio.run_process(
            [
                "curl",
                "-sk",
                "--http2",
                "-o",
                "/dev/null",
                "-w",
                "%{http_version}",
                f"{public}/health",
            ],
            capture_stdout=True,
        )
        assert curl.stdout.decode() == "2"
        # /metrics is not exposed through the proxy
        assert (await c.get("/metrics")).status_code == 403
        markets = (await c.get("/v1/markets?limit=5")).json()["items"]
        assert markets, "the demo seed should be indexed"
        market_id = markets[0]["market_id"]
        # routed to both instances: distinct (uncached) URLs spread over the upstreams
        for n in range(12):
            assert (await c.get(f"/v1/markets?limit={n + 1}")).status_code == 200
        lists = [_counted(d.get("/metrics").text, "/v1/markets") for d in daemons]
        assert all(n > 0 for n in lists), lists
        # the micro-cache: a burst of identical reads costs zmartd about one request
        before = sum(_counted(d.get("/metrics").text, "/v1/markets/<market_id>") for d in daemons)
        statuses = []
        async with trio.open_nursery() as nursery:

            async def one() -> None:
                r = await c.get(f"/v1/markets/{market_id}")
                assert r.status_code == 200
                statuses.append(r.headers.get("X-Cache-Status"))

            for _ in range(40):
                nursery.start_soon(one)
        after = sum(_counted(d.get("/metrics").text, "/v1/markets/<market_id>") for d in daemons)
        assert statuses.count("HIT") + statuses.count("UPDATING") >= 30, statuses
        assert after - before <= 3, (before, after)
        # the client address zmartd sees: ours, not nginx's, and not a forged one
        kp = Keypair()
        nonce = (
            await c.post(
                "/v1/auth/nonce",
                json={"wallet": str(kp.pubkey())},
                headers={"X-Forwarded-For": "6.6.6.6"},
            )
        ).json()
        signature = kp.sign_message(nonce["message"].encode())
        verified = await c.post(
            "/v1/auth/verify",
            json={"message": nonce["message"], "signature": str(signature)},
            headers={"X-Forwarded-For": "6.6.6.6"},
        )
        assert verified.status_code == 201, verified.text
        token = verified.json()["token"]
        # an authenticated read is never served from (or stored in) the shared cache
        me = await c.get("/v1/auth/session", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200 and me.headers.get("X-Cache-Status") in (None, "BYPASS")
    con = await trio_asyncio_free_query(str(stack["dsn"]), kp)
    assert con == CLIENT_IP
    # the WebSocket upgrade through the proxy, to one of the hubs
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    listen = stack["listen"]
    async with open_websocket_url(f"wss://127.0.0.1:{listen}/ws", ssl_context=context) as ws:
        welcome = json.loads(await ws.get_message())
        assert welcome["type"] == "welcome"
        await ws.send_message(json.dumps({"action": "subscribe", "channel": "markets"}))
        assert json.loads(await ws.get_message())["type"] == "subscribed"


async def trio_asyncio_free_query(dsn: str, kp: Keypair) -> str:
    """The address stored with the session just created (asyncpg needs asyncio: a
    worker thread runs its own loop)."""

    def query() -> str:
        import asyncio

        async def run() -> str:
            con = await asyncpg.connect(dsn)
            try:
                value = await con.fetchval(
                    "SELECT host(ip) FROM sessions WHERE wallet = $1 ORDER BY id DESC LIMIT 1",
                    str(kp.pubkey()),
                )
                return str(value)
            finally:
                await con.close()

        return asyncio.run(run())

    return await trio.to_thread.run_sync(query)
