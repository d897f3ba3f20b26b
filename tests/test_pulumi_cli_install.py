"""scripts/pulumi-cli.sh: one pinned version for the CLI and the Python SDK, the build reused, and a Go
module the proxy does not serve named in one line."""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import REPO, free_port

SCRIPT = REPO / "scripts" / "pulumi-cli.sh"


def pinned() -> str:
    match = re.search(r'"pulumi==([0-9.]+)"', (REPO / "pyproject.toml").read_text())
    assert match, "pyproject.toml must pin pulumi exactly"
    return match.group(1)


def test_cli_and_python_sdk_are_pinned_to_one_version() -> None:
    version = pinned()
    go_mod = (REPO / "tools" / "pulumi" / "go.mod").read_text()
    for module in ("github.com/pulumi/pulumi/pkg/v3", "github.com/pulumi/pulumi/sdk/v3"):
        assert re.search(rf"^\s*{re.escape(module)} v{re.escape(version)}$", go_mod, re.M), module
    assert importlib.metadata.version("pulumi") == version


def test_a_second_run_builds_nothing(pulumi_cli: str) -> None:
    before = Path(pulumi_cli).stat().st_mtime_ns
    result = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == pulumi_cli
    assert "compiling" not in result.stderr and "downloading" not in result.stderr, result.stderr
    assert Path(pulumi_cli).stat().st_mtime_ns == before
    version = subprocess.run(
        [pulumi_cli, "version"], capture_output=True, text=True, timeout=60
    ).stdout.strip()
    if (Path(pulumi_cli).parent / ".metronome-iac-build").exists():  # built here, not a user's own CLI
        assert version == f"v{pinned()}"


class RefusingProxy(BaseHTTPRequestHandler):
    """A Go module proxy that serves nothing (as proxy.golang.org answers a module it will not serve)."""

    def do_GET(self) -> None:
        body = b"This module version is not available.\n"
        self.send_response(403)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.skipif(shutil.which("go") is None, reason="the build step needs go")
def test_a_module_the_proxy_does_not_serve_is_named_in_one_line(tmp_path: Path) -> None:
    proxy = ThreadingHTTPServer(("127.0.0.1", free_port()), RefusingProxy)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    go = Path(shutil.which("go") or "go").parent
    env = {
        "PATH": f"{go}:/usr/bin:/bin",  # no pulumi anywhere
        "HOME": str(tmp_path),
        "PULUMI_BIN_DIR": str(tmp_path / "bin"),
        "PULUMI_INSTALL_URL": f"http://127.0.0.1:{free_port()}/install.sh",  # refused at once
        "GOPROXY": f"http://127.0.0.1:{proxy.server_address[1]}",
        "GOMODCACHE": str(tmp_path / "modcache"),  # nothing downloaded yet
        "GOCACHE": str(tmp_path / "gocache"),
        "GOTOOLCHAIN": "local",
        "GOFLAGS": os.environ.get("GOFLAGS", ""),
    }
    try:
        result = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=300)
    finally:
        proxy.shutdown()
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert re.match(
        r"error: the Go module proxy \(http://127\.0\.0\.1:\d+\) does not serve \S+@v\S+, "
        rf"which the Pulumi CLI v{re.escape(pinned())} needs$",
        errors[0],
    ), errors[0]
    assert "official installer" in result.stderr  # tried first, in order
    assert not (tmp_path / "bin" / "pulumi").exists()
