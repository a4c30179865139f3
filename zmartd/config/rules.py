"""Cross-key rules: checks that involve more than one value (port clashes, pool sizes,
backoff order, ...), run after every value passed its own kind."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from zmartd.config.kinds import BAD, show

# ---------------------------------------------------------------------------------------
# Rules that involve several keys (checked only when each involved key parsed fine).

Parsed = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class _Rule:
    doc: str
    check: Callable[[Parsed, list[str]], None]


def _ok(*values: Any) -> bool:
    return all(v is not BAD for v in values)


def _rule_backoff(p: Parsed, errors: list[str]) -> None:
    d = p["daemon"]
    if _ok(d["backoff_initial"], d["backoff_max"]) and d["backoff_max"] < d["backoff_initial"]:
        errors.append(
            f"daemon.backoff_max: expected number >= daemon.backoff_initial "
            f"({show(d['backoff_initial'])}), got {show(d['backoff_max'])}"
        )


def _rule_ports(p: Parsed, errors: list[str]) -> None:
    h, w = p["http"], p["ws"]
    if (
        _ok(h["enabled"], w["enabled"], h["host"], w["host"], h["port"], w["port"])
        and h["enabled"]
        and w["enabled"]
        and h["host"] == w["host"]
        and h["port"] == w["port"] != 0
    ):
        errors.append(
            f"ws.port: expected a port other than http.port ({h['port']}) on the same host, "
            f"got {w['port']}"
        )
    d = p["devchain"]
    if _ok(d["port"], d["ws_port"]) and d["port"] == d["ws_port"] != 0:
        errors.append(
            f"devchain.ws_port: expected a port other than devchain.port ({d['port']}), "
            f"got {d['ws_port']}"
        )


def _rule_pool(p: Parsed, errors: list[str]) -> None:
    db = p["database"]
    if _ok(db["pool_min"], db["pool_max"]) and db["pool_max"] < db["pool_min"]:
        errors.append(
            f"database.pool_max: expected integer >= database.pool_min ({db['pool_min']}), "
            f"got {db['pool_max']}"
        )


def _rule_embedded(p: Parsed, errors: list[str]) -> None:
    db = p["database"]
    if _ok(db["dsn"], db["embedded"]) and not db["dsn"] and not db["embedded"]:
        errors.append(
            'database.dsn: expected a PostgreSQL URL when database.embedded = false, got ""'
        )


def _rule_rpc_urls(p: Parsed, errors: list[str]) -> None:
    c = p["chain"]
    if _ok(c["mode"], c["rpc_urls"]) and c["mode"] == "rpc" and not c["rpc_urls"]:
        errors.append(
            'chain.rpc_urls: expected at least one http(s) URL when chain.mode = "rpc", got []'
        )


def _rule_kubo(p: Parsed, errors: list[str]) -> None:
    s = p["snapshotter"]
    if not _ok(s["backend"], s["kubo_url"], s["pinning_url"], s["pinning_token"]):
        return
    backend = s["backend"]
    if backend in ("kubo", "pinning-service") and not s["kubo_url"]:
        errors.append(
            f"snapshotter.kubo_url: expected an http(s) URL when snapshotter.backend = "
            f'"{backend}", got ""'
        )
    if backend == "pinning-service" and not s["pinning_url"]:
        errors.append(
            "snapshotter.pinning_url: expected an http(s) URL when snapshotter.backend = "
            '"pinning-service", got ""'
        )
    if backend == "pinning-service" and not s["pinning_token"]:
        errors.append(
            "snapshotter.pinning_token: expected the access token when snapshotter.backend = "
            '"pinning-service", got ""'
        )


def _rule_email(p: Parsed, errors: list[str]) -> None:
    m = p["monitor"]
    if not _ok(m["smtp_host"], m["email_from"], m["email_to"]) or not m["smtp_host"]:
        return
    if not m["email_from"]:
        errors.append(
            'monitor.email_from: expected an e-mail address when smtp_host is set, got ""'
        )
    if not m["email_to"]:
        errors.append(
            "monitor.email_to: expected at least one address when smtp_host is set, got []"
        )


RULES: Final = (
    _Rule("daemon.backoff_max >= daemon.backoff_initial.", _rule_backoff),
    _Rule(
        "ws.port differs from http.port when both are enabled on the same host; "
        "devchain.ws_port differs from devchain.port (0 excepted).",
        _rule_ports,
    ),
    _Rule("database.pool_max >= database.pool_min.", _rule_pool),
    _Rule(
        "database.dsn (after env and dsn_file) is set when database.embedded = false.",
        _rule_embedded,
    ),
    _Rule('chain.rpc_urls has at least one URL when chain.mode = "rpc".', _rule_rpc_urls),
    _Rule(
        'snapshotter.kubo_url is set when snapshotter.backend = "kubo" or "pinning-service"; '
        'pinning_url and pinning_token too for "pinning-service".',
        _rule_kubo,
    ),
    _Rule(
        "monitor.email_from and monitor.email_to are set when monitor.smtp_host is.", _rule_email
    ),
)
