"""The scale benchmark's real-engine rows (benchmarks/scale_cli.py) on the smallest stack: 100 resources
through the Pulumi CLI, without latency. Counts and sizes only, never times: the rows are there, a
no-change preview and refresh change nothing (`--expect-no-changes`), skipping checkpoints makes the same
API calls, and what the state holds per resource stays small (the file backend writes all of it after
every step of an update: docs/benchmarks.md, "The real engine")."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import REPO

SIZE = 100
PHASES = (
    "pulumi up (CLI)",
    "pulumi preview (CLI)",
    "pulumi up --refresh (CLI)",
    "pulumi up, skip checkpoints",
)


def test_real_engine_rows(pulumi_cli: str, tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    run = subprocess.run(
        [sys.executable, "benchmarks/scale.py", "--latencies", "0", "--pulumi-cli", str(SIZE), "--cli-only"]
        + ["--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    rows = {r["phase"]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == set(PHASES), run.stdout
    up, skipping = rows["pulumi up (CLI)"], rows["pulumi up, skip checkpoints"]
    assert up["calls"] >= up["resources"], run.stdout  # every object created
    assert skipping["calls"] == up["calls"], run.stdout  # the same work, the state written once
    assert rows["pulumi up --refresh (CLI)"]["calls"] >= up["resources"], run.stdout  # every object read
    for row in rows.values():
        assert {"engine", "program", "provider host"} <= set(row["extra"]["cpu_by_role"]), row
    # Properties, Pulumi's own fields per resource, a three-frame stack trace, the provider by
    # reference: under 3.5 KB per resource (4.2 KB with the whole stack trace and the provider as a
    # secret). The rate card's rates are most of it.
    per_resource = up["extra"]["state_file_bytes"] / up["resources"]
    assert per_resource < 3500, run.stdout
