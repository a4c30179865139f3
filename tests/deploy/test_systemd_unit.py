"""The systemd unit: the settings the daemon relies on, and systemd's own verifier."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "deploy" / "systemd" / "zmartd.service"


def _service() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNIT)
    return parser["Service"]


def test_the_unit_uses_notify_the_watchdog_and_hardening() -> None:
    s = _service()
    assert s["Type"] == "notify" and s["NotifyAccess"] == "main"
    assert int(s["WatchdogSec"]) > 0
    assert s["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert int(s["LimitNOFILE"]) >= 20_000  # 10k WebSockets and their peers
    assert s["ProtectSystem"] == "strict" and s["NoNewPrivileges"] == "true"
    assert s["ReadWritePaths"] == "/var/lib/zmartd" and s["User"] == "zmartd"
    # the drain ([daemon] shutdown_timeout, default 10 s) must finish before SIGKILL
    assert int(s["TimeoutStopSec"]) > 10


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    # the unit as installed, with ExecStart pointing at this checkout's zmartd
    zmartd = Path(sys.executable).with_name("zmartd")
    text = UNIT.read_text().replace("/opt/zmartd/venv/bin/zmartd", str(zmartd))
    unit = tmp_path / "zmartd.service"
    unit.write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
    )
    problems = [
        line for line in (result.stdout + result.stderr).splitlines() if "zmartd.service" in line
    ]
    assert result.returncode == 0 and not problems, result.stdout + result.stderr
