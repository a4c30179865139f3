"""The schema: one frozen dataclass per TOML section, each field carrying its kind, raw
default and operator-facing description. This table drives validation, defaults, ``config
dump`` and the generated documents."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from solders.keypair import Keypair
from solders.pubkey import Pubkey

from zmartd.config.kinds import (
    ENV_PREFIX,
    BoolKind,
    ChoiceKind,
    FloatKind,
    IntKind,
    IpNetwork,
    Kind,
    ListKind,
    NetworkKind,
    OriginKind,
    PathKind,
    PubkeyKind,
    Secret,
    SecretKind,
    StrKind,
    UrlKind,
    check_cursor_secret,
    check_dsn,
    check_http_url,
    check_keypair,
    check_redis,
    parse_keypair,
)

# ---------------------------------------------------------------------------------------
# The schema. Field order is the canonical key order (docs, dump, example).


@dataclass(frozen=True)
class _Meta:
    kind: Kind
    default: Any
    doc: str
    example: Any
    first_run: tuple[Any, str] | None = None


def _m(
    kind: Kind,
    default: Any,
    doc: str,
    *,
    example: Any = None,
    first_run: tuple[Any, str] | None = None,
) -> dict[str, _Meta]:
    """Field metadata: how the key is checked, its raw TOML default and its description.
    ``first_run`` = (value, why): the example file sets this value instead of the default,
    with the reason in a comment (a Quickstart needs e.g. a short aggregator interval).
    (Written as ``field(metadata=_m(...))`` so linters see an ordinary dataclass field.)"""
    return {"spec": _Meta(kind, default, doc, example, first_run)}


_HOST: Final = StrKind("host name or IP address (no scheme, no port)", r"[A-Za-z0-9_.:%-]+")
_PORT: Final = IntKind(1, 65535, zero_ok=True)
_ANY_STR: Final = StrKind("string")
_OPT_FILE: Final = PathKind(empty_ok=True)
_HTTP_URL_OR_EMPTY: Final = UrlKind(("http", "https"), "http(s)", empty_ok=True)
_PORT_DOC: Final = " 0 picks a free port (tests only)."


def _file_doc(section: str, key: str) -> str:
    return (
        f"File whose content (whitespace stripped) is {section}.{key}; relative to this "
        f'file. Use either {key} or {key}_file, not both. "" = unset.'
    )


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    data_dir: Path = field(
        metadata=_m(
            PathKind(),
            "var",
            "Directory for local state (embedded PostgreSQL in <data_dir>/postgres, local "
            "snapshots); relative paths are taken from this file's directory.",
        )
    )
    shutdown_timeout: float = field(
        metadata=_m(
            FloatKind(0.1, 600),
            10.0,
            "On SIGTERM/SIGINT, how long actors get to finish before they are cancelled.",
        )
    )
    max_restarts: int = field(
        metadata=_m(
            IntKind(0, 1000),
            5,
            "Supervisor intensity: more than this many actor restarts within restart_window "
            "makes zmartd exit non-zero (so systemd restarts the whole process).",
        )
    )
    restart_window: float = field(
        metadata=_m(FloatKind(0, 86400, lo_open=True), 60.0, "Window for max_restarts.")
    )
    backoff_initial: float = field(
        metadata=_m(
            FloatKind(0, 3600, lo_open=True), 0.5, "First delay before restarting a crashed actor."
        )
    )
    backoff_max: float = field(
        metadata=_m(
            FloatKind(0, 3600, lo_open=True),
            30.0,
            "Cap of the exponential restart delay; must be >= backoff_initial.",
        )
    )
    backoff_jitter: float = field(
        metadata=_m(
            FloatKind(0, 1, unit="fraction"),
            0.2,
            "Random spread applied to each restart delay (0.2 = +/-20 %).",
        )
    )
    instance_name: str = field(
        metadata=_m(
            StrKind("name of letters, digits, '.', '_' or '-' (1..64)", r"[A-Za-z0-9._-]{1,64}"),
            "zmartd",
            "Name of this instance in logs, metrics and leader election (set one per host "
            "when several zmartd share a database).",
        )
    )


@dataclass(frozen=True, slots=True)
class HttpConfig:
    enabled: bool = field(
        metadata=_m(BoolKind(), True, "Serve the REST API, /health, /ready, /metrics, webhooks.")
    )
    host: str = field(metadata=_m(_HOST, "127.0.0.1", "Address to listen on."))
    port: int = field(metadata=_m(_PORT, 8080, "TCP port to listen on." + _PORT_DOC))
    graceful_timeout: float = field(
        metadata=_m(
            FloatKind(0, 60),
            2.0,
            "On shutdown, how long in-flight requests may finish. Idle keep-alive connections "
            "(scrapers, proxies) make every shutdown take exactly this long, so keep it small.",
        )
    )
    public_url: str = field(
        metadata=_m(
            UrlKind(("http", "https"), "http(s)"),
            "http://127.0.0.1:8080",
            "URL clients use to reach this API; its host is the Sign-In-With-Solana domain "
            "and the URL its URI.",
        )
    )
    trusted_proxies: tuple[IpNetwork, ...] = field(
        metadata=_m(
            ListKind(NetworkKind()),
            [],
            "Peers whose X-Forwarded-For is believed (for client IPs in rate limits, the "
            "WebSocket per-address cap and logs). [] = none: every peer is the client. Behind "
            'a reverse proxy on the same host, list its address (e.g. ["127.0.0.1", "::1"] '
            "for the bundled nginx site); trusting loopback by default would let any local "
            "process choose its client IP.",
            example=["127.0.0.1", "::1"],
        )
    )
    cors_origins: tuple[str, ...] = field(
        metadata=_m(
            ListKind(OriginKind()),
            [],
            "Origins allowed by CORS; [] = no CORS headers.",
            example=["https://app.example.com"],
        )
    )
    max_body_bytes: int = field(
        metadata=_m(IntKind(1024, 1 << 30), 1 << 20, "Largest request body accepted (413 above).")
    )
    max_in_flight: int = field(
        metadata=_m(
            IntKind(1, 100_000),
            512,
            "Requests handled at once; beyond that the API answers 503 at once (load "
            "shedding) instead of queueing. /health, /ready and metrics are exempt.",
        )
    )
    max_connections: int = field(
        metadata=_m(
            IntKind(0, 1_000_000),
            512,
            "Client connections served at once; past that a new connection is answered 503 "
            "(raw bytes, a fraction of a request's cost) and closed, so that overload ends in "
            "fast 503s rather than every answer slowing down. 0 = no limit. Keep it above "
            "the proxy's upstream keep-alive pool.",
        )
    )
    max_json_depth: int = field(
        metadata=_m(
            IntKind(1, 1000), 32, "Deepest nesting of arrays/objects accepted in a JSON body."
        )
    )
    keep_alive_timeout: float = field(
        metadata=_m(
            FloatKind(0.5, 3600),
            5.0,
            "How long an idle keep-alive connection is kept for its next request (closed "
            "after that, so it stops counting against max_connections). A proxy pooling "
            "upstream connections should close them sooner than this.",
        )
    )
    header_timeout: float = field(
        metadata=_m(
            FloatKind(0.5, 600),
            10.0,
            "A request head must be complete this long after its first byte (after the "
            "connection opened, for its first request); a slower client is disconnected.",
        )
    )
    body_timeout: float = field(
        metadata=_m(
            FloatKind(0.5, 600),
            10.0,
            "A client that sends no byte of a started request body for this long is "
            "disconnected; also the longest time spent reading away a small body that an "
            "early answer (401, 404, ...) left unread.",
        )
    )
    cache_ttl: float = field(
        metadata=_m(
            FloatKind(0, 3600),
            30.0,
            "Longest time a hot read (market detail, first page of markets, quote inputs) is "
            "served from memory; events invalidate it sooner. 0 = no caching. While the database "
            "is down, older entries are still served.",
        )
    )
    cache_max_entries: int = field(
        metadata=_m(IntKind(1, 10_000_000), 10_000, "Hot-read responses kept in memory.")
    )
    required: bool = field(
        metadata=_m(BoolKind(), True, "/ready answers 503 while this actor is down.")
    )


@dataclass(frozen=True, slots=True)
class AuthConfig:
    domain: str = field(
        metadata=_m(
            StrKind(
                'host[:port] or "" (derive)',
                r"([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?|",
            ),
            "",
            "Sign-In-With-Solana domain that messages must name; it must be the web app's "
            'host (and port, if any) as the wallet sees it. "" = the host[:port] of '
            "http.public_url.",
            example="app.example.com",
        )
    )
    statement: str = field(
        metadata=_m(
            StrKind("one line of text (1..200 characters)", r"[^\r\n]{1,200}"),
            "Sign in to ZMART.",
            "Statement shown to the user in the sign-in message.",
        )
    )
    chain_id: Literal["mainnet", "devnet", "testnet", "localnet"] = field(
        metadata=_m(
            ChoiceKind("mainnet", "devnet", "testnet", "localnet"),
            "devnet",
            "Chain ID written in sign-in messages (the cluster the session is bound to).",
        )
    )
    nonce_ttl: float = field(
        metadata=_m(
            FloatKind(10, 3600),
            300.0,
            "How long a sign-in nonce (and its message) stays valid; each is single-use.",
        )
    )
    session_ttl: float = field(
        metadata=_m(
            FloatKind(60, 90 * 86400),
            7 * 86400.0,
            "Lifetime of a session token issued by POST /v1/auth/verify.",
        )
    )


_RATE: Final = IntKind(1, 1_000_000)


@dataclass(frozen=True, slots=True)
class RateLimitConfig:
    enabled: bool = field(
        metadata=_m(BoolKind(), True, "Apply the token buckets below (false = no 429s).")
    )
    reads_ip_per_minute: int = field(
        metadata=_m(_RATE, 600, "Reads (GET) per minute per client IP (token refill rate).")
    )
    reads_ip_burst: int = field(metadata=_m(_RATE, 120, "Bucket size of reads per client IP."))
    reads_wallet_per_minute: int = field(
        metadata=_m(_RATE, 600, "Reads per minute per signed-in wallet.")
    )
    reads_wallet_burst: int = field(metadata=_m(_RATE, 120, "Bucket size of reads per wallet."))
    writes_ip_per_minute: int = field(
        metadata=_m(_RATE, 60, "Writes (votes, posts, profile) per minute per client IP.")
    )
    writes_ip_burst: int = field(metadata=_m(_RATE, 20, "Bucket size of writes per client IP."))
    writes_wallet_per_minute: int = field(
        metadata=_m(_RATE, 30, "Writes per minute per signed-in wallet.")
    )
    writes_wallet_burst: int = field(metadata=_m(_RATE, 10, "Bucket size of writes per wallet."))
    auth_ip_per_minute: int = field(
        metadata=_m(_RATE, 30, "Sign-in requests (nonce, verify) per minute per client IP.")
    )
    auth_ip_burst: int = field(metadata=_m(_RATE, 10, "Bucket size of sign-in requests per IP."))
    auth_wallet_per_minute: int = field(
        metadata=_m(
            _RATE,
            10,
            "Sign-ins per minute per wallet, counted only once the signature verified "
            "(POST /v1/auth/verify): requesting nonces for a wallet does not spend it, so no "
            "one but the key's holder can lock a wallet out of signing in.",
        )
    )
    auth_wallet_burst: int = field(metadata=_m(_RATE, 5, "Bucket size of sign-ins per wallet."))
    auth_global_per_minute: int = field(
        metadata=_m(
            _RATE,
            3000,
            "Sign-in nonces issued per minute to all clients together (this instance, or all "
            "instances sharing [redis] url): a ceiling on the database rows that "
            "unauthenticated requests create. Sized so that ~100 IPs at auth_ip_per_minute are "
            "needed to reach it.",
        )
    )
    auth_global_burst: int = field(
        metadata=_m(_RATE, 1000, "Bucket size of sign-in nonces for all clients together.")
    )
    session_ip_per_minute: int = field(
        metadata=_m(
            _RATE,
            120,
            "Session checks and logouts (GET /v1/auth/session, POST /v1/auth/logout) per "
            "minute per client IP. Their own buckets: sign-in traffic never keeps a signed-in "
            "wallet from logging out.",
        )
    )
    session_ip_burst: int = field(
        metadata=_m(_RATE, 30, "Bucket size of session checks and logouts per IP.")
    )
    session_wallet_per_minute: int = field(
        metadata=_m(_RATE, 120, "Session checks and logouts per minute per signed-in wallet.")
    )
    session_wallet_burst: int = field(
        metadata=_m(_RATE, 30, "Bucket size of session checks and logouts per wallet.")
    )
    legacy_ip_per_minute: int = field(
        metadata=_m(
            _RATE,
            600,
            "Reads of the legacy /api surface (the original web frontend's polling) per "
            "minute per client IP. One tab polls about 4 times a minute (activity every 30 s, "
            "trending every 2 min, topics every 5 min, plus page loads and React Query's 3 "
            "retries); behind its proxy mode every user shares the proxy's IP unless the "
            "proxy is in http.trusted_proxies.",
        )
    )
    legacy_ip_burst: int = field(
        metadata=_m(_RATE, 200, "Bucket size of legacy /api reads per client IP.")
    )
    legacy_wallet_per_minute: int = field(
        metadata=_m(
            _RATE,
            30,
            "Signed legacy /api writes (Authorization: Signature: discussion posts, votes) per "
            "minute per signing wallet, whatever address they come from.",
        )
    )
    legacy_wallet_burst: int = field(
        metadata=_m(_RATE, 10, "Bucket size of signed legacy /api writes per wallet.")
    )


@dataclass(frozen=True, slots=True)
class WsConfig:
    enabled: bool = field(metadata=_m(BoolKind(), True, "Serve the WebSocket hub."))
    host: str = field(metadata=_m(_HOST, "127.0.0.1", "Address to listen on."))
    port: int = field(
        metadata=_m(
            _PORT,
            8081,
            "TCP port to listen on (must differ from http.port on the same host)." + _PORT_DOC,
        )
    )
    heartbeat_interval: float = field(
        metadata=_m(FloatKind(1, 3600), 30.0, "Seconds between pings to each client.")
    )
    heartbeat_misses: int = field(
        metadata=_m(IntKind(1, 100), 2, "Unanswered pings after which a client is disconnected.")
    )
    max_subscriptions: int = field(
        metadata=_m(IntKind(1, 10_000), 50, "Channels one connection may join.")
    )
    max_message_bytes: int = field(
        metadata=_m(IntKind(256, 16 << 20), 65536, "Largest client message accepted (bytes).")
    )
    max_connections_per_ip: int = field(
        metadata=_m(IntKind(1, 100_000), 100, "Concurrent connections from one client IP.")
    )
    send_queue: int = field(
        metadata=_m(
            IntKind(1, 100_000),
            256,
            "Messages buffered per client; a client that falls further behind is disconnected.",
        )
    )
    replay_buffer_size: int = field(
        metadata=_m(
            IntKind(0, 1_000_000),
            1000,
            "Recent messages per channel kept for resume-after-reconnect (0 = no replay).",
        )
    )
    replay_buffer_age: float = field(
        metadata=_m(FloatKind(0, 86400, lo_open=True), 300.0, "Age limit of replayable messages.")
    )
    legacy_firehose: bool = field(
        metadata=_m(
            BoolKind(),
            True,
            "Send connections that have not subscribed yet every trade and market_state in "
            "the original web frontend's event shapes (it never subscribes); a connection's "
            "first subscribe switches it to the channel protocol.",
        )
    )
    required: bool = field(
        metadata=_m(BoolKind(), True, "/ready answers 503 while this actor is down.")
    )


@dataclass(frozen=True, slots=True)
class DatabaseConfig:
    dsn: Secret = field(
        metadata=_m(
            SecretKind("PostgreSQL URL postgresql://user:password@host:port/db", check_dsn),
            "",
            'PostgreSQL to use. "" = run the embedded PostgreSQL in <data_dir>/postgres '
            "(needs embedded = true).",
        )
    )
    dsn_file: Path | None = field(metadata=_m(_OPT_FILE, "", _file_doc("database", "dsn")))
    cursor_secret: Secret = field(
        metadata=_m(
            SecretKind("at least 16 characters", check_cursor_secret),
            "",
            "Key that signs pagination cursors (next_cursor), so that a client cannot forge "
            "one. Instances sharing a database behind one proxy must share it. Changing it "
            "only invalidates the cursors clients hold (they restart from the first page). "
            '"" = a random secret generated once into <data_dir>/cursor_secret (mode 0600).',
        )
    )
    cursor_secret_file: Path | None = field(
        metadata=_m(_OPT_FILE, "", _file_doc("database", "cursor_secret"))
    )
    pool_min: int = field(metadata=_m(IntKind(1, 100), 2, "Connections kept open."))
    pool_max: int = field(
        metadata=_m(IntKind(1, 1000), 10, "Connection limit; must be >= pool_min.")
    )
    statement_timeout: float = field(
        metadata=_m(FloatKind(0, 3600, lo_open=True), 10.0, "Server-side limit per SQL statement.")
    )
    embedded: bool = field(
        metadata=_m(
            BoolKind(),
            True,
            'Allow the embedded PostgreSQL when dsn is "". false makes an empty dsn an error '
            "(production guard).",
        )
    )
    required: bool = field(
        metadata=_m(BoolKind(), True, "/ready answers 503 while the database is down.")
    )


@dataclass(frozen=True, slots=True)
class RedisConfig:
    url: Secret = field(
        metadata=_m(
            SecretKind("redis://, rediss:// or unix:// URL", check_redis),
            "",
            "Redis shared by several zmartd: pub/sub, cache invalidation and rate-limit buckets. "
            '"" = no Redis (in-process only).',
        )
    )
    url_file: Path | None = field(metadata=_m(_OPT_FILE, "", _file_doc("redis", "url")))
    key_prefix: str = field(
        metadata=_m(_ANY_STR, "zmartd:", "Prefix of every Redis key and channel.")
    )
    required: bool = field(
        metadata=_m(BoolKind(), False, "/ready answers 503 while Redis is down.")
    )


@dataclass(frozen=True, slots=True)
class ChainConfig:
    mode: Literal["local", "rpc"] = field(
        metadata=_m(
            ChoiceKind("local", "rpc"),
            "local",
            '"local" = run the built-in local chain double ([devchain]); "rpc" = use a real '
            "cluster through rpc_urls.",
        )
    )
    program_id: Pubkey = field(
        metadata=_m(
            PubkeyKind(),
            "6s8bbbCS7oNYNnTUHgrPDHG4jqaSrD6MSxQSPVR1rxw",
            "The ZMART program (current devnet deployment).",
        )
    )
    rpc_urls: tuple[str, ...] = field(
        metadata=_m(
            ListKind(UrlKind(("http", "https"), "http(s)"), max_len=20),
            [],
            'JSON-RPC endpoints, primary first; at least one when mode = "rpc" (ignored in '
            "local mode).",
            example=["https://api.devnet.solana.com"],
        )
    )
    ws_url: str = field(
        metadata=_m(
            UrlKind(("ws", "wss"), "ws(s)", empty_ok=True),
            "",
            'PubSub endpoint. "" = derive from the first rpc url (http->ws, https->wss, '
            "explicit port + 1 as solana-test-validator does).",
        )
    )
    commitment: Literal["processed", "confirmed", "finalized"] = field(
        metadata=_m(
            ChoiceKind("processed", "confirmed", "finalized"),
            "confirmed",
            "Commitment for reads and subscriptions.",
        )
    )
    request_timeout: float = field(
        metadata=_m(FloatKind(0, 300, lo_open=True), 10.0, "Timeout of one RPC request.")
    )
    max_retries: int = field(
        metadata=_m(IntKind(0, 20), 5, "Retries of a failed RPC request (with backoff).")
    )
    keypair: Secret = field(
        metadata=_m(
            SecretKind(
                "Solana keypair (base58 secret key, or JSON array of 64 integers as written by "
                "solana-keygen)",
                check_keypair,
            ),
            "",
            'Backend authority that signs transactions. "" = read-only (no transactions sent).',
        )
    )
    keypair_file: Path | None = field(
        metadata=_m(
            _OPT_FILE,
            "",
            _file_doc("chain", "keypair") + " A solana-keygen JSON file works as is; it must "
            "not be readable by group or others (chmod 600), else zmartd refuses to start.",
        )
    )
    webhook_secret: Secret = field(
        metadata=_m(
            SecretKind("any text"),
            "",
            'Expected Authorization header of incoming chain webhooks. "" = webhooks refused.',
        )
    )
    webhook_secret_file: Path | None = field(
        metadata=_m(_OPT_FILE, "", _file_doc("chain", "webhook_secret"))
    )
    reconcile_interval: float = field(
        metadata=_m(
            FloatKind(1, 86400), 300.0, "Seconds between full getProgramAccounts reconciliations."
        )
    )
    required: bool = field(
        metadata=_m(BoolKind(), True, "/ready answers 503 while the chain is unreachable.")
    )

    def signer(self) -> Keypair | None:
        """The backend authority keypair, or None when running read-only."""
        return parse_keypair(self.keypair.reveal()) if self.keypair else None


@dataclass(frozen=True, slots=True)
class DevchainConfig:
    host: str = field(
        metadata=_m(_HOST, "127.0.0.1", "Address of the local chain double's JSON-RPC/PubSub.")
    )
    port: int = field(metadata=_m(_PORT, 8899, "JSON-RPC port." + _PORT_DOC))
    ws_port: int = field(
        metadata=_m(_PORT, 8900, "PubSub port; must differ from port." + _PORT_DOC)
    )
    seed: Literal["demo", "none"] = field(
        metadata=_m(
            ChoiceKind("demo", "none"),
            "demo",
            '"demo" = start with a global config and sample markets; "none" = empty chain.',
        )
    )
    state_file: Path | None = field(
        metadata=_m(
            _OPT_FILE, "", 'File the chain state is saved to and restored from; "" = in memory.'
        )
    )
    slot_interval: float = field(metadata=_m(FloatKind(0.01, 60), 0.4, "Seconds per slot."))
    finalized_lag: int = field(
        metadata=_m(IntKind(0, 1000), 32, "Slots between confirmed and finalized.")
    )
    program_variant: Literal["deployed", "patched"] = field(
        metadata=_m(
            ChoiceKind("deployed", "patched"),
            "deployed",
            '"deployed" = behave like the program on devnet, bugs included. "patched" fixes the '
            "fund-moving bugs of docs/chain.md §11 and is NOT the deployed behaviour.",
        )
    )
    webhook_url: str = field(
        metadata=_m(
            _HTTP_URL_OR_EMPTY,
            "",
            'Where to POST Helius-style webhooks for each transaction; "" = off.',
        )
    )
    webhook_auth_header: Secret = field(
        metadata=_m(SecretKind("any text"), "", "Authorization header sent with those webhooks.")
    )
    webhook_auth_header_file: Path | None = field(
        metadata=_m(_OPT_FILE, "", _file_doc("devchain", "webhook_auth_header"))
    )
    webhook_duplicates: int = field(
        metadata=_m(IntKind(1, 10), 1, "Times each webhook is delivered (tests idempotency).")
    )
    webhook_shuffle: bool = field(
        metadata=_m(BoolKind(), False, "Deliver webhooks out of order (tests ordering).")
    )


@dataclass(frozen=True, slots=True)
class VotesConfig:
    eligibility: Literal["history", "any"] = field(
        metadata=_m(
            ChoiceKind("history", "any"),
            "history",
            'Which off-chain votes (POST /v1/markets/{id}/votes/*) count. "history" (default): '
            "the voting wallet has a position or a trade in the indexed mirror, in any market "
            "-- a fresh keypair costs nothing, a trade costs at least the program's minimum "
            "trade plus fees and stays on chain, so sybil votes get expensive and visible. "
            '"any": every signed-in wallet. A vote that does not qualify is kept, shown as '
            "excluded with its reason, and never counted (tallies, aggregations). On-chain "
            "votes always count.",
        )
    )
    max_per_address: int = field(
        metadata=_m(
            IntKind(0, 1_000_000),
            3,
            "Off-chain votes counted per client address, market and kind; more from the same "
            "address are kept as excluded (address_limit). 0 = no limit. Behind a proxy this "
            "needs [http] trusted_proxies (else every vote comes from the proxy).",
        )
    )


@dataclass(frozen=True, slots=True)
class AggregatorConfig:
    enabled: bool = field(metadata=_m(BoolKind(), True, "Run the vote aggregator (leader only)."))
    interval: float = field(
        metadata=_m(
            FloatKind(1, 86400),
            300.0,
            "Seconds between tallies. The approval and dispute thresholds are not set here: "
            "they are the program's GlobalConfig values (the program re-checks them).",
            first_run=(
                5.0,
                "FIRST RUN: 5 s so that the Quickstart's demo proposal is approved within "
                "seconds; the default (and a sensible production value) is 300.",
            ),
        )
    )
    vote_source: Literal["chain", "api", "both"] = field(
        metadata=_m(
            ChoiceKind("chain", "api", "both"),
            "both",
            'Votes counted: "chain" = VoteRecords (submit_*_vote), "api" = votes cast through '
            '/v1/markets/{id}/votes, "both" = both, one per wallet (its on-chain vote wins).',
        )
    )
    min_votes: int = field(
        metadata=_m(
            IntKind(0),
            10,
            "Votes a proposal needs before the aggregator approves it (off-chain "
            "policy; the program has no minimum).",
        )
    )
    dispute_voting_period: float = field(
        metadata=_m(
            FloatKind(0, 30 * 86400),
            86400.0,
            "Seconds a dispute is open for votes, from dispute_initiated_at (chain time); then "
            "the aggregator finalizes the market with the tally (off-chain policy; the program "
            "has no deadline).",
        )
    )


@dataclass(frozen=True, slots=True)
class SenderConfig:
    enabled: bool = field(
        metadata=_m(
            BoolKind(),
            True,
            "Run the transaction sender (leader only): executes stored intents exactly once.",
        )
    )
    rebroadcast_interval: float = field(
        metadata=_m(
            FloatKind(0.1, 60),
            2.0,
            "Seconds between rebroadcasts of the same signed transaction until it is confirmed "
            "or its blockhash expired.",
        )
    )
    compute_unit_margin: float = field(
        metadata=_m(
            FloatKind(0, 10, unit="fraction"),
            0.2,
            "Compute-unit limit = units the simulation consumed x (1 + this).",
        )
    )
    priority_fee_percentile: int = field(
        metadata=_m(
            IntKind(0, 100),
            50,
            "Priority fee = this percentile of getRecentPrioritizationFees for the market.",
        )
    )
    max_priority_fee: int = field(
        metadata=_m(
            IntKind(0, 1_000_000_000),
            100_000,
            "Cap of the priority fee, in micro-lamports per compute unit.",
        )
    )


_AT_RE: Final = r"([01][0-9]|2[0-3]):[0-5][0-9]"


@dataclass(frozen=True, slots=True)
class SnapshotterConfig:
    enabled: bool = field(
        metadata=_m(
            BoolKind(),
            True,
            "Run the discussion snapshotter (leader only: one instance per database "
            "snapshots, the others stand by).",
        )
    )
    at: str = field(
        metadata=_m(
            StrKind("UTC time HH:MM", _AT_RE),
            "00:00",
            "UTC time of day at which the previous day's discussions are snapshotted "
            "(missed days are caught up, oldest first).",
        )
    )
    backend: Literal["local", "kubo", "pinning-service"] = field(
        metadata=_m(
            ChoiceKind("local", "kubo", "pinning-service"),
            "local",
            '"local" = a content-addressed store in <data_dir>/ipfs, served at /ipfs/{cid} '
            'by the HTTP actor (works offline); "kubo" = a Kubo node through its RPC API '
            '(kubo_url); "pinning-service" = an IPFS Pinning Service API (pinning_url, '
            "pinning_token), the content being provided to the network by the Kubo node at "
            "kubo_url.",
        )
    )
    retention_days: int = field(
        metadata=_m(
            IntKind(1, 36500),
            90,
            "Snapshots of days older than this are unpinned/deleted from the backend and "
            "marked pruned (their anchor rows stay).",
        )
    )
    request_timeout: float = field(
        metadata=_m(
            FloatKind(0, 3600, lo_open=True),
            60.0,
            "Seconds per request to the Kubo node or the pinning service.",
        )
    )
    kubo_url: str = field(
        metadata=_m(
            _HTTP_URL_OR_EMPTY,
            "",
            'Kubo RPC API base URL (e.g. "http://127.0.0.1:5001"); needed when backend = "kubo".',
        )
    )
    kubo_auth: Secret = field(
        metadata=_m(
            SecretKind("any text"),
            "",
            'Authorization header value sent to kubo_url (e.g. "Basic dXNlcjpwYXNz" or '
            '"Bearer <token>"); "" = none.',
        )
    )
    kubo_auth_file: Path | None = field(
        metadata=_m(_OPT_FILE, "", _file_doc("snapshotter", "kubo_auth"))
    )
    pinning_url: str = field(
        metadata=_m(
            _HTTP_URL_OR_EMPTY,
            "",
            "IPFS Pinning Service API base URL (the one /pins is under); needed when "
            'backend = "pinning-service".',
        )
    )
    pinning_token: Secret = field(
        metadata=_m(
            SecretKind("access token"),
            "",
            'Bearer token of the pinning service; needed when backend = "pinning-service".',
        )
    )
    pinning_token_file: Path | None = field(
        metadata=_m(_OPT_FILE, "", _file_doc("snapshotter", "pinning_token"))
    )
    pin_timeout: float = field(
        metadata=_m(
            FloatKind(0, 86400, lo_open=True),
            600.0,
            "How long the pinning service may take to report a snapshot pinned before the "
            "day is retried.",
        )
    )


@dataclass(frozen=True, slots=True)
class LogConfig:
    level: Literal["debug", "info", "warning", "error"] = field(
        metadata=_m(ChoiceKind("debug", "info", "warning", "error"), "info", "Lowest level logged.")
    )
    format: Literal["auto", "json", "console"] = field(
        metadata=_m(
            ChoiceKind("auto", "json", "console"),
            "auto",
            '"auto" = console when stdout is a terminal, else JSON lines.',
        )
    )


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    enabled: bool = field(
        metadata=_m(BoolKind(), True, "Expose Prometheus metrics on the HTTP server.")
    )
    path: str = field(
        metadata=_m(
            StrKind('URL path starting with "/"', r"/[A-Za-z0-9._~/-]*"),
            "/metrics",
            "Path of the metrics endpoint.",
        )
    )


_EMAIL: Final = StrKind("e-mail address (local@domain)", r"[^@\s<>]+@[^@\s<>]+")


@dataclass(frozen=True, slots=True)
class MonitorConfig:
    enabled: bool = field(
        metadata=_m(
            BoolKind(),
            True,
            "Run the market monitor (leader only): finalizes RESOLVING markets whose dispute "
            "window passed (needs [sender]) and raises operator alerts.",
        )
    )
    interval: float = field(
        metadata=_m(
            FloatKind(1, 86400),
            60.0,
            "Seconds between checks. Deadlines are compared with the chain's clock (the block "
            "time of the latest slot), never with this server's clock.",
            first_run=(
                5.0,
                "FIRST RUN: 5 s so that the Quickstart's demo market rain-paris, whose dispute "
                "window has passed, is finalized within seconds; the default is 60.",
            ),
        )
    )
    repeat_after: float = field(
        metadata=_m(
            FloatKind(60, 30 * 86400),
            14400.0,
            "A condition that persists is notified once, then again every this many seconds "
            "while it lasts; a resolved notice is sent when it clears.",
        )
    )
    resolution_grace: float = field(
        metadata=_m(
            FloatKind(0, 30 * 86400),
            3600.0,
            "An ACTIVE market whose end_time (metadata) passed this long ago in chain time "
            "without a proposed resolution raises a 'needs resolution' alert.",
        )
    )
    dispute_grace: float = field(
        metadata=_m(
            FloatKind(0, 30 * 86400),
            3600.0,
            "A DISPUTED market still not finalized this long after its voting period "
            "([aggregator] dispute_voting_period) ended raises an alert.",
        )
    )
    stuck_proposed: float = field(
        metadata=_m(
            FloatKind(0, 365 * 86400),
            14 * 86400.0,
            "Alert when a market stays PROPOSED longer than this (chain time); 0 = never.",
        )
    )
    stuck_approved: float = field(
        metadata=_m(
            FloatKind(0, 365 * 86400),
            14 * 86400.0,
            "Alert when a market stays APPROVED (not activated) longer than this; 0 = never.",
        )
    )
    stuck_resolving: float = field(
        metadata=_m(
            FloatKind(0, 365 * 86400),
            5 * 86400.0,
            "Alert when a market stays RESOLVING longer than this (the program's dispute "
            "window is 72 h by default); 0 = never.",
        )
    )
    stuck_disputed: float = field(
        metadata=_m(
            FloatKind(0, 365 * 86400),
            7 * 86400.0,
            "Alert when a market stays DISPUTED longer than this; 0 = never.",
        )
    )
    intent_failures: int = field(
        metadata=_m(
            IntKind(1, 1000),
            3,
            "Alert when a sender intent failed, or was attempted this many times without landing.",
        )
    )
    indexer_lag_slots: int = field(
        metadata=_m(
            IntKind(1, 10_000_000),
            150,
            "Alert when the newest program transaction on chain is this many slots past the "
            "indexer's watermark.",
        )
    )
    actor_restarts: int = field(
        metadata=_m(
            IntKind(1, 1000),
            3,
            "Alert when an actor has been restarted this many times by the supervisor.",
        )
    )
    webhook_url: Secret = field(
        metadata=_m(
            SecretKind("http(s) URL", check_http_url),
            "",
            "POST every alert and resolved notice here as JSON (with a Slack/Discord-"
            'compatible "text" field); a secret, since such URLs carry a token. "" = no webhook. '
            "To get alerts in Slack or Discord, create an incoming webhook there and put its URL "
            "here (or in the environment variable); any other receiver gets the same JSON and can "
            "check webhook_secret's signature. Alerts are stored and listed at GET "
            "/v1/admin/alerts whether or not a channel is set.",
            example="https://hooks.slack.com/services/T000/B000/XXXXXXXX",
        )
    )
    webhook_url_file: Path | None = field(
        metadata=_m(_OPT_FILE, "", _file_doc("monitor", "webhook_url"))
    )
    webhook_secret: Secret = field(
        metadata=_m(
            SecretKind("any text"),
            "",
            "Signs each webhook body: header X-Zmartd-Signature: sha256=<hex HMAC-SHA256 of "
            'the body with this secret>. "" = unsigned.',
        )
    )
    webhook_secret_file: Path | None = field(
        metadata=_m(_OPT_FILE, "", _file_doc("monitor", "webhook_secret"))
    )
    webhook_timeout: float = field(
        metadata=_m(FloatKind(0, 120, lo_open=True), 10.0, "Timeout of one webhook attempt.")
    )
    retries: int = field(
        metadata=_m(
            IntKind(0, 20),
            4,
            "Retries of a failed delivery (webhook or e-mail), with exponential backoff and "
            "jitter starting at retry_backoff.",
        )
    )
    retry_backoff: float = field(
        metadata=_m(FloatKind(0, 600), 1.0, "First delay before a delivery retry (doubles).")
    )
    smtp_host: str = field(
        metadata=_m(
            StrKind("host name or IP address, or empty", r"[A-Za-z0-9_.:%-]*"),
            "",
            'SMTP server for e-mail alerts; "" = no e-mail.',
            example="smtp.example.com",
        )
    )
    smtp_port: int = field(metadata=_m(IntKind(1, 65535), 587, "SMTP port."))
    smtp_security: Literal["starttls", "tls", "none"] = field(
        metadata=_m(
            ChoiceKind("starttls", "tls", "none"),
            "starttls",
            '"starttls" (port 587), "tls" (implicit TLS, port 465) or "none" (local relays only).',
        )
    )
    smtp_username: str = field(metadata=_m(_ANY_STR, "", 'SMTP login; "" = no authentication.'))
    smtp_password: Secret = field(
        metadata=_m(SecretKind("any text"), "", "SMTP password (with smtp_username).")
    )
    smtp_password_file: Path | None = field(
        metadata=_m(_OPT_FILE, "", _file_doc("monitor", "smtp_password"))
    )
    smtp_timeout: float = field(
        metadata=_m(FloatKind(0, 120, lo_open=True), 20.0, "Timeout of one SMTP session.")
    )
    email_from: str = field(
        metadata=_m(
            StrKind("e-mail address, or empty", r"([^@\s<>]+@[^@\s<>]+)?"),
            "",
            "Sender address of alert e-mails (required with smtp_host).",
            example="zmartd@example.com",
        )
    )
    email_to: tuple[str, ...] = field(
        metadata=_m(
            ListKind(_EMAIL),
            [],
            "Recipients of alert e-mails (required with smtp_host).",
            example=["ops@example.com"],
        )
    )


@dataclass(frozen=True, slots=True)
class AdminConfig:
    wallets: tuple[Pubkey, ...] = field(
        metadata=_m(
            ListKind(PubkeyKind()),
            [],
            "Wallets allowed to use /admin (after Sign-In-With-Solana).",
            example=["6s8bbbCS7oNYNnTUHgrPDHG4jqaSrD6MSxQSPVR1rxw"],
        )
    )
    keypair: Secret = field(
        metadata=_m(
            SecretKind(
                "Solana keypair (base58 secret key, or JSON array of 64 integers as written by "
                "solana-keygen)",
                check_keypair,
            ),
            "",
            "The program's admin key (GlobalConfig.admin): signs approve_proposal and "
            'cancel_market. "" = those steps are left to a human (reported on /ready), unless '
            "the [chain] keypair is itself the admin.",
        )
    )
    keypair_file: Path | None = field(
        metadata=_m(
            _OPT_FILE,
            "",
            _file_doc("admin", "keypair") + " Same rules as chain.keypair_file (chmod 600).",
        )
    )

    def signer(self) -> Keypair | None:
        """The admin keypair, or None when approvals are left to a human."""
        return parse_keypair(self.keypair.reveal()) if self.keypair else None


SectionConfig = (
    DaemonConfig
    | HttpConfig
    | AuthConfig
    | RateLimitConfig
    | WsConfig
    | DatabaseConfig
    | RedisConfig
    | ChainConfig
    | DevchainConfig
    | VotesConfig
    | AggregatorConfig
    | SenderConfig
    | SnapshotterConfig
    | MonitorConfig
    | LogConfig
    | MetricsConfig
    | AdminConfig
)

SECTION_TYPES: Final[dict[str, type[Any]]] = {
    "daemon": DaemonConfig,
    "http": HttpConfig,
    "auth": AuthConfig,
    "ratelimit": RateLimitConfig,
    "ws": WsConfig,
    "database": DatabaseConfig,
    "redis": RedisConfig,
    "chain": ChainConfig,
    "devchain": DevchainConfig,
    "votes": VotesConfig,
    "aggregator": AggregatorConfig,
    "sender": SenderConfig,
    "snapshotter": SnapshotterConfig,
    "monitor": MonitorConfig,
    "log": LogConfig,
    "metrics": MetricsConfig,
    "admin": AdminConfig,
}
SECTIONS: Final[tuple[str, ...]] = tuple(SECTION_TYPES)

#: Sections of actors that do not exist yet. A file that has one is rejected with this
#: text rather than accepted as if it worked (or called a typo): nothing would read it.
PLANNED: Final[dict[str, str]] = {}

SECTION_DOCS: Final[dict[str, str]] = {
    "daemon": "The process: where local state lives, shutdown and the supervisor's restart policy.",
    "http": "REST API, health/readiness, metrics and webhooks (quart-trio on hypercorn).",
    "auth": "Sign-In With Solana: the message wallets sign and the sessions it opens.",
    "ratelimit": "Token buckets per route class (reads, writes, auth, session, legacy), per "
    "client IP and per wallet (one that proved it holds its key: a session, or a verified "
    "sign-in signature), plus one for all sign-in nonces together; shared through Redis when "
    "[redis] url is set (in memory otherwise, and while Redis fails). A full bucket answers "
    "429 with Retry-After.",
    "ws": "WebSocket hub for live updates.",
    "database": "PostgreSQL, the source of truth for reads.",
    "redis": "Optional Redis, to share pub/sub between several zmartd processes.",
    "chain": "The Solana cluster and the ZMART program.",
    "devchain": 'The built-in local chain double, used when chain.mode = "local".',
    "votes": "Which off-chain proposal and dispute votes count (the anti-sybil policy).",
    "aggregator": "Tallies proposal and dispute votes and turns them into transactions.",
    "sender": "Executes stored intents (aggregations, approvals, finalizations) on chain exactly "
    "once, across crashes and restarts. Its compute-budget, priority-fee and rebroadcast settings "
    "also apply to the wallet transactions of /v1/tx/* (built and relayed by the http actor).",
    "snapshotter": "Daily discussion snapshots: canonical JSON per market and day, stored "
    "under a locally computed and verified CID, pruned after retention_days.",
    "monitor": "Watches markets in chain time: finalizes RESOLVING markets after the dispute "
    "window and alerts operators (webhook, e-mail) about overdue, stuck or failing things.",
    "log": "Logging.",
    "metrics": "Prometheus metrics.",
    "admin": "Administration: the /admin wallets and the program's admin key.",
}


@dataclass(frozen=True, slots=True)
class Config:
    """The whole effective configuration; one attribute per section, in SECTIONS order."""

    daemon: DaemonConfig
    http: HttpConfig
    auth: AuthConfig
    ratelimit: RateLimitConfig
    ws: WsConfig
    database: DatabaseConfig
    redis: RedisConfig
    chain: ChainConfig
    devchain: DevchainConfig
    votes: VotesConfig
    aggregator: AggregatorConfig
    sender: SenderConfig
    snapshotter: SnapshotterConfig
    monitor: MonitorConfig
    log: LogConfig
    metrics: MetricsConfig
    admin: AdminConfig
    source_path: Path | None = field(default=None, compare=False)


@dataclass(frozen=True)
class FieldSpec:
    """One key of the schema, as used by validation, docs and tests."""

    section: str
    key: str
    kind: Kind
    default: Any  # raw TOML value
    doc: str
    example: Any  # raw TOML value shown commented-out in the example file, or None
    python_type: str
    #: (value, why) the example file sets instead of the default, or None
    first_run: tuple[Any, str] | None = None

    @property
    def path(self) -> str:
        return f"{self.section}.{self.key}"

    @property
    def secret(self) -> bool:
        return isinstance(self.kind, SecretKind)

    @property
    def env_var(self) -> str | None:
        return f"{ENV_PREFIX}{self.section}_{self.key}".upper() if self.secret else None


def _build_specs() -> dict[str, dict[str, FieldSpec]]:
    specs: dict[str, dict[str, FieldSpec]] = {}
    for name, cls in SECTION_TYPES.items():
        section: dict[str, FieldSpec] = {}
        for f in dataclasses.fields(cls):
            m: _Meta = f.metadata["spec"]
            section[f.name] = FieldSpec(
                name, f.name, m.kind, m.default, m.doc, m.example, str(f.type), m.first_run
            )
        for key, spec in section.items():
            if spec.secret and f"{key}_file" not in section:
                raise AssertionError(f"secret {name}.{key} lacks {key}_file")
        specs[name] = section
    return specs


SPECS: Final = _build_specs()


def field_specs() -> tuple[FieldSpec, ...]:
    """Every key of the schema in canonical order."""
    return tuple(s for section in SPECS.values() for s in section.values())
