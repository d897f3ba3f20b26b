"""The README's main command where the Pulumi CLI cannot be had: the emulator starts, then one clear
line and a non-zero exit, with no hang and no trace."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from conftest import REPO, free_port


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
