"""Shared fixtures: a real emulator process over HTTP, and the official client pointed at it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parent.parent
TOKEN = "test-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Emulator:
    base_url: str
    token: str
    process: subprocess.Popen
    log: Any = None  # its stderr: the request log, a line per request

    def client(self, **kwargs):
        import metronome

        return metronome.Metronome(bearer_token=self.token, base_url=self.base_url, **kwargs)

    def admin(self, method: str, path: str, **kwargs) -> httpx.Response:
        """Call the emulator's reserved /_emulator/ endpoints."""
        return httpx.request(method, f"{self.base_url}/_emulator/{path}", timeout=10, **kwargs)

    def fill(self, per_kind: int, prefix: str = "hand") -> list[str]:
        """Put `per_kind` metrics, products, rate cards and customers in the account by hand (untagged,
        as an account moving to this tool has them); returns the customers' ids."""
        from concurrent.futures import ThreadPoolExecutor

        client = self.client()

        def make(i: int) -> str:
            client.v1.billable_metrics.create(name=f"{prefix}-m{i}", aggregation_type="COUNT")
            client.v1.contracts.products.create(name=f"{prefix}-p{i}", type="FIXED")
            client.v1.contracts.rate_cards.create(name=f"{prefix}-r{i}")
            return client.v1.customers.create(name=f"{prefix}-c{i}").data.id

        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(make, range(per_kind)))

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def run_script(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """A repository script (e.g. "benchmarks/soak.py", "--smallest") run with this Python, output captured."""
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)


def set_stripe_config(emulator: Emulator, customer_id: str, stripe_customer_id: str, method: str) -> str:
    """A customer's Stripe billing provider configuration set by hand (as in the dashboard); its id."""
    data = (
        emulator.client()
        .v1.customers.set_billing_configurations(
            data=[
                {
                    "customer_id": customer_id,
                    "billing_provider": "stripe",
                    "delivery_method": "direct_to_billing_provider",
                    "configuration": {
                        "stripe_customer_id": stripe_customer_id,
                        "stripe_collection_method": method,
                    },
                }
            ]
        )
        .data
    )
    return data[0].id


def wait_until_serving(proc: subprocess.Popen, base_url: str, what: str, seconds: float = 30) -> None:
    """Return once the emulator `proc` answers its health check; fail if it exits or takes too long."""
    deadline = time.monotonic() + seconds
    while True:
        assert proc.poll() is None, f"{what} exited with {proc.returncode}"
        try:
            if httpx.get(f"{base_url}/_emulator/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"{what} did not serve within {seconds:g} s"
        time.sleep(0.1)


def start_emulator(*extra: str, db: str = ":memory:", token: str | None = TOKEN) -> Emulator:
    port = free_port()
    cmd = [sys.executable, "-m", "metronome_iac", "emulator", "--port", str(port), "--db", db]
    if token:
        cmd += ["--token", token]
    # Its request log (a line per request) goes to a file: a pipe nobody reads would fill and stall it.
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen([*cmd, *extra], cwd=REPO, stdout=subprocess.DEVNULL, stderr=log)
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"emulator exited: {log.read().decode()}")
        try:
            if httpx.get(f"{base_url}/_emulator/health", timeout=1).status_code == 200:
                return Emulator(base_url, token or "any-token", proc, log)
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("emulator did not start within 30 s")


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    """One emulator for the session; tests keep apart by using unique names."""
    emu = start_emulator()
    yield emu
    emu.stop()


@pytest.fixture
def fresh_emulator() -> Iterator[Emulator]:
    """An emulator of the test's own, for tests that count requests or inject faults."""
    emu = start_emulator()
    yield emu
    emu.stop()


@pytest.fixture(autouse=True)
def _no_real_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests must never reach a real account through a developer's environment.
    for var in ("METRONOME_BEARER_TOKEN", "METRONOME_BASE_URL", "STRIPE_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    os.environ.setdefault("PULUMI_PROJECT", "metronome-iac")


@pytest.fixture(scope="session")
def pulumi_cli() -> str:
    """The Pulumi CLI, as scripts/pulumi-cli.sh provides it (on PATH, the official installer, or built
    with Go). Where it cannot be had, the real-engine tests fail if `go` is here (they must run wherever
    Go exists) and skip otherwise."""
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "pulumi-cli.sh")], capture_output=True, text=True, timeout=3600
    )
    if result.returncode == 0:
        return result.stdout.strip().splitlines()[-1]
    reason = (result.stderr.strip().splitlines() or ["scripts/pulumi-cli.sh failed"])[-1]
    if shutil.which("go"):
        pytest.fail(f"the Pulumi CLI could not be had although go is on PATH: {reason}")
    pytest.skip(f"no Pulumi CLI and no go to build one: {reason}")


def checkout_copy(root: Path) -> Path:
    """A copy of the repository as a fresh clone has it (tracked and new files, no ignored ones), with
    the virtualenv `make` made: its stamp stays newer than the copied pyproject.toml, so `make` targets
    in the copy do not set out to rebuild it."""
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    for name in filter(None, files):
        if (REPO / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name)
    venv = Path(sys.prefix)
    (root / ".venv").symlink_to(venv)
    stamp = venv / ".installed"
    if stamp.exists():
        older = stamp.stat().st_mtime - 1
        os.utime(root / "pyproject.toml", (older, older))
    return root
