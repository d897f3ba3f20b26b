"""The benchmark's targets are counts, not timings (API calls per resource, bytes of state per
resource), so CI runs it at full size: 200 products x 5 rates, metrics and cards, through the real
provider host against the emulator. It prints its figures and exits non-zero when a target is missed."""

from __future__ import annotations

from conftest import run_script


def test_benchmark_meets_its_targets() -> None:
    result = run_script("benchmarks/bench_providers.py")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    for figure in ("create:", "read:", "state:"):
        assert figure in result.stdout, out
    assert "NOT MET" not in result.stdout, out
