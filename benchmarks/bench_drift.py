"""Drift and export over many objects: API calls per object, and the time with the reads run one at a
time against CONCURRENCY at a time (`metronome_iac.progress`).

Against a fresh emulator holding OBJECTS live objects (customers, with a third of them as billable
metrics and products), exported as a stack (`export`), then checked (`drift`) with the emulator answering
each request after LATENCY_MS, as a real account over the network does:

    .venv/bin/python benchmarks/bench_drift.py [--objects 300] [--latency-ms 20]

Target: drift with CONCURRENCY workers in at most a third of the one-at-a-time time (the issue's
"~1/4"), with the same number of API calls (concurrency adds no request).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from conftest import start_emulator  # noqa: E402

from metronome_iac.catalog import load_stack  # noqa: E402
from metronome_iac.drift import check_drift  # noqa: E402
from metronome_iac.export import export_account, write_stack  # noqa: E402
from metronome_iac.progress import CONCURRENCY  # noqa: E402


def calls(emu: Any) -> int:
    return int(emu.admin("GET", "stats").json()["total"])


def populate(emu: Any, objects: int) -> None:
    client = emu.client()
    third = objects // 3
    for i in range(third):
        metric = client.v1.billable_metrics.create(
            name=f"metric {i}", aggregation_type="COUNT", event_type_filter={"in_values": [f"event_{i}"]}
        ).data
        client.v1.contracts.products.create(name=f"product {i}", type="USAGE", billable_metric_id=metric.id)
    for i in range(objects - 2 * third):
        client.v1.customers.create(name=f"customer {i}", ingest_aliases=[f"customer-{i}"])


def timed(emu: Any, work: Any) -> tuple[float, int, Any]:
    before, started = calls(emu), time.perf_counter()
    result = work()
    return time.perf_counter() - started, calls(emu) - before, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=300)
    parser.add_argument("--latency-ms", type=float, default=20)
    args = parser.parse_args()
    emu = start_emulator()
    try:
        populate(emu, args.objects)
        emu.admin("POST", "config", json={"latency_ms": args.latency_ms})
        client = emu.client()
        with tempfile.TemporaryDirectory() as scratch:
            stack_dir = Path(scratch) / "bench"
            rows = []
            for workers in (1, CONCURRENCY):
                seconds, n, (catalog, env) = timed(emu, lambda w=workers: export_account(client, workers=w))
                rows.append(("export", workers, seconds, n))
            write_stack(stack_dir, catalog, env, emu.base_url)
            stack = load_stack(stack_dir)
            for workers in (1, CONCURRENCY):
                seconds, n, report = timed(
                    emu, lambda w=workers: check_drift(stack, client, "bench", workers=w)
                )
                assert report.in_sync, report
                rows.append(("drift", workers, seconds, n))
    finally:
        emu.stop()
    print(f"{args.objects} live objects, {args.latency_ms:g} ms per request")
    print(f"{'command':8} {'workers':>7} {'seconds':>8} {'API calls':>10} {'calls/object':>13}")
    for command, workers, seconds, n in rows:
        print(f"{command:8} {workers:>7} {seconds:>8.2f} {n:>10} {n / args.objects:>13.2f}")
    for command in ("export", "drift"):
        one, many = [r for r in rows if r[0] == command]
        print(f"{command}: {CONCURRENCY} workers take {many[2] / one[2]:.2f} of the one-at-a-time time")
    drift_one, drift_many = [r for r in rows if r[0] == "drift"]
    ok = drift_many[2] <= drift_one[2] / 3 and drift_many[3] == drift_one[3]
    print("target (drift <= 1/3 of the time, same calls):", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
