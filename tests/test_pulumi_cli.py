"""The same end to end through the real Pulumi CLI (local file backend), when `pulumi` is on PATH.

A scratch project holds this repo's `__main__.py`, a Pulumi.yaml using this repo's virtualenv, and a
copy of the dev stack under a unique stack name; state lives in a temp file backend.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mini_engine import make_stack_dir, scratch_project

PULUMI = shutil.which("pulumi")


@pytest.fixture
def pulumi_cli() -> str:
    # Resolved before the emulator fixture: a skip starts nothing.
    if PULUMI is None:
        pytest.skip("pulumi CLI not on PATH: install it (https://www.pulumi.com/docs/install/) to run these")
    return PULUMI


@pytest.fixture
def project(pulumi_cli: str, tmp_path: Path, emulator: Any) -> Iterator[tuple[Path, dict[str, str], str]]:
    work = tmp_path / "project"
    env = scratch_project(work, tmp_path / "state", emulator.token)
    (work / "stacks").mkdir(parents=True)
    stack_dir = make_stack_dir(work / "stacks")
    stack = stack_dir.name
    pulumi(work, env, "stack", "init", stack)
    pulumi(work, env, "config", "set", "metronome:baseUrl", emulator.base_url, "--stack", stack)
    yield work, env, stack
    subprocess.run([PULUMI, "stack", "rm", "--yes", "--force", "--stack", stack], cwd=work, env=env,
                   capture_output=True, timeout=300)  # fmt: skip


def pulumi(work: Path, env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    assert PULUMI is not None
    result = subprocess.run(
        [PULUMI, *args, "--non-interactive"], cwd=work, env=env, capture_output=True, text=True, timeout=600
    )
    if check and result.returncode != 0:
        raise AssertionError(f"pulumi {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def _preview_ops(work: Path, env: dict[str, str], stack: str, *extra: str) -> dict[str, set[str]]:
    """{resource name: ops} from `pulumi preview --json` (a replacement is several steps:
    create-replacement, replace, delete-replaced)."""
    out = pulumi(work, env, "preview", "--json", "--stack", stack, *extra).stdout
    ops: dict[str, set[str]] = {}
    for step in json.loads(out).get("steps", []):
        if "dynamic/metronome" in step["urn"]:
            ops.setdefault(step["urn"].rsplit("::", 1)[-1], set()).add(step["op"])
    return ops


def test_up_preview_drift_destroy(project: tuple[Path, dict[str, str], str], emulator: Any) -> None:
    work, env, stack = project
    pulumi(work, env, "up", "--yes", "--skip-preview", "--stack", stack)
    outputs = json.loads(pulumi(work, env, "stack", "output", "--json", "--stack", stack).stdout)
    metric_id = outputs["billable_metrics"]["input_tokens"]

    # Nothing to do right after an up.
    pulumi(work, env, "preview", "--expect-no-changes", "--stack", stack)

    # A group-key change previews as a replacement of the metric.
    catalog = work / "stacks" / stack / "catalog.yaml"
    original = catalog.read_text()
    catalog.write_text(
        original.replace(
            "      - {name: region, exists: true}\n    group_keys: [[model, region]]",
            "      - {name: region, exists: true}\n      - {name: tier, exists: true}\n"
            "    group_keys: [[model, region], [model, region, tier]]",
            1,
        )
    )
    ops = _preview_ops(work, env, stack)
    assert ops["input_tokens"] & {"replace", "create-replacement"}, ops
    assert "replace" not in ops.get("output_tokens", set()), ops  # only the edited metric is replaced
    catalog.write_text(original)

    # An out-of-band edit: a refreshing preview expecting no changes fails.
    client = emulator.client()
    client.v1.billable_metrics.update(billable_metric_id=metric_id, name="edited by hand")
    result = pulumi(work, env, "preview", "--refresh", "--expect-no-changes", "--stack", stack, check=False)
    assert result.returncode != 0, result.stdout

    # destroy archives everything.
    pulumi(work, env, "destroy", "--yes", "--skip-preview", "--stack", stack)
    assert client.v1.billable_metrics.retrieve(billable_metric_id=metric_id).data.archived_at is not None
