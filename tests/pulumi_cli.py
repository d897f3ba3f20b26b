"""The real Pulumi engine in tests: a scratch project that is this repository as a user has it.

`PulumiProject` is a copy of the checkout (conftest's `checkout_copy`, this repository's virtualenv)
with its stack (the dev stack, or a generated one given as `stack_dir`); it keeps its state in a
private file backend with a passphrase secrets provider, and runs the CLI that `scripts/pulumi-cli.sh`
provides (the `pulumi_cli` fixture in conftest.py).

    project = PulumiProject(tmp_path, cli, emulator, stack="dev")
    project.run("up", "--yes")
    project.preview_steps()                     # {resource name: {ops}} from `pulumi preview --json`
    project.outputs()["billable_metrics"]["input_tokens"]
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from conftest import checkout_copy

from metronome_iac.catalog import load_stack

PASSPHRASE = "test-only-passphrase"


class PulumiProject:
    def __init__(
        self,
        root: Path,
        cli: str,
        emulator: Any,
        *,
        stack: str = "dev",
        stack_dir: Path | None = None,
        config: dict[str, str] | None = None,
        backend: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.cli, self.stack, self.emulator = cli, stack, emulator
        self.dir = checkout_copy(root / "project")
        if stack_dir is not None:
            shutil.copytree(stack_dir, self.dir / "stacks" / stack)
        state = root / "state"
        state.mkdir()
        self.env = {
            **os.environ,
            "PATH": f"{Path(cli).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "PULUMI_BACKEND_URL": backend or f"file://{state}",
            "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
            "PULUMI_SKIP_UPDATE_CHECKS": "true",
            "PULUMI_HOME": str(root / "pulumi-home"),
            "METRONOME_BEARER_TOKEN": emulator.token,
            **(env or {}),
        }
        self.run("stack", "init", stack)
        self.run("config", "set", "metronome:baseUrl", emulator.base_url)
        for key, value in (config or {}).items():
            self.run("config", "set", key, value)

    @property
    def catalog(self) -> Path:
        return self.dir / "stacks" / self.stack / "catalog.yaml"

    @property
    def environment(self) -> Path:
        return self.dir / "stacks" / self.stack / "environment.yaml"

    def run(
        self, *args: str, check: bool = True, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess:
        """`pulumi ARGS --stack STACK --non-interactive` in the project; raises with the output on failure."""
        cmd = [self.cli, *args, "--non-interactive"]
        if args[:2] != ("stack", "init"):
            cmd += ["--stack", self.stack]
        result = subprocess.run(
            cmd, cwd=self.dir, env=env or self.env, capture_output=True, text=True, timeout=900
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"pulumi {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        return result

    def make(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["make", "--no-print-directory", *args],
            cwd=self.dir,
            env=env or self.env,
            capture_output=True,
            text=True,
            timeout=900,
        )

    def preview_steps(self, *extra: str) -> dict[str, set[str]]:
        """{resource name: ops} of this project's resources from `pulumi preview --json` (a replacement
        is several steps: create-replacement, replace, delete-replaced)."""
        steps = json.loads(self.run("preview", "--json", *extra).stdout).get("steps", [])
        ops: dict[str, set[str]] = {}
        for step in steps:
            if "dynamic/metronome" in step["urn"]:
                ops.setdefault(step["urn"].rsplit("::", 1)[-1], set()).add(step["op"])
        # What the plan does to each resource: reading it (refresh) or leaving it (same) is not a change.
        changes = {name: found - {"same", "refresh"} for name, found in ops.items()}
        return {name: found for name, found in changes.items() if found}

    def declared(self) -> int:
        """How many resources the stack's files declare, the stack resource itself included (as the
        engine's summary counts them: "+ N created")."""
        stack = load_stack(self.dir / "stacks" / self.stack)
        catalog, env = stack.catalog, stack.environment
        entries = [
            *catalog.billable_metrics,
            *catalog.products,
            *catalog.rate_cards,
            *catalog.packages,
            *catalog.alerts,
            *catalog.notifications,
            *env.customers,
            *(alert for customer in env.customers for alert in customer.alerts or []),
            *env.contracts,
        ]
        return len(entries) + (env.stripe is not None) + 1

    def outputs(self) -> dict[str, Any]:
        return json.loads(self.run("stack", "output", "--json", "--show-secrets").stdout)

    def export(self) -> dict[str, Any]:
        return json.loads(self.run("stack", "export").stdout)

    def resources(self, kind: str) -> dict[str, dict[str, Any]]:
        """{resource name: state entry} of one resource kind ("BillableMetric", ...) in the stack's state."""
        out = {}
        for res in self.export()["deployment"].get("resources", []):
            if res["type"].endswith(f"metronome:{kind}"):
                out[res["urn"].rsplit("::", 1)[-1]] = res
        return out

    def edit(self, path: Path, old: str, new: str, count: int = 1) -> None:
        """Replace `old` (which must be there) by `new`, the first `count` times (-1: everywhere)."""
        text = path.read_text()
        assert old in text, f"{old!r} not in {path}"
        path.write_text(text.replace(old, new, count))
