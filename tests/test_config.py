"""Tests of zmartd.config: the schema, its messages, secrets, round-trips and generated docs."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import pickle
import tomllib
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from zmartd import config as zc
from zmartd.config import (
    REDACTED,
    SECTIONS,
    Config,
    ConfigError,
    Secret,
    chain_endpoints,
    changed_sections,
    default_config,
    dump_toml,
    field_specs,
    load_config,
    parse_config,
    parse_keypair,
    secret_sources,
    to_dict,
)

ROOT = Path(__file__).resolve().parent.parent
BASE = Path("/srv/zmartd")


def parse(data: dict[str, Any], env: dict[str, str] | None = None, base: Path = BASE) -> Config:
    return parse_config(data, base_dir=base, env={} if env is None else env)


def errors_of(data: dict[str, Any], env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(data, env)
    return info.value.errors


# ------------------------------------------------------------------------------------------
# Defaults, the example file, generated documents


def test_defaults_run_everything_locally() -> None:
    cfg = default_config(base_dir=BASE)
    assert SECTIONS == (
        "daemon",
        "http",
        "auth",
        "ratelimit",
        "ws",
        "database",
        "redis",
        "chain",
        "devchain",
        "votes",
        "aggregator",
        "sender",
        "snapshotter",
        "monitor",
        "log",
        "metrics",
        "admin",
    )
    assert cfg.daemon.data_dir == BASE / "var"
    assert (cfg.http.port, cfg.ws.port, cfg.devchain.port, cfg.devchain.ws_port) == (
        8080,
        8081,
        8899,
        8900,
    )
    assert cfg.chain.mode == "local"
    assert cfg.chain.program_id == Pubkey.from_string("6s8bbbCS7oNYNnTUHgrPDHG4jqaSrD6MSxQSPVR1rxw")
    assert not cfg.database.dsn and cfg.database.embedded
    assert not cfg.redis.url and cfg.redis.required is False
    assert cfg.chain.signer() is None
    assert cfg.http.trusted_proxies == ()  # no proxy is trusted unless configured
    assert cfg.database.dsn_file is None and cfg.devchain.state_file is None
    assert cfg.source_path is None


def test_default_config_ignores_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZMARTD_DATABASE_DSN", "postgresql://u:p@db/x")
    assert not default_config(base_dir=BASE).database.dsn


def test_example_file_runs_as_is_on_the_embedded_defaults() -> None:
    example = ROOT / "zmartd.toml.example"
    cfg = load_config(example, env={})
    assert cfg.source_path == example
    # the example differs from the defaults only in its documented first-run values
    first_run = {(f.section, f.key): f.first_run[0] for f in field_specs() if f.first_run}
    assert first_run == {("aggregator", "interval"): 5.0, ("monitor", "interval"): 5.0}
    assert cfg.aggregator.interval == 5.0
    assert cfg == dataclasses.replace(
        default_config(base_dir=ROOT),
        aggregator=dataclasses.replace(default_config().aggregator, interval=5.0),
        monitor=dataclasses.replace(default_config().monitor, interval=5.0),
    )
    assert cfg.daemon.data_dir == ROOT / "var"
    assert cfg.chain.mode == "local" and not cfg.database.dsn and not cfg.redis.url
    # every key of the schema is written out (not left to defaults), each under its section
    raw = tomllib.loads(example.read_text("utf-8"))
    assert {s: set(v) for s, v in raw.items()} == {
        s: {f.key for f in field_specs() if f.section == s} for s in SECTIONS
    }
    defaults = tomllib.loads((ROOT / "config" / "defaults.toml").read_text("utf-8"))
    defaults["aggregator"]["interval"] = 5.0
    defaults["monitor"]["interval"] = 5.0
    assert raw == defaults


def test_example_comments_every_key() -> None:
    lines = (ROOT / "zmartd.toml.example").read_text("utf-8").splitlines()
    for i, line in enumerate(lines):
        if " = " in line and not line.startswith(("#", "[")):
            assert lines[i - 1].startswith("#"), f"no comment above {line!r}"


def test_defaults_toml_is_the_effective_default() -> None:
    path = ROOT / "config" / "defaults.toml"
    assert load_config(path, env={}) == default_config(base_dir=path.parent)


def test_generated_documents_are_in_sync_with_the_schema() -> None:
    for path, text in zc.generated_documents(ROOT).items():
        assert path.read_text("utf-8") == text, (
            f"{path} is stale: run python -m zmartd.config --write-docs"
        )
    assert zc.main(["--check-docs", "--root", str(ROOT)]) == 0


def test_check_docs_detects_drift(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert zc.main(["--write-docs", "--root", str(tmp_path)]) == 0
    assert zc.main(["--check-docs", "--root", str(tmp_path)]) == 0
    (tmp_path / "config" / "README.md").write_text("old\n", "utf-8")
    assert zc.main(["--check-docs", "--root", str(tmp_path)]) == 1
    assert "stale:" in capsys.readouterr().err


def test_reference_documents_every_key_with_type_and_default() -> None:
    text = (ROOT / "config" / "README.md").read_text("utf-8")
    for spec in field_specs():
        section = text.split(f"## [{spec.section}]")[1].split("\n## ")[0]
        row = next(r for r in section.splitlines() if r.startswith(f"| `{spec.key}` |"))
        assert zc.docs._cell(spec.kind.expected) in row
        assert zc.docs._cell(zc.kinds.toml_inline(spec.default)) in row
    for spec in field_specs():
        if spec.secret:
            assert f"`{spec.env_var}`" in text


# ------------------------------------------------------------------------------------------
# Bad inputs, each with its own message

_HTTP_KEYS = (
    "enabled, host, port, graceful_timeout, public_url, trusted_proxies, cors_origins, "
    "max_body_bytes, max_in_flight, max_connections, max_json_depth, keep_alive_timeout, "
    "header_timeout, body_timeout, cache_ttl, cache_max_entries, required"
)
_KEYPAIR = (
    "Solana keypair (base58 secret key, or JSON array of 64 integers as written by solana-keygen)"
)
_PG = "PostgreSQL URL postgresql://user:password@host:port/db"

BAD: list[tuple[dict[str, Any], str]] = [
    ({"http": {"port": "80a"}}, 'http.port: expected integer 1..65535, got "80a"'),
    ({"http": {"port": True}}, "http.port: expected integer 1..65535, got true"),
    ({"http": {"port": 70000}}, "http.port: expected integer 1..65535, got 70000"),
    ({"http": {"port": -1}}, "http.port: expected integer 1..65535, got -1"),
    (
        {"http": {"prot": 80}},
        f'http.prot: unknown key (did you mean "port"? valid keys: {_HTTP_KEYS})',
    ),
    ({"http": {"zzz": 1}}, f"http.zzz: unknown key (valid keys: {_HTTP_KEYS})"),
    (
        {"htp": {}},
        'htp: unknown section (did you mean "http"? valid sections: ' + ", ".join(SECTIONS) + ")",
    ),
    ({"http": 5}, "http: expected table [http], got 5"),
    ({"http": {"enabled": "yes"}}, 'http.enabled: expected true or false, got "yes"'),
    ({"http": {"enabled": 1}}, "http.enabled: expected true or false, got 1"),
    (
        {"http": {"host": "http://0.0.0.0"}},
        'http.host: expected host name or IP address (no scheme, no port), got "http://0.0.0.0"',
    ),
    ({"http": {"public_url": "ftp://x"}}, 'http.public_url: expected http(s) URL, got "ftp://x"'),
    ({"http": {"public_url": "http://"}}, 'http.public_url: expected http(s) URL, got "http://"'),
    (
        {"http": {"public_url": "http://h:99999"}},
        'http.public_url: expected http(s) URL, got "http://h:99999"',
    ),
    (
        {"http": {"trusted_proxies": ["127.0.0.1", "10.0.0.1/8"]}},
        'http.trusted_proxies[1]: expected IP address or CIDR network (e.g. "10.0.0.0/8"), '
        'got "10.0.0.1/8"',
    ),
    (
        {"http": {"trusted_proxies": "127.0.0.1"}},
        "http.trusted_proxies: expected array of IP address or CIDR network "
        '(e.g. "10.0.0.0/8"), got "127.0.0.1"',
    ),
    (
        {"http": {"cors_origins": ["https://app.example.com/"]}},
        'http.cors_origins[0]: expected "*" or an origin such as "https://app.example.com" '
        '(scheme://host[:port]), got "https://app.example.com/"',
    ),
    (
        {"http": {"cors_origins": list(range(101))}},
        "http.cors_origins: expected at most 100 items, got [0, 1, 2, ...]",
    ),
    (
        {"http": {"max_body_bytes": 1.5}},
        "http.max_body_bytes: expected integer 1024..1073741824, got 1.5",
    ),
    (
        {"daemon": {"shutdown_timeout": 0}},
        "daemon.shutdown_timeout: expected number 0.1..600 (seconds), got 0",
    ),
    (
        {"daemon": {"restart_window": 0.0}},
        "daemon.restart_window: expected number > 0 and <= 86400 (seconds), got 0.0",
    ),
    (
        {"daemon": {"backoff_jitter": float("nan")}},
        "daemon.backoff_jitter: expected number 0..1 (fraction), got nan",
    ),
    (
        {"daemon": {"shutdown_timeout": float("inf")}},
        "daemon.shutdown_timeout: expected number 0.1..600 (seconds), got inf",
    ),
    (
        {"daemon": {"shutdown_timeout": "10s"}},
        'daemon.shutdown_timeout: expected number 0.1..600 (seconds), got "10s"',
    ),
    (
        {"daemon": {"backoff_initial": 5, "backoff_max": 1}},
        "daemon.backoff_max: expected number >= daemon.backoff_initial (5.0), got 1.0",
    ),
    ({"daemon": {"data_dir": ""}}, 'daemon.data_dir: expected non-empty path, got ""'),
    (
        {"daemon": {"instance_name": "my host"}},
        "daemon.instance_name: expected name of letters, digits, '.', '_' or '-' (1..64), "
        'got "my host"',
    ),
    (
        {"ws": {"port": 8080}},
        "ws.port: expected a port other than http.port (8080) on the same host, got 8080",
    ),
    (
        {"database": {"pool_min": 5, "pool_max": 2}},
        "database.pool_max: expected integer >= database.pool_min (5), got 2",
    ),
    (
        {"database": {"pool_min": 0}},
        "database.pool_min: expected integer 1..100, got 0",
    ),
    (
        {"database": {"embedded": False}},
        'database.dsn: expected a PostgreSQL URL when database.embedded = false, got ""',
    ),
    (
        {"database": {"dsn": "mysql://u:hunter2@h/db"}},
        f"database.dsn: expected {_PG}, got <redacted> (not a postgresql:// URL with a host)",
    ),
    (
        {"database": {"dsn": 5}},
        f'database.dsn: expected secret string: {_PG}, or "" (unset), got an integer (<redacted>)',
    ),
    (
        {"database": {"dsn": "postgresql://u:pw@h/db", "dsn_file": "dsn.txt"}},
        "database.dsn: expected either dsn or dsn_file, not both, got both set",
    ),
    (
        {"redis": {"url": "http://h:6379"}},
        "redis.url: expected redis://, rediss:// or unix:// URL, got <redacted> "
        "(not a redis://, rediss:// or unix:// URL)",
    ),
    ({"chain": {"mode": "mainnet"}}, 'chain.mode: expected one of "local", "rpc", got "mainnet"'),
    (
        {"chain": {"mode": "rpc"}},
        'chain.rpc_urls: expected at least one http(s) URL when chain.mode = "rpc", got []',
    ),
    (
        {"chain": {"program_id": "notakey"}},
        'chain.program_id: expected base58 public key (32 bytes), got "notakey"',
    ),
    (
        {"chain": {"rpc_urls": ["https://rpc.example", "ws://rpc.example"]}},
        'chain.rpc_urls[1]: expected http(s) URL, got "ws://rpc.example"',
    ),
    (
        {"chain": {"ws_url": "https://rpc.example"}},
        'chain.ws_url: expected ws(s) URL or "", got "https://rpc.example"',
    ),
    (
        {"chain": {"commitment": "max"}},
        'chain.commitment: expected one of "processed", "confirmed", "finalized", got "max"',
    ),
    (
        {"chain": {"keypair": "[1, 2, 3]"}},
        f"chain.keypair: expected {_KEYPAIR}, got <redacted> (a JSON array of 3 items, not 64)",
    ),
    (
        {"chain": {"keypair": "not a key!"}},
        f"chain.keypair: expected {_KEYPAIR}, got <redacted> "
        "(neither base58 text nor a JSON array)",
    ),
    (
        {"chain": {"keypair": "1" * 88}},
        f"chain.keypair: expected {_KEYPAIR}, got <redacted> "
        "(base58 text that is not a 64-byte secret key with its public key)",
    ),
    (
        {"chain": {"keypair": json.dumps([7] * 64)}},
        f"chain.keypair: expected {_KEYPAIR}, got <redacted> "
        "(64 bytes whose public half does not match the secret half)",
    ),
    ({"chain": {"max_retries": 1.5}}, "chain.max_retries: expected integer 0..20, got 1.5"),
    ({"devchain": {"seed": "full"}}, 'devchain.seed: expected one of "demo", "none", got "full"'),
    (
        {"devchain": {"ws_port": 8899}},
        "devchain.ws_port: expected a port other than devchain.port (8899), got 8899",
    ),
    (
        {"devchain": {"webhook_duplicates": 0}},
        "devchain.webhook_duplicates: expected integer 1..10, got 0",
    ),
    (
        {"devchain": {"program_variant": "fixed"}},
        'devchain.program_variant: expected one of "deployed", "patched", got "fixed"',
    ),
    (
        {"aggregator": {"vote_source": "twitter"}},
        'aggregator.vote_source: expected one of "chain", "api", "both", got "twitter"',
    ),
    ({"aggregator": {"min_votes": -1}}, "aggregator.min_votes: expected integer >= 0, got -1"),
    ({"snapshotter": {"at": "24:00"}}, 'snapshotter.at: expected UTC time HH:MM, got "24:00"'),
    (
        {"snapshotter": {"backend": "pinata"}},
        'snapshotter.backend: expected one of "local", "kubo", "pinning-service", got "pinata"',
    ),
    (
        {"snapshotter": {"backend": "kubo"}},
        'snapshotter.kubo_url: expected an http(s) URL when snapshotter.backend = "kubo", got ""',
    ),
    (
        {
            "snapshotter": {
                "backend": "pinning-service",
                "kubo_url": "http://127.0.0.1:5001",
                "pinning_url": "https://pins.example/psa",
            }
        },
        "snapshotter.pinning_token: expected the access token when snapshotter.backend = "
        '"pinning-service", got ""',
    ),
    (
        {"monitor": {"smtp_security": "ssl"}},
        'monitor.smtp_security: expected one of "starttls", "tls", "none", got "ssl"',
    ),
    (
        {"monitor": {"smtp_host": "smtp.example.com", "email_to": ["ops@example.com"]}},
        'monitor.email_from: expected an e-mail address when smtp_host is set, got ""',
    ),
    (
        {"monitor": {"webhook_url": "ftp://hooks.example/x"}},
        "monitor.webhook_url: expected http(s) URL, got <redacted> (not an http(s) URL)",
    ),
    (
        {"monitor": {"email_to": ["not-an-address"]}},
        'monitor.email_to[0]: expected e-mail address (local@domain), got "not-an-address"',
    ),
    (
        {"log": {"level": "verbose"}},
        'log.level: expected one of "debug", "info", "warning", "error", got "verbose"',
    ),
    (
        {"log": {"level": "x" * 50}},
        'log.level: expected one of "debug", "info", "warning", "error", got "' + "x" * 37 + '..."',
    ),
    (
        {"log": {"format": {"a": 1, "b": [1, 2]}}},
        'log.format: expected one of "auto", "json", "console", got {a = 1, b = [...]}',
    ),
    (
        {"metrics": {"path": "metrics"}},
        'metrics.path: expected URL path starting with "/", got "metrics"',
    ),
    (
        {"admin": {"wallets": ["abc"]}},
        'admin.wallets[0]: expected base58 public key (32 bytes), got "abc"',
    ),
]


@pytest.mark.parametrize(("data", "message"), BAD, ids=[m.split(":")[0] for _, m in BAD])
def test_bad_input_has_its_specific_message(data: dict[str, Any], message: str) -> None:
    assert errors_of(data) == [message]


def test_all_errors_of_a_file_are_reported_in_file_order() -> None:
    errors = errors_of(
        {
            "http": {"port": "80a", "enabled": 1},
            "chain": {"mode": "rpc", "commitment": 3},
            "log": {"levle": "debug"},
        }
    )
    assert errors == [
        "http.enabled: expected true or false, got 1",
        'http.port: expected integer 1..65535, got "80a"',
        'chain.commitment: expected one of "processed", "confirmed", "finalized", got 3',
        'log.levle: unknown key (did you mean "level"? valid keys: level, format)',
        'chain.rpc_urls: expected at least one http(s) URL when chain.mode = "rpc", got []',
    ]
    with pytest.raises(ConfigError) as info:
        parse({"http": {"port": "80a", "enabled": 1}})
    assert str(info.value) == "\n".join(info.value.errors)


def test_cross_rules_are_skipped_when_a_key_is_already_bad() -> None:
    # pool_max is bad; no second, confusing "pool_max >= pool_min" message
    assert errors_of({"database": {"pool_min": 5, "pool_max": "2"}}) == [
        'database.pool_max: expected integer 1..1000, got "2"'
    ]


def test_accepted_edge_values() -> None:
    cfg = parse(
        {
            "http": {"port": 0, "host": "::", "cors_origins": ["*", "http://localhost:3000"]},
            "ws": {"port": 0},
            "daemon": {"shutdown_timeout": 600, "backoff_jitter": 0},
            "chain": {"mode": "rpc", "rpc_urls": ["http://127.0.0.1:8899"]},
        }
    )
    assert cfg.http.port == 0 and cfg.ws.port == 0  # 0 = ephemeral, twice is fine
    assert cfg.daemon.shutdown_timeout == 600.0 and isinstance(cfg.daemon.shutdown_timeout, float)


def test_ws_may_share_the_http_port_on_another_host_or_when_disabled() -> None:
    parse({"ws": {"port": 8080, "host": "0.0.0.0"}})
    parse({"ws": {"port": 8080, "enabled": False}})


def test_paths_resolve_against_the_config_directory(tmp_path: Path) -> None:
    cfg = parse(
        {"daemon": {"data_dir": "../state"}, "devchain": {"state_file": "/abs/chain.bin"}},
        base=tmp_path / "etc",
    )
    assert cfg.daemon.data_dir == tmp_path / "state"
    assert cfg.devchain.state_file == Path("/abs/chain.bin")
    home = parse({"daemon": {"data_dir": "~/zmartd"}}).daemon.data_dir
    assert home == Path.home() / "zmartd"


# ------------------------------------------------------------------------------------------
# Files: missing, syntax errors, encoding


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.toml")
    assert info.value.errors == [f"{tmp_path / 'nope.toml'}: config file not found"]


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="expected a config file, got a directory"):
        load_config(tmp_path)


def test_toml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "zmartd.toml"
    path.write_text("[http]\nport = 8080\nhost = \n", "utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    [message] = info.value.errors
    assert message.startswith(f"{path}: invalid TOML: ")
    assert "line 3, column 8" in message


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "zmartd.toml"
    path.write_bytes(b'[log]\nlevel = "\xff"\n')
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(bad byte at offset 15\)"):
        load_config(path, env={})


def test_validation_errors_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "zmartd.toml"
    path.write_text('[http]\nport = "80a"\n', "utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert info.value.errors == ['http.port: expected integer 1..65535, got "80a"']


# ------------------------------------------------------------------------------------------
# Secrets


def test_secret_precedence_env_over_file_over_inline(tmp_path: Path) -> None:
    (tmp_path / "dsn.txt").write_text("  postgresql://file:pw@db/x\n", "utf-8")
    with_file = {"database": {"dsn_file": "dsn.txt"}}
    inline = {"database": {"dsn": "postgresql://inline:pw@db/x"}}
    env = {"ZMARTD_DATABASE_DSN": "postgresql://env:pw@db/x"}

    cfg = parse(inline, base=tmp_path)
    assert cfg.database.dsn.reveal() == "postgresql://inline:pw@db/x"
    assert cfg.database.dsn.source == "inline"

    cfg = parse(with_file, base=tmp_path)
    assert cfg.database.dsn.reveal() == "postgresql://file:pw@db/x"  # stripped
    assert cfg.database.dsn.source == f"file {tmp_path / 'dsn.txt'}"
    assert cfg.database.dsn_file == tmp_path / "dsn.txt"

    for data in (with_file, inline, {}):
        cfg = parse(data, env=env, base=tmp_path)
        assert cfg.database.dsn.reveal() == "postgresql://env:pw@db/x"
        assert cfg.database.dsn.source == "env ZMARTD_DATABASE_DSN"

    # an empty environment variable counts as unset
    cfg = parse(inline, env={"ZMARTD_DATABASE_DSN": ""}, base=tmp_path)
    assert cfg.database.dsn.reveal() == "postgresql://inline:pw@db/x"


def test_every_secret_reads_env_and_file(tmp_path: Path) -> None:
    values = {
        "database.dsn": "postgresql://u:pw@db/x",
        "database.cursor_secret": "a cursor secret of some length",
        "redis.url": "rediss://:pw@redis:6380/0",
        "chain.keypair": str(Keypair.from_seed(bytes(range(32)))),
        "admin.keypair": str(Keypair.from_seed(bytes(range(1, 33)))),
        "chain.webhook_secret": "hook-secret",
        "devchain.webhook_auth_header": "Bearer abc",
        "snapshotter.kubo_auth": "Basic dXNlcjpwYXNz",
        "snapshotter.pinning_token": "psa-token",
        "monitor.webhook_url": "https://hooks.example/T0/B0/token",
        "monitor.webhook_secret": "an hmac secret",
        "monitor.smtp_password": "smtp pw",
    }
    secrets = [s for s in field_specs() if s.secret]
    assert {s.path for s in secrets} == set(values)
    env = {s.env_var: values[s.path] for s in secrets if s.env_var}
    cfg = parse({}, env=env)
    data: dict[str, dict[str, Any]] = {}
    for s in secrets:
        (tmp_path / s.path).write_text(values[s.path] + "\n", "utf-8")
        (tmp_path / s.path).chmod(0o600)
        data.setdefault(s.section, {})[f"{s.key}_file"] = s.path
    cfg_files = parse(data, base=tmp_path)
    for s in secrets:
        assert getattr(getattr(cfg, s.section), s.key).reveal() == values[s.path]
        assert getattr(getattr(cfg_files, s.section), s.key).reveal() == values[s.path]


def test_missing_secret_file_names_key_and_path(tmp_path: Path) -> None:
    errors = errors_of_base({"chain": {"webhook_secret_file": "nope.txt"}}, tmp_path)
    assert errors == [
        f'chain.webhook_secret_file: expected a readable file, got "{tmp_path / "nope.txt"}" '
        "(No such file or directory)"
    ]


def test_empty_secret_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("\n \n", "utf-8")
    errors = errors_of_base({"chain": {"webhook_secret_file": "pw"}}, tmp_path)
    assert errors == [
        f"chain.webhook_secret_file ({tmp_path / 'pw'}): expected any text, got an empty file"
    ]


def test_oversized_or_binary_secret_file(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(b"x" * (64 * 1024 + 1))
    (tmp_path / "bin").write_bytes(b"\xff\xfe")
    errors = errors_of_base(
        {"chain": {"webhook_secret_file": "big"}, "devchain": {"webhook_auth_header_file": "bin"}},
        tmp_path,
    )
    assert errors == [
        f"chain.webhook_secret_file ({tmp_path / 'big'}): expected a text file holding the "
        "secret, got a file larger than 64 KiB",
        f"devchain.webhook_auth_header_file ({tmp_path / 'bin'}): expected a text file holding "
        "the "
        "secret, got a file that is not UTF-8 text",
    ]


def errors_of_base(
    data: dict[str, Any], base: Path, env: dict[str, str] | None = None
) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(data, env, base)
    return info.value.errors


def test_invalid_secret_from_env_or_file_names_its_origin(tmp_path: Path) -> None:
    (tmp_path / "kp.json").write_text("[1, 2]", "utf-8")
    (tmp_path / "kp.json").chmod(0o600)
    errors = errors_of_base(
        {"chain": {"keypair_file": "kp.json"}},
        tmp_path,
        env={"ZMARTD_DATABASE_DSN": "mysql://root:topsecret@h/db"},
    )
    assert errors == [
        f"database.dsn (from ZMARTD_DATABASE_DSN): expected {_PG}, got <redacted> "
        "(not a postgresql:// URL with a host)",
        f"chain.keypair_file ({tmp_path / 'kp.json'}): expected {_KEYPAIR}, got <redacted> "
        "(a JSON array of 2 items, not 64)",
    ]


def test_keypair_formats_and_solana_keygen_file(tmp_path: Path) -> None:
    kp = Keypair.from_seed(bytes(range(1, 33)))
    as_json = json.dumps(list(bytes(kp)))
    (tmp_path / "id.json").write_text(as_json, "utf-8")  # what solana-keygen writes
    (tmp_path / "id.json").chmod(0o600)
    for data in (
        {"chain": {"keypair": str(kp)}},
        {"chain": {"keypair": as_json}},
        {"chain": {"keypair_file": "id.json"}},
    ):
        signer = parse(data, base=tmp_path).chain.signer()
        assert signer is not None and signer.pubkey() == kp.pubkey()
    assert parse_keypair(f"  {kp}\n").pubkey() == kp.pubkey()
    with pytest.raises(ValueError, match=r"whose items are not all integers 0\.\.255"):
        parse_keypair(json.dumps([256] * 64))
    with pytest.raises(ValueError, match="does not parse"):
        parse_keypair("[1, 2")


def test_key_files_readable_by_group_or_others_are_refused(tmp_path: Path) -> None:
    kp = Keypair.from_seed(bytes(range(1, 33)))
    for section, name in (("chain", "backend.json"), ("admin", "admin.json")):
        path = tmp_path / name
        path.write_text(json.dumps(list(bytes(kp))), "utf-8")
        for mode in (0o644, 0o640, 0o604):
            path.chmod(mode)
            [error] = errors_of_base({section: {"keypair_file": name}}, tmp_path)
            assert error == (
                f"{section}.keypair_file: expected a key file readable by its owner only, got "
                f'"{path}" with mode {mode:04o} (run: chmod 600 "{path}")'
            )
            assert str(list(bytes(kp))[:4])[1:-1] not in error
        path.chmod(0o600)
        cfg = parse({section: {"keypair_file": name}}, base=tmp_path)
        signer = cfg.chain.signer() if section == "chain" else cfg.admin.signer()
        assert signer is not None and signer.pubkey() == kp.pubkey()
    # other secret files (a DSN, a webhook secret) keep the usual rules
    (tmp_path / "secret.txt").write_text("hook", "utf-8")
    (tmp_path / "secret.txt").chmod(0o644)
    assert parse({"chain": {"webhook_secret_file": "secret.txt"}}, base=tmp_path).chain


def test_env_may_only_carry_secrets() -> None:
    assert errors_of({}, env={"ZMARTD_HTTP_PORT": "9000"}) == [
        "env ZMARTD_HTTP_PORT: http.port cannot be set from the environment (only secrets can: "
        + ", ".join(s.env_var or "" for s in field_specs() if s.secret)
        + "); set it in the config file"
    ]
    [typo] = errors_of({}, env={"ZMARTD_DATABASE_DNS": "postgresql://u:topsecret@h/db"})
    assert typo.startswith(
        "env ZMARTD_DATABASE_DNS: unknown variable (did you mean "
        '"ZMARTD_DATABASE_DSN"? valid: ZMARTD_DATABASE_DSN, '
    )
    assert "topsecret" not in typo
    # variables outside the section namespace belong to others (CLI, tests)
    parse({}, env={"ZMARTD_CONFIG": "/etc/zmartd.toml", "ZMARTD_TEST_PG": "x", "HOME": "/"})


def test_no_secret_value_leaks() -> None:
    kp = Keypair.from_seed(bytes([9] * 32))
    secrets = {
        "ZMARTD_DATABASE_DSN": "postgresql://app:S3cretDbPw@db/x",
        "ZMARTD_REDIS_URL": "redis://:S3cretRedisPw@redis/0",
        "ZMARTD_CHAIN_KEYPAIR": str(kp),
        "ZMARTD_CHAIN_WEBHOOK_SECRET": "S3cretWebhook",
        "ZMARTD_DEVCHAIN_WEBHOOK_AUTH_HEADER": "S3cretAuthHeader",
        "ZMARTD_MONITOR_WEBHOOK_URL": "https://hooks.example/S3cretToken",
        "ZMARTD_MONITOR_SMTP_PASSWORD": "S3cretSmtp",
    }
    cfg = parse({}, env=secrets)
    needles = ["S3cret", str(kp)[:20], json.dumps(list(bytes(kp)))[:30]]
    outputs = [
        repr(cfg),
        str(cfg),
        dump_toml(cfg),
        str(to_dict(cfg)),
        f"{cfg.database.dsn}",
        "%s %r" % (cfg.chain.keypair, cfg.chain),  # noqa: UP031 - what logging does
        str(secret_sources(cfg)),
    ]
    for out in outputs:
        for needle in needles:
            assert needle not in out
    assert to_dict(cfg)["database"]["dsn"] == REDACTED
    assert to_dict(default_config(base_dir=BASE))["database"]["dsn"] == ""
    # invalid secrets in every position: the error text never carries the value
    bad_env = {
        "ZMARTD_DATABASE_DSN": "mysql://app:S3cretDbPw@db/x",
        "ZMARTD_CHAIN_KEYPAIR": "S3cretNotAKeypair!",
    }
    inline_bad = {
        "chain": {"keypair": "[9, 9, 9, 83, 51]", "webhook_secret": ["S3cretInArray"]},
        "redis": {"url": "S3cret://x"},
    }
    with pytest.raises(ConfigError) as info:
        parse(inline_bad, env=bad_env)
    assert len(info.value.errors) == 4
    for text in (str(info.value), repr(info.value), *info.value.args):
        assert "S3cret" not in text and "83, 51" not in text


def test_secret_type() -> None:
    a, b = Secret("x", "inline"), Secret("x", "env ZMARTD_CHAIN_WEBHOOK_SECRET")
    assert a == b and hash(a) == hash(b) and a != Secret("y") and bool(a)
    assert repr(a) == str(a) == REDACTED and f"{a}" == REDACTED
    assert repr(Secret("")) == "<unset>" and not Secret("") and Secret("").source == "unset"
    assert Secret("é") == Secret("é")  # non-ASCII compares in constant time too
    with pytest.raises(TypeError):
        pickle.dumps(a)


def test_secret_sources() -> None:
    cfg = parse(
        {"chain": {"webhook_secret": "inline-one"}},
        env={"ZMARTD_REDIS_URL": "redis://127.0.0.1:6379/0"},
    )
    sources = secret_sources(cfg)
    assert sources["chain.webhook_secret"] == "inline"
    assert sources["redis.url"] == "env ZMARTD_REDIS_URL"
    assert sources["database.dsn"] == "unset"


# ------------------------------------------------------------------------------------------
# Dump, round-trip, changed sections


def test_dump_redacts_and_keeps_file_paths(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("from-file", "utf-8")
    cfg = parse({"chain": {"webhook_secret_file": "secret"}}, base=tmp_path)
    redacted = tomllib.loads(dump_toml(cfg))["chain"]
    assert redacted["webhook_secret"] == REDACTED
    assert redacted["webhook_secret_file"] == str(tmp_path / "secret")
    raw = to_dict(cfg, redact=False)["chain"]
    assert raw["webhook_secret"] == "" and raw["webhook_secret_file"] == str(tmp_path / "secret")
    again = parse(tomllib.loads(dump_toml(cfg, redact=False)), base=Path("/elsewhere"))
    assert again == cfg


def test_dump_is_toml_with_every_key_and_no_none() -> None:
    data = to_dict(default_config(base_dir=BASE))
    assert list(data) == list(SECTIONS)

    def walk(value: Any) -> None:
        assert value is not None
        if isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(data)
    assert tomllib.loads(tomli_w.dumps(data)) == data
    assert sum(len(v) for v in data.values()) == len(field_specs())


def test_changed_sections(tmp_path: Path) -> None:
    old = parse({})
    assert changed_sections(old, parse({})) == frozenset()
    new = parse({"http": {"port": 9090}, "log": {"level": "debug"}})
    assert changed_sections(old, new) == {"http", "log"}
    rotated = parse({}, env={"ZMARTD_DATABASE_DSN": "postgresql://u:new@db/x"})
    assert changed_sections(old, rotated) == {"database"}
    rotated2 = parse({}, env={"ZMARTD_DATABASE_DSN": "postgresql://u:newer@db/x"})
    assert changed_sections(rotated, rotated2) == {"database"}
    # where the file was read from is not a change
    assert changed_sections(old, dataclasses.replace(old, source_path=tmp_path)) == frozenset()


def test_chain_endpoints() -> None:
    assert chain_endpoints(parse({})) == zc.ChainEndpoints(
        ("http://127.0.0.1:8899",), "ws://127.0.0.1:8900"
    )
    local6 = parse({"devchain": {"host": "::"}})
    assert chain_endpoints(local6).ws_url == "ws://[::1]:8900"
    rpc = parse(
        {"chain": {"mode": "rpc", "rpc_urls": ["https://api.devnet.solana.com", "http://b"]}}
    )
    assert chain_endpoints(rpc) == zc.ChainEndpoints(
        ("https://api.devnet.solana.com", "http://b"), "wss://api.devnet.solana.com"
    )
    port = parse({"chain": {"mode": "rpc", "rpc_urls": ["http://10.0.0.5:8899/rpc?k=1"]}})
    assert chain_endpoints(port).ws_url == "ws://10.0.0.5:8900/rpc?k=1"
    explicit = parse({"chain": {"mode": "rpc", "rpc_urls": ["https://a"], "ws_url": "wss://b/ws"}})
    assert chain_endpoints(explicit).ws_url == "wss://b/ws"


# -- property: valid configs round-trip through `config dump` ------------------------------

_HOSTS = st.from_regex(r"[a-z][a-z0-9-]{0,8}(\.[a-z]{2,4}){0,2}", fullmatch=True)
_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)


def _url(schemes: tuple[str, ...]) -> st.SearchStrategy[str]:
    return st.builds(
        lambda scheme, host, port, path: f"{scheme}://{host}{port}{path}",
        st.sampled_from(schemes),
        _HOSTS,
        st.one_of(st.just(""), st.integers(1, 65535).map(lambda p: f":{p}")),
        st.from_regex(r"(/[a-z0-9_-]{0,6}){0,2}", fullmatch=True),
    )


_KEYPAIRS = (
    st.binary(min_size=32, max_size=32)
    .map(Keypair.from_seed)
    .flatmap(lambda kp: st.sampled_from([str(kp), json.dumps(list(bytes(kp)))]))
)
_SECRET_VALUES: dict[str, st.SearchStrategy[str]] = {
    "database.dsn": _url(("postgresql", "postgres")),
    "redis.url": _url(("redis", "rediss")),
    "chain.keypair": _KEYPAIRS,
    "database.cursor_secret": st.text(
        st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=16, max_size=40
    ),
    "admin.keypair": _KEYPAIRS,
    "monitor.webhook_url": _url(("http", "https")),
}


def _strategy(spec: zc.FieldSpec) -> st.SearchStrategy[Any]:
    kind = spec.kind
    if spec.key.endswith("_file") and spec.key[: -len("_file")] in {
        s.key for s in field_specs() if s.secret and s.section == spec.section
    }:
        return st.just("")  # secrets from files are tested with real files above
    return _kind_strategy(kind, spec.path)


def _kind_strategy(kind: zc.Kind, path: str) -> st.SearchStrategy[Any]:
    if isinstance(kind, zc.BoolKind):
        return st.booleans()
    if isinstance(kind, zc.IntKind):
        ints = st.integers(kind.lo, kind.hi if kind.hi is not None else kind.lo + 10**12)
        return st.one_of(ints, st.just(0)) if kind.zero_ok else ints
    if isinstance(kind, zc.FloatKind):
        hi = kind.hi if kind.hi is not None else 1e9
        return st.one_of(
            st.floats(kind.lo, hi, exclude_min=kind.lo_open, allow_nan=False),
            st.integers(int(kind.lo) + 1, int(hi)),
        )
    if isinstance(kind, zc.ChoiceKind):
        return st.sampled_from(kind.choices)
    if isinstance(kind, zc.StrKind):
        if kind.pattern is None:
            return _TEXT
        return st.from_regex(kind.pattern, fullmatch=True).filter(lambda s: len(s) < 80)
    if isinstance(kind, zc.UrlKind):
        urls = _url(kind.schemes)
        return st.one_of(st.just(""), urls) if kind.empty_ok else urls
    if isinstance(kind, zc.PathKind):
        paths = st.from_regex(
            r"(~/|/)?[A-Za-z0-9_-]{1,8}(/[A-Za-z0-9_.-]{1,8}){0,2}", fullmatch=True
        )
        return st.one_of(st.just(""), paths) if kind.empty_ok else paths
    if isinstance(kind, zc.PubkeyKind):
        return st.binary(min_size=32, max_size=32).map(lambda b: str(Pubkey.from_bytes(b)))
    if isinstance(kind, zc.TimeKind):
        return st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.integers(0, 59))
    if isinstance(kind, zc.NetworkKind):
        return st.one_of(
            st.ip_addresses().map(str),
            st.builds(
                lambda ip, p: str(ipaddress.ip_network(f"{ip}/{p}", strict=False)),
                st.ip_addresses(v=4),
                st.integers(0, 32),
            ),
        )
    if isinstance(kind, zc.OriginKind):
        return st.one_of(
            st.just("*"),
            st.builds(
                lambda s, h, p: f"{s}://{h}{p}",
                st.sampled_from(["http", "https"]),
                _HOSTS,
                st.sampled_from(["", ":3000", ":8443"]),
            ),
        )
    if isinstance(kind, zc.ListKind):
        return st.lists(_kind_strategy(kind.item, path), max_size=4)
    if isinstance(kind, zc.SecretKind):
        return st.one_of(st.just(""), _SECRET_VALUES.get(path, _TEXT))
    raise AssertionError(f"no strategy for {path}")


def _section_strategy(section: str) -> st.SearchStrategy[dict[str, Any]]:
    specs = {s.key: _strategy(s) for s in field_specs() if s.section == section}
    return st.fixed_dictionaries({}, optional=specs)


_RAW_CONFIGS = st.fixed_dictionaries({}, optional={s: _section_strategy(s) for s in SECTIONS})


def _repair(raw: dict[str, Any]) -> dict[str, Any]:
    """Make the cross-key rules hold (each key alone is already valid)."""
    defaults = zc.docs._raw_defaults()

    def eff(section: str, key: str) -> Any:
        return raw.get(section, {}).get(key, defaults[section][key])

    def put(section: str, key: str, value: Any) -> None:
        raw.setdefault(section, {})[key] = value

    if eff("daemon", "backoff_max") < eff("daemon", "backoff_initial"):
        put("daemon", "backoff_max", eff("daemon", "backoff_initial"))
    if eff("http", "port") == eff("ws", "port") != 0 and eff("http", "host") == eff("ws", "host"):
        put("ws", "port", eff("http", "port") % 65535 + 1)
    if eff("devchain", "port") == eff("devchain", "ws_port") != 0:
        put("devchain", "ws_port", eff("devchain", "port") % 65535 + 1)
    if eff("database", "pool_max") < eff("database", "pool_min"):
        put("database", "pool_max", eff("database", "pool_min"))
    if not eff("database", "dsn"):
        put("database", "embedded", True)
    if eff("chain", "mode") == "rpc" and not eff("chain", "rpc_urls"):
        put("chain", "rpc_urls", ["https://api.devnet.solana.com"])
    if eff("snapshotter", "backend") != "local" and not eff("snapshotter", "kubo_url"):
        put("snapshotter", "kubo_url", "http://127.0.0.1:5001")
    if eff("snapshotter", "backend") == "pinning-service":
        if not eff("snapshotter", "pinning_url"):
            put("snapshotter", "pinning_url", "https://pins.example/psa")
        if not eff("snapshotter", "pinning_token"):
            put("snapshotter", "pinning_token", "token")
    if eff("monitor", "smtp_host"):
        if not eff("monitor", "email_from"):
            put("monitor", "email_from", "zmartd@example.com")
        if not eff("monitor", "email_to"):
            put("monitor", "email_to", ["ops@example.com"])
    return raw


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_RAW_CONFIGS.map(_repair))
def test_valid_configs_round_trip_through_dump(raw: dict[str, Any]) -> None:
    cfg = parse(raw)
    text = dump_toml(cfg, redact=False)
    again = parse_config(tomllib.loads(text), base_dir=Path("/somewhere/else"), env={})
    assert again == cfg
    assert changed_sections(cfg, again) == frozenset()
    assert dump_toml(again, redact=False) == text
    # the redacted dump is valid TOML of the same shape
    redacted = tomllib.loads(dump_toml(cfg))
    assert {s: set(v) for s, v in redacted.items()} == {
        s: set(v) for s, v in tomllib.loads(text).items()
    }


def test_example_and_defaults_round_trip_through_dump() -> None:
    for path in (ROOT / "zmartd.toml.example", ROOT / "config" / "defaults.toml"):
        cfg = load_config(path, env={})
        assert (
            parse_config(tomllib.loads(dump_toml(cfg, redact=False)), base_dir=Path("/x"), env={})
            == cfg
        )
