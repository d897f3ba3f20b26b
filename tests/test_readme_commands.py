"""The commands README.md and docs/stripe-migration.md show, run as shown, so the docs cannot silently rot.

Each test reads its command lines, files and expected output out of the markdown itself: change a flag,
a file name or an example there and a test here runs the new text.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from conftest import REPO, checkout_copy, free_port, wait_until_serving

README = (REPO / "README.md").read_text(encoding="utf-8")
MIGRATION = (REPO / "docs" / "stripe-migration.md").read_text(encoding="utf-8")
BIN = Path(sys.executable).parent  # the virtualenv running the tests holds the console script


def section(markdown: str, heading: str) -> str:
    """The text under `heading` (a `## ...` line) up to the next heading of that level."""
    start = markdown.index(heading + "\n")
    end = markdown.find("\n## ", start + len(heading))
    return markdown[start : end if end != -1 else None]


def blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, re.S)


def run_shell(line: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    for var in ("METRONOME_BEARER_TOKEN", "METRONOME_BASE_URL", "STRIPE_API_KEY"):
        env.pop(var, None)
    return subprocess.run(["bash", "-c", line], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


# ------------------------------------------------------------------------------------- the emulator


def test_readme_emulator_command_and_knobs(tmp_path: Path) -> None:
    text = section(README, "## The emulator alone")
    (sh,) = blocks(text, "sh")
    lines = [ln for ln in sh.splitlines() if ln.strip()]
    setup = [ln for ln in lines if ln.startswith("mkdir")]
    (command,) = [ln for ln in lines if "metronome-iac emulator" in ln]
    (faults,) = [ln for ln in lines if ln.startswith("#") and "faults for testing:" in ln]
    for line in setup:  # as shown: the state file's directory first
        assert run_shell(line, tmp_path).returncode == 0, line

    # `[--token TOKEN] [--stripe-connected]`: the options, filled in; the comment's fault knobs added.
    argv = shlex.split(command.split("#")[0].replace("[", "").replace("]", ""))
    assert argv[:2] == [".venv/bin/metronome-iac", "emulator"], argv
    argv[argv.index("TOKEN")] = "readme-token"
    port = free_port()
    argv[argv.index("--port") + 1] = str(port)
    argv += shlex.split(faults.split("faults for testing:")[1])  # "--latency-ms 50 --fail-rate 0.1 --seed 1"
    assert {"--db", "--token", "--stripe-connected", "--latency-ms", "--fail-rate", "--seed"} <= set(argv)
    db = Path(argv[argv.index("--db") + 1])

    proc = subprocess.Popen([str(BIN / "metronome-iac"), *argv[1:]], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(proc, base, "the README's emulator command")
        assert (tmp_path / db).exists(), f"no state file at --db {db}"

        # Every knob the README lists, with its method and the JSON body shown, answers 200 without a token.
        knobs = re.findall(r"`((?:GET|POST)(?:\|(?:GET|POST))*) ([a-z-]+)`\s*(?:\((`\{.*?\}`))?", text)
        assert {name for _, name, _ in knobs} == {"health", "stats", "reset", "config", "billing-providers"}
        from metronome_iac.emulator.routers.admin import router

        served = {route.path.removeprefix("/_emulator/") for route in router.routes}
        assert served == {name for _, name, _ in knobs}, "README's knob list differs from routers/admin.py"
        for methods, name, body in knobs:
            for method in methods.split("|"):
                payload = json.loads(body.strip("`")) if body and method == "POST" else None
                if name == "config" and method == "POST":
                    assert payload and {"fail_rate", "latency_ms", "seed"} <= set(payload), body
                    payload = {**payload, "fail_rate": 0}  # the README's example, minus the flakiness
                response = httpx.request(method, f"{base}/_emulator/{name}", json=payload, timeout=10)
                assert response.status_code == 200, (method, name, response.text)
                if name == "config":  # GET and POST both answer with the knobs the README shows, seed too
                    assert set(response.json()) == set(json.loads(body.strip("`"))), (method, response.text)
                    if method == "POST":
                        assert response.json() == payload, response.text

        # "with --token, that token only"
        api = f"{base}/v1/customers"
        assert httpx.get(api, headers={"Authorization": "Bearer readme-token"}, timeout=10).status_code == 200
        assert httpx.get(api, headers={"Authorization": "Bearer anything"}, timeout=10).status_code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# ------------------------------------------------------------------------ events (stripe-migration.md)


EXAMPLE = "docs/examples/stripe-migration"  # the doc's example, committed as files


def _events_workdir(tmp_path: Path) -> tuple[list[str], list[str]]:
    """The doc's example (stack, meter events, alias file) laid out in `tmp_path` as in the repository,
    with the virtualenv; returns the doc's commands (each with the variables its block sets) and the
    expected events. The files under docs/examples/ are exactly what the doc shows."""
    text = section(MIGRATION, "## 2. The parallel run: translating and checking events")
    for block in blocks(text, "yaml"):
        match = re.match(r"# (docs/examples/\S+)\n", block)
        assert match, f"a yaml example without its file (`# {EXAMPLE}/stacks/<stack>/<file>`) first:\n{block}"
        assert (REPO / match.group(1)).read_text(encoding="utf-8") == block, f"{match.group(1)} differs"
    stripe_events, expected = blocks(text, "jsonl")
    assert (REPO / EXAMPLE / "stripe-events.jsonl").read_text(encoding="utf-8") == stripe_events
    (sh,) = blocks(text, "sh")
    variables, commands = [], []
    for line in sh.splitlines():
        if line.startswith("# ") and ":" in line:  # "# $ex/aliases.yaml: {cus_acme: acme-prod}"
            name, content = line[2:].split(":", 1)
            assert name.strip() == "$ex/aliases.yaml", line
            assert (REPO / EXAMPLE / "aliases.yaml").read_text(encoding="utf-8") == content.strip() + "\n"
        elif re.match(r"^[a-z_]+=\S+", line):
            variables.append(line)
        elif line.strip():
            commands.append("\n".join([*variables, line]))
    shutil.copytree(REPO / EXAMPLE, tmp_path / EXAMPLE)
    (tmp_path / ".venv").symlink_to(BIN.parent)
    return commands, expected.splitlines()


def _same_event(got: str, want: str) -> None:
    got_event, want_event = json.loads(got), json.loads(want)
    if want_event.get("transaction_id") == "stripe-<hash of the event>":
        assert re.fullmatch(r"stripe-[0-9a-f]{16,}", got_event.get("transaction_id", "")), got_event
        got_event["transaction_id"] = want_event["transaction_id"]
    assert got_event == want_event


def test_migration_doc_events_examples_run_as_shown(tmp_path: Path) -> None:
    commands, expected = _events_workdir(tmp_path)
    assert [c.splitlines()[-1].split()[:3] for c in commands] == [
        [".venv/bin/metronome-iac", "events", "translate"],
        [".venv/bin/metronome-iac", "events", "translate"],
        [".venv/bin/metronome-iac", "events", "check"],
    ], commands
    outputs = []
    for command in commands:
        result = run_shell(command, tmp_path)
        assert result.returncode == 0, f"{command}\n{result.stdout}{result.stderr}"
        outputs.append(result.stdout)

    # The first writes metronome-events.jsonl, the second prints: both are the doc's expected events.
    # (Run from the repository root as written, with the doc's own example stack, not this repository's.)
    for produced in ((tmp_path / "metronome-events.jsonl").read_text(), outputs[1]):
        lines = produced.splitlines()
        assert len(lines) == len(expected), produced
        for got, want in zip(lines, expected, strict=True):
            _same_event(got, want)
    assert "0 with problems" in outputs[2]


def test_migration_doc_events_exit_codes(tmp_path: Path) -> None:
    """The exit code convention: 2 ran and found something (a line failed, a problem), 1 could not run."""
    _events_workdir(tmp_path)
    unknown = json.dumps({"event_name": "input_tokens", "timestamp": 1767268800,
                          "payload": {"stripe_customer_id": "cus_nobody", "tokens": "1"}})  # fmt: skip
    (tmp_path / "bad.jsonl").write_text(unknown + "\n")
    stacks = f"--stacks-dir {EXAMPLE}/stacks"
    result = run_shell(f"metronome-iac events translate {stacks} --stack prod --in bad.jsonl", tmp_path)
    assert result.returncode == 2 and "cus_nobody" in result.stderr, result.stderr
    assert f"{EXAMPLE}/stacks/prod/environment.yaml" in result.stderr, result.stderr  # where to add the alias
    result = run_shell(f"metronome-iac events translate {stacks} --stack nope --in bad.jsonl", tmp_path)
    assert result.returncode == 1 and result.stderr.startswith("error: --stack nope: there is no stack"), (
        result.stderr
    )

    (tmp_path / "wrong.jsonl").write_text(json.dumps({"customer_id": "acme-prod", "event_type": "completion",
        "timestamp": "2026-01-01T00:00:00Z", "transaction_id": "t1", "properties": {}}) + "\n")  # fmt: skip
    result = run_shell(f"metronome-iac events check {stacks} --stack prod --in wrong.jsonl", tmp_path)
    assert result.returncode == 2 and "unknown_event_type" in result.stdout, result.stdout
    assert "accept: input_tokens, output_tokens" in result.stdout, result.stdout
    result = run_shell(f"metronome-iac events check {stacks} --stack nope --in wrong.jsonl", tmp_path)
    assert result.returncode == 1, result.stderr


def test_migration_doc_says_the_repo_stacks_do_not_match_the_example(tmp_path: Path) -> None:
    """The doc warns that this repository's prod stack reports the example events as unknown_event_type,
    and as unknown_customer (prod has no `acme-prod` alias); against dev only unknown_event_type."""
    _events_workdir(tmp_path)
    shutil.copytree(REPO / "stacks", tmp_path / "stacks")
    note = " ".join(MIGRATION[MIGRATION.index("(This repository's example stacks") :].split(")\n")[0].split())
    assert "`events check --stack prod`" in note, note
    assert "`unknown_event_type`" in note and "`unknown_customer`" in note, note
    translate = f"metronome-iac events translate --aliases {EXAMPLE}/aliases.yaml --value-key tokens"
    translated = run_shell(f"{translate} --in {EXAMPLE}/stripe-events.jsonl > m.jsonl", tmp_path)
    assert translated.returncode == 0, translated.stderr
    result = run_shell("metronome-iac events check --stack prod --in m.jsonl", tmp_path)
    problems = set(re.findall(r"^  (\w+): \d+", result.stdout, re.M))
    assert result.returncode == 2 and problems == {"unknown_event_type", "unknown_customer"}, result.stdout
    result = run_shell("metronome-iac events check --stack dev --in m.jsonl", tmp_path)
    problems = set(re.findall(r"^  (\w+): \d+", result.stdout, re.M))
    assert result.returncode == 2 and problems == {"unknown_event_type"}, result.stdout


def test_migration_doc_says_translate_warns_without_stack_or_aliases(tmp_path: Path) -> None:
    """Without --stack/--aliases the Stripe id is the customer_id and values stay strings: said on stderr."""
    _events_workdir(tmp_path)
    text = " ".join(section(MIGRATION, "## 2. The parallel run: translating and checking events").split())
    assert "With neither `--stack` nor `--aliases`" in text and "`warning:`" in text
    result = run_shell(f"metronome-iac events translate --in {EXAMPLE}/stripe-events.jsonl", tmp_path)
    assert result.returncode == 0, result.stderr
    (warning,) = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert "customers are not mapped" in warning and "values are not converted" in warning


# --------------------------------------------------------------------------------------------- promote


def test_readme_promote_check_and_promote(tmp_path: Path) -> None:
    text = section(README, "## Day to day")
    check = re.search(
        r"`(\.venv/bin/metronome-iac promote --from staging --to prod)`.*?With `(--check)`.*?exits (\d)",
        text,
        re.S,
    )
    assert check, "README's Promote paragraph no longer shows `promote --from staging --to prod` and --check"
    assert check.group(3) == "2", "README: promote --check exits 2 on lag (the exit code convention)"
    promote = check.group(1)
    (tmp_path / ".venv").symlink_to(BIN.parent)
    for stack in ("staging", "prod"):
        shutil.copytree(REPO / "stacks" / stack, tmp_path / "stacks" / stack)
    prod_env = (tmp_path / "stacks/prod/environment.yaml").read_text()
    staging = tmp_path / "stacks/staging/catalog.yaml"
    staging.write_text(staging.read_text().replace("price: 300\n", "price: 280\n", 1))

    lagging = run_shell(f"{promote} --check", tmp_path)
    assert lagging.returncode == 2, lagging.stdout + lagging.stderr
    assert "price: 300 -> 280" in lagging.stdout and "prod lags staging" in lagging.stderr
    assert "280" not in (tmp_path / "stacks/prod/catalog.yaml").read_text()  # --check writes nothing

    done = run_shell(promote, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "stacks/prod/catalog.yaml").read_bytes() == staging.read_bytes()
    assert (tmp_path / "stacks/prod/environment.yaml").read_text() == prod_env  # never moves
    assert run_shell(f"{promote} --check", tmp_path).returncode == 0


def test_readme_export_paragraph_names_every_export_option() -> None:
    """`metronome-iac export --help` and README's "Adopt what exists" paragraph list the same options."""
    import argparse

    from metronome_iac import export

    parser = argparse.ArgumentParser()
    export.configure_parser(parser)
    options = {o for action in parser._actions for o in action.option_strings if o.startswith("--")}
    text = section(README, "## Day to day")
    paragraph = text[text.index("**Adopt what exists.**") :].split("\n\n")[0]
    missing = [o for o in sorted(options - {"--help"}) if not re.search(rf"{o}(?![\w-])", paragraph)]
    assert not missing, f"README's export paragraph does not mention {missing}"
    assert "`--stripe-account acct_...`" in paragraph and "expected_account_id" in paragraph


def test_drift_usage_error_is_not_read_as_drift(tmp_path: Path) -> None:
    """README: drift exits 2 only on drift; a bad command line is an error (1), as the workflow reads it."""
    result = run_shell("metronome-iac drift", tmp_path)
    assert result.returncode == 1 and "--stack" in result.stderr, result.stderr


# ------------------------------------------------------------------------------------------ exit codes

WORKFLOWS = REPO / ".github" / "workflows"


def test_exit_codes_are_documented_once_and_alike() -> None:
    """README's table and cli.py's docstring state the same convention: 0 ok, 1 could not run, 2 attention."""
    import metronome_iac.cli as cli

    rows = dict(re.findall(r"^\| ([012]) \| (.+) \|$", section(README, "## Exit codes"), re.M))
    assert set(rows) == {"0", "1", "2"}
    assert (cli.EXIT_OK, cli.EXIT_ERROR, cli.EXIT_ATTENTION) == (0, 1, 2)
    doc = " ".join((cli.__doc__ or "").split())
    for attention in ("`drift`", "`events check`", "`events translate`", "`promote --check`"):
        assert attention in rows["2"] and attention in doc, attention
    for refusal in ("`--out` already holds stack files", "no API key or token", "unreachable"):
        assert refusal in rows["1"] and refusal in doc, refusal
    # The per-command docs no longer carry their own, different codes.
    assert "2 no key" not in MIGRATION and "exits 1 on any problem" not in MIGRATION


def _workflow_step(workflow: str, job: str, marker: str) -> str:
    import yaml

    steps = yaml.safe_load((WORKFLOWS / workflow).read_text())["jobs"][job]["steps"]
    (run,) = [s["run"] for s in steps if marker in s.get("run", "")]
    return run


def _run_step(script: str, tmp_path: Path, codes: dict[str, int]) -> tuple[int, dict[str, str], list[str]]:
    """Run a workflow step as Actions does (bash -e) with a stand-in metronome-iac that exits with
    codes[first words of its command line]; returns (step exit code, $GITHUB_OUTPUT, calls)."""
    fake = tmp_path / ".venv" / "bin" / "metronome-iac"
    fake.parent.mkdir(parents=True, exist_ok=True)
    calls = tmp_path / "calls"
    lines = [f'echo "$*" >> {shlex.quote(str(calls))}', 'echo "report of $*"']
    for args, code in codes.items():
        lines.append(f'case "$*" in "{args}") exit {code};; esac')
    fake.write_text("#!/bin/bash\n" + "\n".join(lines) + "\nexit 0\n")
    fake.chmod(0o755)
    output = tmp_path / "github_output"
    output.write_text("")
    calls.write_text("")
    env = {**os.environ, "GITHUB_OUTPUT": str(output)}
    result = subprocess.run(["bash", "-e", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    outputs = dict(ln.split("=", 1) for ln in output.read_text().splitlines() if "=" in ln)
    return result.returncode, outputs, calls.read_text().splitlines()


CHECK = "promote --from staging --to prod --check"


@pytest.mark.parametrize(("check_code", "lagging", "fails"), [(0, "false", False), (2, "true", False),
                                                             (1, None, True)])  # fmt: skip
def test_promotion_workflow_reads_the_exit_codes(
    check_code: int, lagging: str | None, fails: bool, tmp_path: Path
) -> None:
    """deploy-staging: lag (2) opens the promotion PR, an error (1) fails the job instead of promoting."""
    script = _workflow_step("deploy-staging.yml", "promotion-pr", "--check")
    code, outputs, calls = _run_step(script, tmp_path, {CHECK: check_code})
    assert (code != 0) == fails, (code, outputs, calls)
    assert outputs.get("lagging") == lagging
    promoted = "promote --from staging --to prod" in calls
    assert promoted == (lagging == "true"), calls


@pytest.mark.parametrize(("drift_code", "fails"), [(0, False), (2, False), (1, True), (130, True)])
def test_drift_workflow_reads_the_exit_codes(drift_code: int, fails: bool, tmp_path: Path) -> None:
    """drift.yml: 2 is reported as an issue by later steps, anything but 0 and 2 fails the job."""
    script = _workflow_step("drift.yml", "drift-prod", "metronome-iac drift")
    code, outputs, _ = _run_step(script, tmp_path, {"drift --stack prod": drift_code})
    assert (code != 0) == fails and outputs["code"] == str(drift_code)


@pytest.mark.parametrize(("check_code", "fails"), [(0, False), (2, False), (1, True)])
def test_preview_workflow_lag_is_informational_errors_are_not(
    check_code: int, fails: bool, tmp_path: Path
) -> None:
    script = _workflow_step("preview.yml", "checks", "--check")
    code, _, _ = _run_step(script, tmp_path, {CHECK: check_code})
    assert (code != 0) == fails


# ------------------------------------------------------------------------------------------ Makefile


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_drift_without_pulumi_says_so_in_one_line(tmp_path: Path) -> None:
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path)}
    if shutil.which("pulumi", path=env["PATH"]):
        pytest.skip("a pulumi CLI is installed system-wide; the missing-CLI path cannot be exercised")
    # The CLI check comes before the virtualenv prerequisite: nothing is installed or started.
    checkout = checkout_copy(tmp_path / "repo")  # make must never touch the repository\'s own .venv
    result = subprocess.run(["make", "-s", "-C", str(checkout), "drift", "STACK=prod"], env=env,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode != 0
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith("error: the Pulumi CLI is not installed"), errors[0]
    hint = [ln for ln in result.stderr.splitlines() if "check without the engine" in ln]
    assert hint and "metronome-iac drift --stack prod" in hint[0], result.stderr  # the engine-free way


@pytest.mark.skipif(shutil.which("make") is None or shutil.which("ps") is None, reason="needs make and ps")
def test_make_stop_stops_only_the_emulator(tmp_path: Path) -> None:
    pid_file = tmp_path / ".emulator" / "emulator.pid"
    pid_file.parent.mkdir()
    stop = ["make", "-s", "-f", str(REPO / "Makefile"), "-C", str(tmp_path), "stop"]
    # A narrow terminal (CI runners set COLUMNS=80) must not cut the command line that ps reports.
    narrow = {**os.environ, "COLUMNS": "20"}

    result = subprocess.run(stop, env=narrow, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "no emulator" in result.stdout, result.stdout + result.stderr

    # A stale pid file naming some other process: that process is left alone.
    other = subprocess.Popen(["sleep", "60"])
    try:
        pid_file.write_text(f"{other.pid}\n")
        result = subprocess.run(stop, env=narrow, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and other.poll() is None, result.stdout + result.stderr
        assert not pid_file.exists()
    finally:
        other.kill()
        other.wait()

    port = free_port()
    emulator = subprocess.Popen([str(BIN / "metronome-iac"), "emulator", "--port", str(port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        pid_file.write_text(f"{emulator.pid}\n")
        result = subprocess.run(stop, env=narrow, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and "stopped the emulator" in result.stdout, result.stdout
        assert emulator.wait(timeout=10) is not None
    finally:
        if emulator.poll() is None:
            emulator.send_signal(signal.SIGKILL)
            emulator.wait()


# ---------------------------------------------------------------------------------------------- layout


def test_readme_layout_table_matches_the_tree() -> None:
    rows = re.findall(r"^\| (`[^|]+`(?:, `[^|]+`)*) \| (.+) \|$", section(README, "## Layout"), re.M)
    assert rows
    for paths, what in rows:
        for path in re.findall(r"`([^`]+)`", paths):
            concrete = path.replace("<stack>", "dev")
            assert (REPO / concrete).exists(), f"README layout names {path}, which does not exist"
        # Module lists: each named file exists, and each module in the folder is named.
        folder = re.findall(r"`([^`]+)/`", paths)
        if folder and folder[0] in ("providers", "metronome_iac"):
            named = set(re.findall(r"`([a-z_]+\.py|[a-z_]+/)`", what))
            on_disk = {p.name for p in (REPO / folder[0]).glob("*.py")} - {"__init__.py", "__main__.py"}
            on_disk |= {p.name + "/" for p in (REPO / folder[0]).iterdir() if (p / "__init__.py").exists()}
            assert named == on_disk, f"README layout, {folder[0]}/: {sorted(named)} vs {sorted(on_disk)}"
