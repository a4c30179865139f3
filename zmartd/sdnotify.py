"""systemd's notify protocol (``sd_notify``), spoken directly.

With ``Type=notify`` systemd passes ``NOTIFY_SOCKET`` (a Unix datagram socket; a leading
``@`` means the abstract namespace) and waits for ``READY=1`` before it calls the unit
started -- so ``systemctl start`` returns when ``/ready`` would answer 200, and units
ordered after zmartd start only then. The daemon sends ``RELOADING=1``/``READY=1`` around a
SIGHUP reload, ``STOPPING=1`` when it drains, and ``WATCHDOG=1`` every half of
``WatchdogSec`` while its supervisor runs (``WATCHDOG_USEC``/``WATCHDOG_PID``): a process
whose event loop hangs stops pinging and systemd restarts it.

The protocol is one datagram of ``KEY=VALUE`` lines; no library is needed (the maintained
Python bindings wrap libsystemd, which this daemon would then need at run time). Without
``NOTIFY_SOCKET`` every call is a no-op. A leaf module: it imports nothing from zmartd.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping

__all__ = ["Notifier"]


class Notifier:
    """Sends notifications to the socket named by ``NOTIFY_SOCKET`` (if any)."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        path = env.get("NOTIFY_SOCKET", "")
        self.address: str | None = None
        if path.startswith("@"):
            self.address = "\0" + path[1:]
        elif path.startswith("/"):
            self.address = path
        self.watchdog_interval: float | None = None
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            # ping at half the timeout, as sd_watchdog_enabled(3) recommends
            self.watchdog_interval = int(usec) / 1e6 / 2

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *fields: str) -> bool:
        """Send ``fields`` (``"READY=1"``, ``"STATUS=..."``) as one datagram; False when
        there is no socket or it cannot be reached (never raises: systemd going away
        must not take the daemon with it)."""
        if self.address is None:
            return False
        data = "\n".join(fields).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.connect(self.address)
                s.sendall(data)
        except OSError:
            return False
        return True

    def ready(self, status: str) -> bool:
        return self.notify("READY=1", f"STATUS={status}")

    def reloading(self) -> bool:
        # MONOTONIC_USEC lets systemd (Type=notify-reload, v253+) match this to the reload
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}", "STATUS=reloading")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1", "STATUS=draining")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")
