"""The commands as a newcomer meets them (issue 14), each run the way a user runs it: a subprocess from a
shell, a reader that closes the pipe early, a terminal (a pseudo-terminal) for the progress display."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, checkout_copy, start_emulator

CLI = str(Path(sys.executable).parent / "metronome-iac")


def run(
    args: list[str], cwd: Path, env: dict[str, str] | None = None, **kwargs: Any
) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("METRONOME_", "STRIPE_"))}
    return subprocess.run([CLI, *args], cwd=cwd, env={**base, **(env or {})}, capture_output=True, text=True,
                          timeout=120, **kwargs)  # fmt: skip


def run_into_closed_pipe(args: list[str], cwd: Path, env: dict[str, str] | None = None,
                         stdin: Any = None) -> subprocess.CompletedProcess:  # fmt: skip
    """`metronome-iac ARGS | head -0`, deterministically: the reader has gone before the first write."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("METRONOME_", "STRIPE_"))}
        return subprocess.run([CLI, *args], cwd=cwd, env={**base, **(env or {})}, stdout=write_end,
                              stderr=subprocess.PIPE, stdin=stdin, text=True, timeout=120)  # fmt: skip
    finally:
        os.close(write_end)


def run_on_terminal(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str, str]:
    """The command with its stderr on a pseudo-terminal (as in a terminal window), stdout on a pipe:
    (exit code, stdout, what the terminal showed)."""
    controller, terminal = pty.openpty()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("METRONOME_", "STRIPE_"))}
    proc = subprocess.Popen([CLI, *args], cwd=cwd, env={**base, "TERM": "xterm", "COLUMNS": "120", **env},
                            stdout=subprocess.PIPE, stderr=terminal, stdin=subprocess.DEVNULL)  # fmt: skip
    os.close(terminal)
    shown = b""
    while True:
        ready, _, _ = select.select([controller], [], [], 60)
        if not ready:
            proc.kill()
            raise AssertionError(f"no terminal output within 60 s: {shown!r}")
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal closed: the command has ended
            break
        if not chunk:
            break
        shown += chunk
    out = proc.stdout.read().decode() if proc.stdout else ""
    os.close(controller)
    return proc.wait(timeout=60), out, shown.decode(errors="replace")


def stacks_copy(root: Path, *names: str) -> Path:
    for name in names:
        shutil.copytree(REPO / "stacks" / name, root / "stacks" / name)
    return root


# ------------------------------------------------------------------------- 2. a reader that stops early


def test_promote_into_a_closed_pipe_writes_its_file_and_exits_0(tmp_path: Path) -> None:
    stacks_copy(tmp_path, "staging", "prod")
    staging = tmp_path / "stacks/staging/catalog.yaml"
    staging.write_text(staging.read_text().replace("price: 300\n", "price: 280\n", 1))
    result = run_into_closed_pipe(["promote", "--from", "staging", "--to", "prod"], tmp_path)
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr, result.stderr
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "stacks/prod/catalog.yaml").read_bytes() == staging.read_bytes()


def test_events_translate_into_a_closed_pipe_translates_everything(tmp_path: Path) -> None:
    event = {
        "event_name": "input_tokens",
        "timestamp": 1767268800,
        "payload": {"stripe_customer_id": "cus_1"},
    }
    events = tmp_path / "stripe.jsonl"
    events.write_text("".join(json.dumps({**event, "identifier": f"e{i}"}) + "\n" for i in range(5000)))
    result = run_into_closed_pipe(["events", "translate", "--in", str(events)], tmp_path)
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr, result.stderr
    assert result.returncode == 0 and "translated 5000 event(s), 0 failed" in result.stderr, result.stderr


def test_drift_json_into_a_closed_pipe_keeps_its_exit_code(tmp_path: Path, emulator: Any) -> None:
    stacks_copy(tmp_path, "dev")  # nothing of it is live on this emulator: drift (2)
    args = ["drift", "--stack", "dev", "--json", "--base-url", emulator.base_url]
    result = run_into_closed_pipe(args, tmp_path, {"METRONOME_BEARER_TOKEN": emulator.token})
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr, result.stderr
    assert result.returncode == 2, result.stderr


# ------------------------------------------------------------------------- 3. progress on long work


def test_drift_shows_a_progress_bar_on_a_terminal_and_lines_elsewhere(tmp_path: Path, emulator: Any) -> None:
    stacks_copy(tmp_path, "dev")
    args = ["drift", "--stack", "dev", "--base-url", emulator.base_url]
    env = {"METRONOME_BEARER_TOKEN": emulator.token}
    code, out, shown = run_on_terminal(args, tmp_path, env)
    assert code == 2, shown
    assert "drift: checking" in shown and "catalog entries against the live account" in shown, shown
    assert "━" in shown or "\x1b[" in shown, shown  # drawn by rich: a bar, redrawn in place
    assert out.startswith("drift check: stack dev"), out  # the report itself stays on stdout

    piped = run(args, tmp_path, env)  # not a terminal: a plain line when the step starts and ends
    lines = [ln for ln in piped.stderr.splitlines() if ln.startswith("drift: ")]
    assert len(lines) == 2 and "\x1b[" not in piped.stderr, piped.stderr
    assert re.match(r"drift: checking (\d+) catalog entries against the live account \(\1\)\.\.\.$", lines[0])
    assert re.search(r": (\d+)/\1 done in [\d.]+ s$", lines[1]), lines[1]


def test_export_and_import_stripe_show_progress_on_a_terminal(tmp_path: Path, emulator: Any) -> None:
    from fake_stripe import API_KEY, FakeStripe

    code, _, shown = run_on_terminal(
        ["export", "--out", str(tmp_path / "out"), "--base-url", emulator.base_url],
        tmp_path,
        {"METRONOME_BEARER_TOKEN": emulator.token},
    )
    assert code == 0 and "export: listing the account's objects" in shown, shown

    fake = FakeStripe()
    try:
        meter = fake.add_meter("api_requests", formula="count")
        price = fake.add_price(fake.add_product("Requests")["id"], meter=meter["id"], unit_amount=2)
        fake.add_subscription(fake.create_customer("Acme"), [price["id"]])
        args = ["import-stripe", "--out", "imported", "--api-key", API_KEY, "--api-base", fake.api_base]
        code, _, shown = run_on_terminal(args, tmp_path, {})
    finally:
        fake.stop()
    assert code == 0 and "import-stripe: listing the Stripe account" in shown, shown


def test_drift_reads_several_objects_at_once(fresh_emulator: Any, tmp_path: Path) -> None:
    """The reads overlap: counted at the HTTP transport (how many requests were in flight at once)."""
    import threading

    import httpx
    import metronome

    from metronome_iac.catalog import load_stack
    from metronome_iac.drift import check_drift
    from metronome_iac.export import export_account, write_stack

    client = fresh_emulator.client()
    for i in range(12):
        client.v1.customers.create(name=f"Customer {i}", ingest_aliases=[f"c-{i}"])
    catalog, environment = export_account(client)
    write_stack(tmp_path / "live", catalog, environment, fresh_emulator.base_url)
    fresh_emulator.admin("POST", "config", json={"latency_ms": 50})

    class Counting(httpx.HTTPTransport):
        def __init__(self) -> None:
            super().__init__()
            self.lock, self.now, self.most = threading.Lock(), 0, 0

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            with self.lock:
                self.now += 1
                self.most = max(self.most, self.now)
            try:
                return super().handle_request(request)
            finally:
                with self.lock:
                    self.now -= 1

    transport = Counting()
    counted = metronome.Metronome(bearer_token=fresh_emulator.token, base_url=fresh_emulator.base_url,
                                  http_client=httpx.Client(transport=transport))  # fmt: skip
    report = check_drift(load_stack(tmp_path / "live"), counted, "metronome-iac")
    assert report.in_sync and report.matched == 12, report
    assert transport.most >= 4, f"at most {transport.most} request(s) in flight: the reads ran one by one"


def test_emulator_logs_one_line_per_request(tmp_path: Path) -> None:
    emu = start_emulator()
    try:
        emu.client().v1.customers.create(name="Logged", ingest_aliases=["logged"])
        emu.client(max_retries=0).v1.customers.retrieve(customer_id="00000000-0000-0000-0000-000000000000")
    except Exception:  # the 404 is the point: failures are logged too
        pass
    finally:
        emu.stop()
    emu.log.seek(0)
    log = emu.log.read().decode()
    assert re.search(r"^\S+ POST /v1/customers 200 \d+ ms$", log, re.M), log
    assert re.search(r"^\S+ GET /v1/customers/0{8}-\S+ 404 \d+ ms$", log, re.M), log


# -------------------------------------------------------------------------------- 4. one error per mistake


def drift_errors(tmp_path: Path, edit: Any) -> list[str]:
    stacks_copy(tmp_path, "dev")
    catalog = tmp_path / "stacks/dev/catalog.yaml"
    catalog.write_text(edit(catalog.read_text()))
    result = run(["drift", "--stack", "dev"], tmp_path)
    assert result.returncode == 1, result.stderr
    return [ln for ln in result.stderr.splitlines() if ln.startswith("  - ")]


def test_a_yaml_syntax_error_is_the_only_error(tmp_path: Path) -> None:
    errors = drift_errors(
        tmp_path, lambda t: t.replace("aggregation_type: SUM\n", "aggregation_type: SUM: x\n", 1)
    )
    assert len(errors) == 1 and "invalid YAML" in errors[0], errors  # not also "unknown rate card" x4


def test_a_duplicate_product_name_is_the_only_error(tmp_path: Path) -> None:
    errors = drift_errors(
        tmp_path, lambda t: t.replace("- name: prepaid_commit", "- name: input_tokens_product")
    )
    duplicate = [e for e in errors if "duplicate name: 'input_tokens_product'" in e]
    assert len(duplicate) == 1 and not [e for e in errors if "pricing_group_key" in e], errors


def test_a_misspelt_field_gets_a_suggestion(tmp_path: Path) -> None:
    errors = drift_errors(
        tmp_path, lambda t: t.replace("aggregation_key: tokens", "aggregaton_key: tokens", 1)
    )
    assert len(errors) == 1 and "field 'aggregaton_key'" in errors[0], errors
    assert "did you mean `aggregation_key`?" in errors[0], errors


# ------------------------------------------------------------------------------------------ 5. events


def test_events_check_of_nothing_is_not_a_pass(tmp_path: Path) -> None:
    stacks_copy(tmp_path, "dev")
    (tmp_path / "empty.jsonl").write_text("")
    result = run(["events", "check", "--stack", "dev", "--in", "empty.jsonl"], tmp_path)
    assert result.returncode == 1 and "checked 0 event(s)" not in result.stdout, result.stdout
    assert result.stderr.startswith("error: no events in empty.jsonl: nothing was checked"), result.stderr


def test_events_check_names_the_missing_property_a_filter_needs(tmp_path: Path) -> None:
    stacks_copy(tmp_path, "dev")
    properties = {"direction": "input", "model": "large", "tokens": 5}  # no region
    event = {"customer_id": "acme-dev", "event_type": "completion", "timestamp": "2026-01-01T00:00:00Z",
             "transaction_id": "t1", "properties": properties}  # fmt: skip
    (tmp_path / "e.jsonl").write_text(json.dumps(event) + "\n")
    result = run(["events", "check", "--stack", "dev", "--in", "e.jsonl"], tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "metric input_tokens: property `region` missing" in result.stdout, result.stdout


# --------------------------------------------------------------------------- 6. could not run is exit 1


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_drift_hint_for_dev_runs_as_printed(tmp_path: Path) -> None:
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path)}
    if shutil.which("pulumi", path=env["PATH"]):
        pytest.skip("a pulumi CLI is installed system-wide; the missing-CLI path cannot be exercised")
    checkout = checkout_copy(tmp_path / "repo")  # make must never touch the repository\'s own .venv
    result = subprocess.run(["make", "-s", "-C", str(checkout), "drift", "STACK=dev"], env=env,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    hint = result.stderr.split("check without the engine: ")[1].splitlines()[0].strip()
    assert hint == "METRONOME_BEARER_TOKEN=dev-emulator-token .venv/bin/metronome-iac drift --stack dev", hint

    emu = start_emulator(token="dev-emulator-token")  # make up's emulator, on a port of its own
    try:
        (tmp_path / ".venv").symlink_to(Path(sys.executable).parent.parent)
        stacks_copy(tmp_path, "dev")
        shell = {**env, "METRONOME_BASE_URL": emu.base_url}
        pasted = subprocess.run(["bash", "-c", hint], cwd=tmp_path, env=shell, capture_output=True, text=True,
                                timeout=120)  # fmt: skip
    finally:
        emu.stop()
    assert pasted.returncode == 2, pasted.stderr  # it ran: drift (nothing deployed here), not "no token"
    assert "in sync" in pasted.stdout or "missing live" in pasted.stdout, pasted.stdout


def test_drift_of_a_stack_that_does_not_exist_lists_the_stacks(tmp_path: Path) -> None:
    stacks_copy(tmp_path, "dev", "prod")
    result = run(["drift", "--stack", "nope"], tmp_path)
    assert result.returncode == 1, result.stderr
    assert "there is no stack nope" in result.stderr and "the stacks are: dev, prod" in result.stderr


# --------------------------------------------------------------------------------- 7. wording and output


def test_promote_check_shows_a_rename_as_a_rename(tmp_path: Path) -> None:
    stacks_copy(tmp_path, "staging", "prod")
    staging = tmp_path / "stacks/staging/catalog.yaml"
    text = staging.read_text().replace(
        "- name: input_tokens\n", "- name: prompt_tokens\n    previous_names: [input_tokens]\n", 1
    )
    staging.write_text(text.replace("billable_metric: input_tokens\n", "billable_metric: prompt_tokens\n"))
    result = run(["promote", "--from", "staging", "--to", "prod", "--check"], tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "~ billable metric 'input_tokens' -> 'prompt_tokens': renamed" in result.stdout, result.stdout
    assert "gains" not in result.stdout and "loses" not in result.stdout, result.stdout
    assert "1 to rename" in result.stdout, result.stdout


def test_export_writes_numbers_counts_and_stack_settings_as_a_user_would(
    tmp_path: Path, fresh_emulator: Any
) -> None:
    c = fresh_emulator.client()
    metric = c.v1.billable_metrics.create(
        name="Tokens",
        aggregation_type="SUM",
        aggregation_key="tokens",
        event_type_filter={"in_values": ["tokens"]},
        property_filters=[{"name": "tokens", "exists": True}],
    ).data
    product = c.v1.contracts.products.create(
        name="Tokens",
        type="USAGE",
        billable_metric_id=metric.id,
        quantity_conversion={"conversion_factor": 1000000, "operation": "DIVIDE"},
    ).data
    card = c.v1.contracts.rate_cards.create(name="Public").data
    c.v1.contracts.rate_cards.rates.add(rate_card_id=card.id, product_id=product.id, price=330, entitled=True,
                                        rate_type="FLAT", starting_at="2026-01-01T00:00:00Z")  # fmt: skip
    (tmp_path / "Pulumi.yaml").write_text("name: metronome-iac\nruntime: python\n")
    (tmp_path / "stacks").mkdir()
    env = {"METRONOME_BEARER_TOKEN": fresh_emulator.token}
    result = run(["export", "--out", "stacks/eu", "--base-url", fresh_emulator.base_url], tmp_path, env)
    assert result.returncode == 0, result.stderr
    catalog = (tmp_path / "stacks/eu/catalog.yaml").read_text()
    assert "price: 330\n" in catalog and "conversion_factor: 1000000\n" in catalog, catalog
    assert "1 metric, 1 product, 1 rate card, 0 customers, 0 contracts" in result.stdout, result.stdout
    settings = (tmp_path / "Pulumi.eu.yaml").read_text()
    assert f"metronome:baseUrl: {fresh_emulator.base_url}\n" in settings, settings
    assert "Pulumi.eu.yaml" in result.stdout, result.stdout

    # The stack drifts once its metric is archived: the product's reference says which object is gone.
    c.v1.billable_metrics.archive(id=metric.id)
    drift = run(["drift", "--stack", "eu"], tmp_path, env)  # the URL from Pulumi.eu.yaml, as written
    assert drift.returncode == 2, drift.stderr
    assert "desired the id of billable metric 'tokens', which is missing live" in drift.stdout, drift.stdout
    assert "<missing>" not in drift.stdout, drift.stdout


# ---------------------------------------------------------------------------------- 8. make's install step


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_says_what_it_installs_before_pip_runs(tmp_path: Path) -> None:
    """Against a stand-in python (records its calls): make's first line says what is happening, then pip
    runs without --quiet, so its own progress shows."""
    calls = tmp_path / "calls"
    fake = tmp_path / "python"
    fake.write_text(f"""#!/bin/bash
echo "python $*" >> {calls}
if [ "$1 $2" = "-m venv" ]; then mkdir -p "$3/bin"; cp "$0" "$3/bin/python"; fi
""")
    fake.chmod(0o755)
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    make = [
        "make",
        "-s",
        "-f",
        str(REPO / "Makefile"),
        "-C",
        str(tmp_path),
        ".venv/.installed",
        f"PYTHON={fake}",
    ]
    result = subprocess.run(make, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert first.startswith("Installing metronome-iac and its dependencies into .venv with pip"), (
        result.stdout
    )
    installs = [c for c in calls.read_text().splitlines() if "install -e" in c]
    assert installs and all("--quiet" not in c and " -q" not in c for c in installs), installs
