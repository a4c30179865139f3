"""zmartd's configuration: one TOML file, typed, validated, with secrets kept out of sight.

Why a hand-written schema instead of msgspec's decoder: operators need every problem of a
file at once, each naming the key path, the bad value and what was expected
(``http.port: expected integer 1..65535, got "80a"``). msgspec stops at the first error
and phrases it for programmers. So each section is a frozen dataclass whose fields carry
a *kind* (how to check, convert and print one value), a raw TOML default and an
operator-facing description. That one table drives validation, defaults, ``config dump``,
the reference in ``config/README.md``, ``config/defaults.toml`` and ``zmartd.toml.example``
(regenerate them with ``python -m zmartd.config --write-docs``; a test fails when they
drift).

Secrets (database DSN, Redis URL, keypair, webhook secrets) are
wrapped in :class:`Secret`, whose ``repr``/``str`` never show the value, and are never
echoed in error messages. Each secret ``K`` of section ``S`` is taken from, highest first:
the environment variable ``ZMARTD_<S>_<K>``, the file named by ``K_file`` (content
stripped), the inline ``K``. Only secrets are read from the environment.

Paths in the file are resolved against the config file's directory and stored absolute,
so the daemon behaves the same whatever its working directory.

The package, one concern per module: :mod:`~zmartd.config.kinds` (value kinds, secrets),
:mod:`~zmartd.config.sections` (the one schema table), :mod:`~zmartd.config.rules`
(cross-key rules), :mod:`~zmartd.config.loading` (file, secrets, derived views) and
:mod:`~zmartd.config.docs` (the generated documents). Everything callers need is
re-exported here.
"""

from __future__ import annotations

from zmartd.config.docs import (
    generated_documents,
    main,
    render_defaults,
    render_example,
    render_reference,
)
from zmartd.config.kinds import (
    REDACTED,
    BoolKind,
    ChoiceKind,
    ConfigError,
    FloatKind,
    IntKind,
    Kind,
    ListKind,
    NetworkKind,
    OriginKind,
    PathKind,
    PubkeyKind,
    Secret,
    SecretKind,
    StrKind,
    TimeKind,
    UrlKind,
    parse_keypair,
)
from zmartd.config.loading import (
    ChainEndpoints,
    chain_endpoints,
    changed_sections,
    default_config,
    dump_toml,
    load_config,
    load_or_report,
    parse_config,
    secret_sources,
    to_dict,
)
from zmartd.config.sections import (
    SECTIONS,
    AdminConfig,
    AggregatorConfig,
    AuthConfig,
    ChainConfig,
    Config,
    DaemonConfig,
    DatabaseConfig,
    DevchainConfig,
    FieldSpec,
    HttpConfig,
    LogConfig,
    MetricsConfig,
    RateLimitConfig,
    RedisConfig,
    SenderConfig,
    SnapshotterConfig,
    VotesConfig,
    WsConfig,
    field_specs,
)

__all__ = [
    "REDACTED",
    "SECTIONS",
    "AdminConfig",
    "AggregatorConfig",
    "AuthConfig",
    "BoolKind",
    "ChainConfig",
    "ChainEndpoints",
    "ChoiceKind",
    "Config",
    "ConfigError",
    "DaemonConfig",
    "DatabaseConfig",
    "DevchainConfig",
    "FieldSpec",
    "FloatKind",
    "HttpConfig",
    "IntKind",
    "Kind",
    "ListKind",
    "LogConfig",
    "MetricsConfig",
    "NetworkKind",
    "OriginKind",
    "PathKind",
    "PubkeyKind",
    "RateLimitConfig",
    "RedisConfig",
    "Secret",
    "SecretKind",
    "SenderConfig",
    "SnapshotterConfig",
    "StrKind",
    "TimeKind",
    "UrlKind",
    "VotesConfig",
    "WsConfig",
    "chain_endpoints",
    "changed_sections",
    "default_config",
    "dump_toml",
    "field_specs",
    "generated_documents",
    "load_config",
    "load_or_report",
    "main",
    "parse_config",
    "parse_keypair",
    "render_defaults",
    "render_example",
    "render_reference",
    "secret_sources",
    "to_dict",
]
