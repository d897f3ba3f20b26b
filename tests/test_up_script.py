"""The README's main command where the Pulumi CLI cannot be had: the emulator starts, then one clear
line and a non-zero exit, with no hang and no trace."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from conftest import REPO, checkout_copy, free_port


@pytest.mark.skipif(shutil.which("curl") is None, reason="scripts/up.sh needs curl")
def test_up_without_pulumi_cli_says_so_in_one_line(tmp_path: Path) -> None:
    port = free_port()
    state = tmp_path / "emulator"
    env = {
        "PATH": "/usr/bin:/bin",  # no ~/.pulumi/bin, no pulumi, no go
        "HOME": str(tmp_path),
        "VENV": sys.prefix,  # the virtualenv running the tests holds metronome-iac
        "EMULATOR_PORT": str(port),
        "EMULATOR_STATE_DIR": str(state),
        "PULUMI_INSTALL_URL": f"http://127.0.0.1:{free_port()}/install.sh",  # refused at once
    }
    if shutil.which("pulumi", path=env["PATH"]):
        pytest.skip("a pulumi CLI is installed system-wide; the missing-CLI path cannot be exercised")
    try:
        result = subprocess.run(
            ["bash", "scripts/up.sh"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode != 0
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, result.stderr
        assert errors[0].startswith("error: the Pulumi CLI is not installed"), errors[0]
        assert "no `go` to build it" in errors[0], errors[0]  # go is not on this PATH
        assert "Traceback" not in result.stdout + result.stderr
        # The emulator was started in the background before the CLI check.
        assert httpx.get(f"http://127.0.0.1:{port}/_emulator/health", timeout=5).status_code == 200
    finally:
        pid_file = state / "emulator.pid"
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), signal.SIGTERM)


def test_make_up_brings_the_dev_stack_up_and_again_changes_nothing(tmp_path: Path, pulumi_cli: str) -> None:
    """The README's main command in a fresh copy of the repository: the emulator starts, the Pulumi CLI
    is found (built earlier by scripts/pulumi-cli.sh), the dev stack comes up and the run ends with the
    stack's outputs; a second `make up` has nothing to do."""
    checkout = checkout_copy(tmp_path / "repo")
    port = free_port()  # make up's own port (8787) may be taken on a developer's machine
    config = checkout / "Pulumi.dev.yaml"
    config.write_text(config.read_text().replace("127.0.0.1:8787", f"127.0.0.1:{port}"))
    env = {
        **os.environ,
        "EMULATOR_PORT": str(port),
        "PULUMI_HOME": str(tmp_path / "pulumi-home"),
        "PULUMI_SKIP_UPDATE_CHECKS": "true",
    }
    env.pop("METRONOME_BEARER_TOKEN", None)

    def make(target: str) -> subprocess.CompletedProcess:
        run = subprocess.run
        return run(["make", target], cwd=checkout, env=env, capture_output=True, text=True, timeout=900)

    try:
        first = make("up")
        assert first.returncode == 0, first.stdout + first.stderr
        assert "Outputs:" in first.stdout and "contracts" in first.stdout, first.stdout
        declared = re.search(r"\+ (\d+) created", first.stdout)
        assert declared, first.stdout
        again = make("up")
        assert again.returncode == 0, again.stdout + again.stderr
        assert f"{declared.group(1)} unchanged" in again.stdout, again.stdout
        assert "already running" in again.stdout, again.stdout
        assert "compiling" not in again.stderr, again.stderr  # nothing built the second time
    finally:
        make("stop")
