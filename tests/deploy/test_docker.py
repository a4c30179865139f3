"""deploy/docker, checked statically: images cannot be pulled on the project's machines
(no registry but PyPI, Debian and npm), so the Dockerfile is parsed with the official
buildkit parser (the ``dockerfile`` package) and the compose file validated by Debian's
``docker-compose config``, which needs no engine."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import dockerfile
import pytest

DOCKER = Path(__file__).resolve().parents[2] / "deploy" / "docker"


def test_the_dockerfile_is_multi_stage_non_root_and_health_checked() -> None:
    commands = dockerfile.parse_file(str(DOCKER / "Dockerfile"))
    stages = [c for c in commands if c.cmd.upper() == "FROM"]
    assert len(stages) >= 2, "a build stage and a run stage"
    run_stage = commands[commands.index(stages[-1]) :]
    users = [c.value[0] for c in run_stage if c.cmd.upper() == "USER"]
    assert users and users[-1] not in ("root", "0"), users
    health = [c for c in run_stage if c.cmd.upper() == "HEALTHCHECK"]
    assert health and "/ready" in health[0].original
    copies = [c for c in run_stage if c.cmd.upper() == "COPY"]
    assert copies and all("--from=build" in c.flags for c in copies), "only built artifacts"
    entry = [c for c in run_stage if c.cmd.upper() == "ENTRYPOINT"]
    assert entry and entry[0].json and entry[0].value == ("zmartd",)


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="no docker-compose")
def test_the_compose_file_is_valid(tmp_path: Path) -> None:
    shutil.copy(DOCKER / "compose.yaml", tmp_path / "compose.yaml")
    for name in ("zmartd.toml", "nginx.conf"):
        (tmp_path / name).write_text("")
    (tmp_path / "secrets").mkdir()
    for name in ("postgres_password", "zmartd_database_dsn", "zmartd_chain_keypair"):
        (tmp_path / "secrets" / name).write_text("x")
    result = subprocess.run(
        ["docker-compose", "-f", "compose.yaml", "config"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rendered = result.stdout
    for service in ("postgres", "redis", "zmartd-a", "zmartd-b", "nginx"):
        assert f"  {service}:" in rendered
