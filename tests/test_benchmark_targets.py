"""Issue 13's call-count targets, held on the smallest size of the scale benchmark (benchmarks/scale.py:
100 resources, price edits on cards of 100 / 1,000 / 5,000 rates, through the real provider host against
the emulator, without latency). Counts only: the times and CPU figures in the same table depend on the
machine and are read, not held (`make bench` prints the full table)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO

SIZE = 100
HELD = [
    "first_creates",
    "apply_calls",
    "apply_package_calls",
    "apply_alert_calls",
    "state_bytes",
    "preview_calls",
    "preview_no_change",
    "refresh_calls",
    "add_product_calls",
    "add_customer_calls",
    "edit_calls_100",
    "edit_calls_1000",
    "edit_calls_5000",
]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench") / "scale.json"
    run = subprocess.run(
        [sys.executable, "benchmarks/scale.py", "--sizes", str(SIZE), "--latencies", "0", "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    print(run.stdout)
    return {"table": run.stdout, **json.loads(Path(out).read_text())}


@pytest.mark.parametrize("key", HELD)
def test_call_count_target(results: dict[str, Any], key: str) -> None:
    found = {t["key"]: t for t in results["targets"]}
    target = found[f"{key}@{SIZE}"]
    assert target["kind"] == "calls"
    assert target["met"], f"{target['name']}: {target['figure']}\n{results['table']}"


def test_the_table_shows_every_phase(results: dict[str, Any]) -> None:
    phases = {r["phase"] for r in results["rows"]}
    for phase in (
        "first create per kind",
        "apply",
        "no-change preview",
        "refresh",
        "add one product",
        "add one customer",
    ):
        assert phase in phases
    by_kind = {
        r["phase"]: r["extra"]["objects_by_kind"] for r in results["rows"] if "objects_by_kind" in r["extra"]
    }
    for phase in ("apply", "no-change preview", "refresh"):  # the stack has every kind, each in the table
        assert {"packages", "alerts", "customers", "contracts"} <= set(by_kind[phase]), by_kind
    for n in (100, 1000, 5000):
        assert {f"price edit {n}: {op}" for op in ("check", "diff", "update", "read")} <= phases
    for target in results["targets"]:  # every target printed with its verdict
        assert f"{'met' if target['met'] else 'NOT met'} {target['name']}" in " ".join(
            results["table"].split()
        )
