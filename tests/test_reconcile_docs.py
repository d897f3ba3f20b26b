"""docs/stripe-migration.md's reconcile section runs as written (against the emulator and the fake Stripe,
through the console script), names every option, and the scheduled workflow reads reconcile's exit codes."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from conftest import Emulator
from fake_stripe import API_KEY, FakeStripe
from mini_engine import engine_for
from test_readme_commands import MIGRATION, _run_step, _workflow_step, blocks, section

from metronome_iac import reconcile
from metronome_iac.catalog import load_stack

SECTION = section(MIGRATION, "## 2b. Proving the parallel run with reconcile")


def test_every_command_runs_as_written(fresh_emulator: Emulator, tmp_path: Path) -> None:
    fake = FakeStripe()
    try:
        (catalog,) = [b for b in blocks(SECTION, "yaml") if b.startswith("# stacks/prod/catalog.yaml\n")]
        meter_id = yaml.safe_load(catalog)["billable_metrics"][0]["stripe_meter"]
        meter = fake.add_meter("input_tokens", value_key="tokens", dimensions=["model", "region"])
        fake.meters = {meter_id: {**meter, "id": meter_id}}  # the doc's meter id
        stack_dir = tmp_path / "stacks" / "prod"
        stack_dir.mkdir(parents=True)
        (stack_dir / "catalog.yaml").write_text(catalog)
        customer = {
            "name": "acme",
            "ingest_aliases": ["acme-prod"],
            "stripe_customer_id": fake.create_customer("acme"),
        }
        (stack_dir / "environment.yaml").write_text(yaml.safe_dump({"customers": [customer]}))
        engine_for(fresh_emulator, "prod").up(load_stack(stack_dir))
        # The Stripe meter events of the section before, as the file --events reads.
        (tmp_path / "stripe-events.jsonl").write_text(
            blocks(section(MIGRATION, "## 2. The parallel run: translating and checking events"), "jsonl")[0]
        )

        (sh,) = blocks(SECTION, "sh")
        commands = [line for line in sh.splitlines() if line.startswith(".venv/bin/metronome-iac ")]
        (tmp_path / ".venv").symlink_to(sys.prefix)  # the virtualenv `make up` made, as in a checkout
        assert len(commands) == 3 and any("--events" in c for c in commands), commands
        env = {
            **os.environ,
            "METRONOME_BEARER_TOKEN": fresh_emulator.token,
            "METRONOME_BASE_URL": fresh_emulator.base_url,
            "STRIPE_API_KEY": API_KEY,
            "STRIPE_API_BASE": fake.api_base,
        }
        for command in commands:
            result = subprocess.run(
                ["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
            )
            assert result.returncode == 0, f"{command}\n{result.stdout}{result.stderr}"
            if "--json" in command:
                report = json.loads(result.stdout)
                assert report["passed"] and report["checked"] == 7, report
            else:
                assert "all within tolerance" in result.stdout, result.stdout
        written = json.loads((stack_dir / "reconcile.json").read_text())
        assert written["passed"] and written["starting_on"] == "2026-01-01T00:00:00Z"
    finally:
        fake.stop()


def test_the_section_names_every_option() -> None:
    parser = argparse.ArgumentParser()
    reconcile.configure_parser(parser)
    options = {o for action in parser._actions for o in action.option_strings if o.startswith("--")}
    missing = [o for o in sorted(options - {"--help", "--stack", "--stacks-dir", "--base-url", "--project"})
               if not re.search(rf"{o}(?![\w-])", SECTION)]  # fmt: skip
    assert not missing, f"docs/stripe-migration.md's reconcile section does not mention {missing}"


@pytest.mark.parametrize(("code", "fails"), [(0, False), (2, False), (1, True)])
def test_nightly_reconcile_reads_the_exit_codes(code: int, fails: bool, tmp_path: Path) -> None:
    """drift.yml's reconcile job: 2 is reported by the next steps, 1 fails the job; the last 7 days."""
    script = _workflow_step("drift.yml", "reconcile-prod", "metronome-iac reconcile")
    today = datetime.now(timezone.utc)
    args = f"reconcile --stack prod --from {today - timedelta(days=7):%Y-%m-%d} --to {today:%Y-%m-%d}"
    step_code, outputs, calls = _run_step(script, tmp_path, {args: code})
    assert calls == [args] and (step_code != 0) == fails and outputs["code"] == str(code)


def test_what_cannot_be_checked_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """Bad days, no key, nothing to compare: one `error:` line each, exit 1 (never read as a difference)."""
    from conftest import REPO

    from metronome_iac.cli import main

    base = ["reconcile", "--stack", "prod", "--stacks-dir", str(REPO / "stacks")]
    with pytest.raises(SystemExit) as bad_command_line:  # argparse's exit, as 1 (cli._Parser)
        main([*base, "--from", "2026-01-01T10:00:00Z", "--to", "2026-01-02"])
    assert bad_command_line.value.code == 1 and "not a UTC midnight" in capsys.readouterr().err
    assert main([*base, "--from", "2026-01-02", "--to", "2026-01-01"]) == 1
    assert "must be after --from" in capsys.readouterr().err
    monkeypatch.setenv("METRONOME_BEARER_TOKEN", "t")
    assert main([*base, "--from", "2026-01-01", "--to", "2026-01-02"]) == 1
    assert capsys.readouterr().err.startswith("error: no Stripe key: pass --api-key or set STRIPE_API_KEY")
    # This repository's prod stack has no metric with a stripe_meter: nothing to compare, no call made.
    assert main([*base, "--from", "2026-01-01", "--to", "2026-01-02", "--api-key", "sk_test_x",
                 "--base-url", "http://127.0.0.1:9"]) == 1  # fmt: skip
    assert "nothing to reconcile in stack prod" in capsys.readouterr().err
