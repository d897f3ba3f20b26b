"""The reliability soak's smallest setting (benchmarks/soak.py --smallest): parallel creates through a fault
proxy, and a provider host killed mid-create, end with every declared object live exactly once."""

from __future__ import annotations

from conftest import run_script


def test_soak_smallest_setting_has_no_duplicate_and_loses_nothing() -> None:
    result = run_script("benchmarks/soak.py", "--smallest")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    lines = [line for line in result.stdout.splitlines() if line.startswith("faults ")]
    assert len(lines) == 2 and "killed host (orphan " in lines[1], out
    for line in lines:
        assert "duplicates 0, lost 0" in line, out
