"""README, "Big accounts": with `PULUMI_SKIP_CHECKPOINTS=true` the engine writes the state only at the
end, so a `pulumi up` killed midway records nothing it did. The README tells users that the next `up`
(after `pulumi cancel` clears the dead run's lock) takes over what the killed run created instead of
creating it twice. This kills the real engine and its provider host in the middle of the dev stack's
first `up` and holds that: one object per identity, one contract per customer, then nothing to do."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import psutil
from conftest import start_emulator
from pulumi_cli import PulumiProject

KILL_AFTER_CALLS = 12  # metrics, products and a rate card made; customers and contracts not yet


def identities(items: list) -> Counter:
    return Counter((item.custom_fields or {}).get("iac_identity", "").split("#", 1)[0] for item in items)


def test_killed_up_without_checkpoints_is_taken_over_by_the_next(pulumi_cli: str, tmp_path: Path) -> None:
    emulator = start_emulator("--stripe-connected")
    try:
        project = PulumiProject(tmp_path, pulumi_cli, emulator)
        cmd = [pulumi_cli, "up", "--yes", "--skip-preview", "--non-interactive", "--stack", project.stack]
        with (tmp_path / "killed-up.log").open("w") as log:
            up = psutil.Popen(
                cmd,
                cwd=project.dir,
                env={**project.env, "PULUMI_SKIP_CHECKPOINTS": "true"},
                stdout=log,
                stderr=log,
            )
            deadline = time.monotonic() + 300
            while emulator.admin("GET", "stats").json()["total"] < KILL_AFTER_CALLS:
                assert up.poll() is None, (tmp_path / "killed-up.log").read_text()
                assert time.monotonic() < deadline, "the up made too few calls to be killed midway"
                time.sleep(0.02)
            processes = [up, *up.children(recursive=True)]
            for process in processes:
                process.kill()  # SIGKILL: no chance to write the state
            psutil.wait_procs(processes, timeout=30)
        assert project.export()["deployment"].get("resources", []) == [], "the killed run wrote a state"
        client = emulator.client()
        made = sum(identities(list(client.v1.billable_metrics.list())).values())
        assert made > 0, "killed before anything was created: nothing to take over"

        project.run("cancel", "--yes")  # the dead run's lock
        again = project.run("up", "--yes", "--skip-preview")
        assert f"{project.declared()} created" in again.stdout, again.stdout[-3000:]

        counts = {
            "metrics": identities(list(client.v1.billable_metrics.list())),
            "products": identities(list(client.v1.contracts.products.list())),
            "rate cards": identities(list(client.v1.contracts.rate_cards.list())),
            "customers": identities(list(client.v1.customers.list())),
        }
        for kind, counted in counts.items():
            assert max(counted.values()) == 1, (
                f"{kind}: duplicates {[k for k, n in counted.items() if n > 1]}"
            )
        live_contracts = sum(
            len(client.v2.contracts.list(customer_id=res["id"]).data)
            for res in project.resources("Customer").values()
        )
        assert live_contracts == len(project.resources("Contract")), "lost or duplicated contracts"
        project.run("preview", "--expect-no-changes")
    finally:
        emulator.stop()
