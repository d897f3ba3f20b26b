"""The scale benchmark drives the provider host as the Pulumi engine does (benchmarks/scale_stack.py
`drive`): the step generator's part of each resource (Check) one at a time, as soon as the resource's
dependencies are done; the step executor's part (Create) at once with every other in flight, not 4 at a
time (the host is what serves 4). The apply's ratio to its ideal is only as true as this pattern."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

import pytest
from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))

from scale_stack import Node, drive  # noqa: E402

CREATE_S = 0.05


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.serial_running = self.serial_peak = 0
        self.creating = self.creating_peak = 0
        self.events: list[tuple[str, str]] = []  # (what, node) in time order

    def serial(self, node: Node, ids: dict[str, str]) -> dict[str, Any]:
        with self.lock:
            self.serial_running += 1
            self.serial_peak = max(self.serial_peak, self.serial_running)
            self.events.append(("check", node.name))
        assert set(ids) == set(node.deps), (node.name, ids)
        time.sleep(0.001)
        with self.lock:
            self.serial_running -= 1
        return {"checked": node.name}

    def concurrent(self, node: Node, checked: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        assert checked == {"checked": node.name}
        with self.lock:
            self.creating += 1
            self.creating_peak = max(self.creating_peak, self.creating)
        time.sleep(CREATE_S)
        with self.lock:
            self.creating -= 1
            self.events.append(("created", node.name))
        return f"id-{node.name}", {"name": node.name}


def nodes(independent: int) -> list[Node]:
    out = [Node("metric", None, (), lambda ids: {})]
    out.append(Node("product", None, ("metric",), lambda ids: {}))
    out += [Node(f"customer{i}", None, (), lambda ids: {}) for i in range(independent)]
    out.append(Node("contract", None, ("customer0", "product"), lambda ids: {}))
    return out


def test_checks_go_one_at_a_time_and_creates_all_at_once() -> None:
    recorder = Recorder()
    started = time.monotonic()
    results, peak = drive(nodes(12), recorder.serial, recorder.concurrent)
    elapsed = time.monotonic() - started
    assert recorder.serial_peak == 1
    assert set(results) == {"metric", "product", "contract", *(f"customer{i}" for i in range(12))}
    assert results["contract"] == ("id-contract", {"name": "contract"})
    # Not capped at the host's 4: the 13 resources ready at the start are all in flight together.
    assert peak == recorder.creating_peak >= 10, (peak, recorder.creating_peak)
    # Three dependency levels (metric, product, contract) of one create each, not 15 creates in turn.
    assert elapsed < 8 * CREATE_S, elapsed


def test_a_resource_is_checked_only_after_its_dependencies_are_created() -> None:
    recorder = Recorder()
    drive(nodes(3), recorder.serial, recorder.concurrent)
    order = recorder.events
    for node, deps in (("product", ["metric"]), ("contract", ["customer0", "product"])):
        checked_at = order.index(("check", node))
        for dep in deps:
            assert order.index(("created", dep)) < checked_at, order


def test_without_a_concurrent_part_the_serial_step_gives_the_result() -> None:
    def serial(node: Node, ids: dict[str, str]) -> tuple[str, dict[str, Any]]:
        return f"id-{node.name}", {"deps": sorted(ids)}

    results, peak = drive(nodes(2), serial)
    assert results["contract"] == ("id-contract", {"deps": ["customer0", "product"]})
    assert peak == 0


def test_a_dependency_outside_the_stack_is_an_error_not_a_hang() -> None:
    broken = [Node("contract", None, ("customer-not-declared",), lambda ids: {})]
    with pytest.raises(RuntimeError, match="not in the stack"):
        drive(broken, Recorder().serial, Recorder().concurrent)


def test_the_floor_run_makes_one_call_per_object_through_the_host(tmp_path: Any) -> None:
    """The apply's floor (benchmarks/scale_floor.py): the same resources through the real host, with a
    provider that makes one metronome-sdk call per create and nothing else."""
    from conftest import start_emulator
    from scale import Bench
    from scale_report import FLOOR_PHASE
    from scale_stack import write_stack

    stack = write_stack(tmp_path / "floor", 100)
    emulator = start_emulator()
    try:
        bench = Bench(emulator, stack, 100, latency_ms=5)
        bench.floor()
        customers = list(emulator.client().v1.customers.list())  # every page
    finally:
        emulator.stop()
    [row] = bench.rows
    assert row.phase == FLOOR_PHASE
    assert row.calls == row.resources == len(bench.nodes), row
    assert row.ratio is not None and row.ratio > 1, row
    assert len(customers) == len(bench.nodes)
