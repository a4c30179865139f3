"""The one client-IP resolver: who is on the other end of a connection.

Rate limits (HTTP, the fast path) and the WebSocket hub's per-address connection cap must
agree on who a client is, so all three call :func:`resolve` here and nothing else parses
``X-Forwarded-For``. The rule is that of a proxy-fix middleware (hypercorn's
``middleware/proxy_fix.py``, werkzeug's ``ProxyFix``), keyed on trusted *networks*
instead of a hop count:

* The TCP peer is the client, unless the peer is in ``http.trusted_proxies``.
* Only then is ``X-Forwarded-For`` read. Repeated header lines are one list, in order
  (RFC 9110 §5.3: a recipient may combine them with commas), so a client cannot hide
  hops by splitting the header.
* The list is walked from the right (the hop the trusted proxy appended) to the left;
  the first address that is *not* trusted is the client. Everything left of it was
  written by the client and proves nothing.
* When every hop is trusted, the left-most one is the client (it is where the chain of
  trusted proxies starts).
* A hop that is not an address (garbage, ``unknown``, an obfuscated RFC 7239 token) stops
  the walk at the last address we could read.
* A hop may carry a port (``1.2.3.4:5678``, ``[2001:db8::1]:443``), which is dropped, and
  an IPv4-mapped IPv6 address is its IPv4 address.

A leaf module: it imports nothing from zmartd, so any layer may use it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

__all__ = ["IpAddress", "IpNetwork", "parse_ip", "resolve", "resolve_asgi"]

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_HEADER = b"x-forwarded-for"


def parse_ip(text: str) -> IpAddress | None:
    """An address from a peer string or a forwarded hop, without its port; None if it is
    not one."""
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[::1]:443"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "1.2.3.4:5678"
        text = text.split(":", 1)[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _trusted(ip: IpAddress, networks: tuple[IpNetwork, ...]) -> bool:
    return any(ip.version == net.version and ip in net for net in networks)


def resolve(peer: str | None, forwarded_for: Iterable[str], trusted: Iterable[IpNetwork]) -> str:
    """The client's address as text (see the module docstring for the rule).

    ``forwarded_for`` holds every ``X-Forwarded-For`` header line of the request, in the
    order received. A peer that is not an address (a Unix socket path) is returned as
    it is; no peer at all is ``"unknown"``.
    """
    networks = tuple(trusted)
    current = parse_ip(peer) if peer else None
    if current is None:
        return peer or "unknown"
    if not _trusted(current, networks):
        return str(current)
    hops = [hop for line in forwarded_for for hop in line.split(",")]
    for hop in reversed(hops):
        ip = parse_ip(hop)
        if ip is None:
            break
        current = ip
        if not _trusted(ip, networks):
            break
    return str(current)


def resolve_asgi(
    peer: str | None, headers: Iterable[tuple[bytes, bytes]], trusted: Iterable[IpNetwork]
) -> str:
    """:func:`resolve` over raw header pairs, as an ASGI scope or trio-websocket carry
    them (names in any case)."""
    lines = [value.decode("latin-1") for name, value in headers if name.lower() == _HEADER]
    return resolve(peer, lines, trusted)
