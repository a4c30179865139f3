"""Loading: the TOML file, secrets from files and the environment, the cross-key rules,
and what the daemon derives from a loaded config (dumps, changed sections, endpoints)."""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import sys
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import tomli_w

from zmartd.config.kinds import (
    BAD,
    ENV_PREFIX,
    MAX_SECRET_FILE_BYTES,
    REDACTED,
    ConfigError,
    Ctx,
    Secret,
    SecretKind,
    check_keypair,
    show,
)
from zmartd.config.rules import RULES, Parsed
from zmartd.config.sections import PLANNED, SECTION_TYPES, SECTIONS, SPECS, Config, field_specs

# ---------------------------------------------------------------------------------------
# Parsing


def _unknown(path: str, name: str, valid: Iterable[str], what: str) -> str:
    valid = list(valid)
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
    hint = f'did you mean "{close[0]}"? ' if close else ""
    label = "sections" if what == "section" else "keys"
    return f"{path}: unknown {what} ({hint}valid {label}: {', '.join(valid)})"


def _read_secret_file(path: Path) -> str:
    with open(path, "rb") as fh:
        data = fh.read(MAX_SECRET_FILE_BYTES + 1)
    if len(data) > MAX_SECRET_FILE_BYTES:
        raise ValueError(f"a file larger than {MAX_SECRET_FILE_BYTES // 1024} KiB")
    try:
        return data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ValueError("a file that is not UTF-8 text") from None


def _key_file_exposed(path: Path) -> str | None:
    """Why a signing-key file is unsafe (readable by group or others), or None.
    A key anyone on the host can read is a key anyone on the host can sign with."""
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        return None  # reading it just worked; a vanished file is caught elsewhere
    if mode & 0o077:
        quoted = json.dumps(str(path))
        return (
            f"expected a key file readable by its owner only, got {quoted} with mode "
            f"{mode:04o} (run: chmod 600 {quoted})"
        )
    return None


def _resolve_secrets(parsed: Parsed, env: Mapping[str, str], errors: list[str]) -> None:
    """Replace each secret's inline string by a Secret from env > K_file > inline."""
    for spec in field_specs():
        if not isinstance(spec.kind, SecretKind):
            continue
        vals = parsed[spec.section]
        inline, fpath = vals[spec.key], vals[f"{spec.key}_file"]
        env_name = spec.env_var
        assert env_name is not None
        if isinstance(inline, str) and inline and isinstance(fpath, Path):
            errors.append(
                f"{spec.path}: expected either {spec.key} or {spec.key}_file, not both, "
                "got both set"
            )
            vals[spec.key] = BAD
            continue
        env_value = env.get(env_name, "")
        if env_value:
            text, source, label = env_value, f"env {env_name}", f"{spec.path} (from {env_name})"
        elif inline is BAD or fpath is BAD:
            vals[spec.key] = BAD
            continue
        elif fpath is not None:
            label = f"{spec.path}_file ({fpath})"
            try:
                text = _read_secret_file(fpath)
            except OSError as e:
                errors.append(
                    f"{spec.path}_file: expected a readable file, got {json.dumps(str(fpath))} "
                    f"({e.strerror or type(e).__name__})"
                )
                vals[spec.key] = BAD
                continue
            except ValueError as e:
                errors.append(f"{label}: expected a text file holding the secret, got {e}")
                vals[spec.key] = BAD
                continue
            if not text:
                errors.append(f"{label}: expected {spec.kind.content}, got an empty file")
                vals[spec.key] = BAD
                continue
            if spec.kind.check is check_keypair and (problem := _key_file_exposed(fpath)):
                errors.append(f"{spec.path}_file: {problem}")
                vals[spec.key] = BAD
                continue
            source = f"file {fpath}"
        else:
            text, source, label = inline, "inline", spec.path
        if text and spec.kind.check is not None:
            reason = spec.kind.check(text)
            if reason is not None:
                errors.append(f"{label}: expected {spec.kind.content}, got {REDACTED} ({reason})")
                vals[spec.key] = BAD
                continue
        vals[spec.key] = Secret(text, source)


def _check_env(env: Mapping[str, str], errors: list[str]) -> None:
    """``ZMARTD_<SECTION>_*`` names are reserved for secrets. Anything else under such a
    prefix is an error, so that a typo cannot leave a secret silently unset and nobody
    believes ``ZMARTD_HTTP_PORT`` changed the port."""
    secrets = {s.env_var: s for s in field_specs() if s.secret}
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX) or name in secrets or not env[name]:
            continue
        rest = name[len(ENV_PREFIX) :].lower()
        for section in SECTIONS:
            if rest.startswith(section + "_"):
                key = rest[len(section) + 1 :]
                valid = ", ".join(str(v) for v in secrets)
                if key in SPECS[section]:
                    errors.append(
                        f"env {name}: {section}.{key} cannot be set from the environment "
                        f"(only secrets can: {valid}); set it in the config file"
                    )
                else:
                    close = difflib.get_close_matches(name, list(map(str, secrets)), n=1)
                    hint = f'did you mean "{close[0]}"? ' if close else ""
                    errors.append(f"env {name}: unknown variable ({hint}valid: {valid})")
                break


def parse_config(
    data: Mapping[str, Any], *, base_dir: Path, env: Mapping[str, str] | None = None
) -> Config:
    """Validate a decoded TOML document; raise ConfigError listing every problem.

    ``base_dir`` anchors relative paths (normally the config file's directory); ``env``
    (default ``os.environ``) supplies ``ZMARTD_*`` secrets.
    """
    env = os.environ if env is None else env
    ctx = Ctx(Path(os.path.abspath(Path(base_dir).expanduser())), [])
    for name in data:
        if name in PLANNED:
            ctx.errors.append(
                f"{name}: section not implemented yet ({PLANNED[name]} is not "
                f"part of this zmartd); remove [{name}]"
            )
        elif name not in SPECS:
            ctx.errors.append(_unknown(name, name, SECTIONS, "section"))
    parsed: Parsed = {}
    for section, specs in SPECS.items():
        raw = data.get(section, {})
        if not isinstance(raw, Mapping):
            ctx.errors.append(f"{section}: expected table [{section}], got {show(raw)}")
            parsed[section] = dict.fromkeys(specs, BAD)
            continue
        for key in raw:
            if key not in specs:
                ctx.errors.append(_unknown(f"{section}.{key}", key, specs, "key"))
        parsed[section] = {
            key: spec.kind.parse(raw.get(key, spec.default), spec.path, ctx)
            for key, spec in specs.items()
        }
    _resolve_secrets(parsed, env, ctx.errors)
    _check_env(env, ctx.errors)
    for rule in RULES:
        rule.check(parsed, ctx.errors)
    if ctx.errors:
        raise ConfigError(ctx.errors)
    return Config(**{s: SECTION_TYPES[s](**parsed[s]) for s in SECTIONS})


def load_config(path: str | os.PathLike[str], *, env: Mapping[str, str] | None = None) -> Config:
    """Read, parse and validate a TOML config file; relative paths are taken from its
    directory. Raises ConfigError (missing/unreadable file, TOML syntax error with line
    and column, or every validation problem)."""
    p = Path(os.path.abspath(Path(path).expanduser()))
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError([f"{p}: config file not found"]) from None
    except IsADirectoryError:
        raise ConfigError([f"{p}: expected a config file, got a directory"]) from None
    except OSError as e:
        raise ConfigError([f"{p}: cannot read config file ({e.strerror})"]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError([f"{p}: not UTF-8 text (bad byte at offset {e.start})"]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        # Python 3.11's message ends with "(at line L, column C)"; it never quotes values.
        raise ConfigError([f"{p}: invalid TOML: {e}"]) from None
    cfg = parse_config(data, base_dir=p.parent, env=env)
    return dataclasses.replace(cfg, source_path=p)


def default_config(*, base_dir: Path | None = None) -> Config:
    """The configuration of an empty file: no environment secrets read, relative paths
    anchored at ``base_dir`` (default: the current directory)."""
    return parse_config({}, base_dir=Path.cwd() if base_dir is None else base_dir, env={})


# ---------------------------------------------------------------------------------------
# Writing back, comparing


def to_dict(cfg: Config, *, redact: bool = True) -> dict[str, Any]:
    """The effective configuration as TOML-serialisable data (unset values are "").

    With ``redact`` (the default) a set secret is "<redacted>" and an unset one "".
    With ``redact=False`` (internal use only) a secret read from ``K_file`` is written as
    that file's path (K = "") and any other as its value, so that loading the dump under
    the same environment and files gives back an equal Config.
    """
    out: dict[str, Any] = {}
    for section, specs in SPECS.items():
        values = getattr(cfg, section)
        sec: dict[str, Any] = {}
        for key, spec in specs.items():
            value = getattr(values, key)
            if isinstance(value, Secret):
                if redact:
                    sec[key] = REDACTED if value else ""
                elif getattr(values, f"{key}_file") is not None:
                    sec[key] = ""
                else:
                    sec[key] = value.reveal()
            else:
                sec[key] = spec.kind.dump(value)
        out[section] = sec
    return out


def dump_toml(cfg: Config, *, redact: bool = True) -> str:
    """``zmartd config dump``: the effective configuration as TOML."""
    return tomli_w.dumps(to_dict(cfg, redact=redact))


def changed_sections(old: Config, new: Config) -> frozenset[str]:
    """Sections whose effective values differ (secret values included), for SIGHUP reload."""
    return frozenset(s for s in SECTIONS if getattr(old, s) != getattr(new, s))


def secret_sources(cfg: Config) -> dict[str, str]:
    """Where each secret came from, e.g. {"database.dsn": "env ZMARTD_DATABASE_DSN"}:
    safe to print (``check-config``), never the value."""
    out: dict[str, str] = {}
    for spec in field_specs():
        if spec.secret:
            secret: Secret = getattr(getattr(cfg, spec.section), spec.key)
            out[spec.path] = secret.source
    return out


@dataclass(frozen=True, slots=True)
class ChainEndpoints:
    rpc_urls: tuple[str, ...]
    ws_url: str


def _client_host(host: str) -> str:
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"[{host}]" if ":" in host else host


def chain_endpoints(cfg: Config) -> ChainEndpoints:
    """The JSON-RPC URLs and PubSub URL the chain client should use.

    Local mode points at [devchain] (a wildcard listen address becomes loopback; a port
    of 0 must be replaced by the caller with the port actually bound). RPC mode uses
    chain.rpc_urls and chain.ws_url, deriving the latter from the first RPC URL when
    empty: http->ws, https->wss, and an explicit port p becomes p + 1 (the
    solana-test-validator convention, 8899 -> 8900).
    """
    if cfg.chain.mode == "local":
        host = _client_host(cfg.devchain.host)
        return ChainEndpoints(
            (f"http://{host}:{cfg.devchain.port}",), f"ws://{host}:{cfg.devchain.ws_port}"
        )
    urls = cfg.chain.rpc_urls
    if cfg.chain.ws_url:
        return ChainEndpoints(urls, cfg.chain.ws_url)
    parts = urlsplit(urls[0])
    scheme = "wss" if parts.scheme == "https" else "ws"
    netloc = parts.netloc
    if parts.port is not None:
        netloc = netloc[: netloc.rindex(":")] + f":{parts.port + 1}"
    return ChainEndpoints(urls, parts._replace(scheme=scheme, netloc=netloc).geturl())


def load_or_report(path: Path, prog: str = "zmartd") -> Config | None:
    """Load ``path`` for a command line tool: the config, or None after printing every
    problem to stderr (the commands then exit non-zero)."""
    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"{prog}: invalid configuration in {path}:", file=sys.stderr)
        for line in exc.errors:
            print(f"  {line}", file=sys.stderr)
        return None
