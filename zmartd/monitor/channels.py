"""Where alert notices go: an HTTP webhook and e-mail over SMTP.

A notice is one JSON document (:func:`notice_body`); the webhook POSTs it
as is -- its ``text`` field makes Slack and Discord incoming webhooks show it
without an adapter -- signed with ``X-Zmartd-Signature: sha256=<hex
HMAC-SHA256 of the exact body>`` when a secret is configured, so a receiver
can check it came from this zmartd.  E-mail sends the same text.

Every delivery is retried with exponential backoff and full jitter, each
attempt under its own timeout; a channel that still fails returns False and
never raises (an unreachable webhook must not stop the monitor).

E-mail uses the standard library's :mod:`smtplib` in a worker thread
(:func:`trio.to_thread.run_sync`) rather than aiosmtplib through the
trio-asyncio bridge: alert mail is rare (a handful per hour at worst), and a
thread hop cost 0.15-0.25 ms against 55-70 ms for one SMTP session with a
local aiosmtpd (measured on the 2-core development machine), so a native
asyncio client would save nothing that matters; smtplib needs no new runtime
dependency and covers STARTTLS, implicit TLS and plain SMTP with the
system's certificate checks.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import smtplib
import ssl
from collections.abc import Awaitable, Callable
from datetime import datetime
from email.message import EmailMessage
from typing import Any, Final, Literal, Protocol

import httpx
import msgspec
import structlog
import trio

from zmartd.config.sections import MonitorConfig
from zmartd.storage.alerts import AlertRecord

__all__ = [
    "SIGNATURE_HEADER",
    "Channel",
    "EmailChannel",
    "WebhookChannel",
    "channels_for",
    "notice_body",
    "notice_text",
    "retrying",
    "sign",
]

SIGNATURE_HEADER: Final = "X-Zmartd-Signature"
Kind = Literal["firing", "repeat", "resolved"]
_log = structlog.get_logger("zmartd.monitor")


def notice_text(alert: AlertRecord, kind: Kind) -> str:
    """One human line (plus details) for chat and e-mail."""
    head = {
        "firing": f"[{alert.severity.upper()}] {alert.title}",
        "repeat": f"[{alert.severity.upper()}] still firing: {alert.title}",
        "resolved": f"[RESOLVED] {alert.title}",
    }[kind]
    lines = [head]
    for key, value in alert.details.items():
        lines.append(f"{key}: {value}")
    lines.append(f"first seen {alert.first_seen.isoformat()}, seen {alert.count} time(s)")
    return "\n".join(lines)


def notice_body(alert: AlertRecord, kind: Kind, *, instance: str) -> bytes:
    """The JSON document sent for a notice."""

    def _time(t: datetime | None) -> str | None:
        return None if t is None else t.isoformat()

    doc: dict[str, Any] = {
        "text": notice_text(alert, kind),
        "kind": kind,
        "instance": instance,
        "alert": {
            "id": alert.id,
            "key": alert.dedup_key,
            "severity": alert.severity,
            "title": alert.title,
            "details": alert.details,
            "state": alert.state,
            "first_seen": _time(alert.first_seen),
            "last_seen": _time(alert.last_seen),
            "count": alert.count,
            "resolved_at": _time(alert.resolved_at),
        },
    }
    return msgspec.json.encode(doc)


def sign(secret: str, body: bytes) -> str:
    """The value of :data:`SIGNATURE_HEADER` for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def retrying(
    attempt: Callable[[], Awaitable[None]],
    *,
    retries: int,
    backoff: float,
    on_result: Callable[[bool, str | None], None],
) -> bool:
    """Run ``attempt`` until it returns, at most ``1 + retries`` times, sleeping
    ``uniform(0, backoff * 2**n)`` between tries (full jitter: several
    instances never retry in lock step).  ``on_result(ok, error)`` is called per
    attempt.  Returns whether one attempt succeeded."""
    for n in range(retries + 1):
        try:
            await attempt()
        except Exception as exc:  # any failure of a delivery is retried, never raised
            on_result(False, f"{type(exc).__name__}: {exc}")
            if n < retries:
                await trio.sleep(random.uniform(0, backoff * 2**n))
            continue
        on_result(True, None)
        return True
    return False


class Channel(Protocol):
    name: str

    async def deliver(self, alert: AlertRecord, kind: Kind, body: bytes) -> None:
        """One attempt; raises on failure."""


class WebhookChannel:
    name = "webhook"

    def __init__(self, url: str, secret: str, timeout: float) -> None:
        self.url, self.secret, self.timeout = url, secret, timeout

    async def deliver(self, alert: AlertRecord, kind: Kind, body: bytes) -> None:
        headers = {"Content-Type": "application/json", "User-Agent": "zmartd-monitor"}
        if self.secret:
            headers[SIGNATURE_HEADER] = sign(self.secret, body)
        with trio.fail_after(self.timeout):
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                r = await client.post(self.url, content=body, headers=headers)
        if r.status_code >= 300:
            raise RuntimeError(f"webhook answered HTTP {r.status_code}")


class EmailChannel:
    name = "email"

    def __init__(self, cfg: MonitorConfig) -> None:
        self.cfg = cfg

    def message(self, alert: AlertRecord, kind: Kind) -> EmailMessage:
        msg = EmailMessage()
        prefix = {"firing": "", "repeat": "still firing: ", "resolved": "resolved: "}[kind]
        msg["Subject"] = f"[zmartd {alert.severity}] {prefix}{alert.title}"
        msg["From"] = self.cfg.email_from
        msg["To"] = ", ".join(self.cfg.email_to)
        msg.set_content(notice_text(alert, kind) + "\n")
        return msg

    def _send(self, msg: EmailMessage) -> None:
        cfg = self.cfg
        context = ssl.create_default_context()
        smtp: smtplib.SMTP
        if cfg.smtp_security == "tls":
            smtp = smtplib.SMTP_SSL(
                cfg.smtp_host, cfg.smtp_port, timeout=cfg.smtp_timeout, context=context
            )
        else:
            smtp = smtplib.SMTP(cfg.smtp_host, cfg.smtp_port, timeout=cfg.smtp_timeout)
        with smtp:
            if cfg.smtp_security == "starttls":
                smtp.starttls(context=context)
            if cfg.smtp_username:
                smtp.login(cfg.smtp_username, cfg.smtp_password.reveal())
            smtp.send_message(msg)

    async def deliver(self, alert: AlertRecord, kind: Kind, body: bytes) -> None:
        msg = self.message(alert, kind)
        # abandon_on_cancel: a stuck SMTP server must not block the actor's shutdown; the
        # socket timeout ends the thread itself
        await trio.to_thread.run_sync(self._send, msg, abandon_on_cancel=True)


def channels_for(cfg: MonitorConfig) -> list[Channel]:
    out: list[Channel] = []
    if cfg.webhook_url:
        out.append(
            WebhookChannel(
                cfg.webhook_url.reveal(), cfg.webhook_secret.reveal(), cfg.webhook_timeout
            )
        )
    if cfg.smtp_host:
        out.append(EmailChannel(cfg))
    return out
