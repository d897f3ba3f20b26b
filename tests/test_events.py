"""Stripe meter events -> Metronome events, and checking events against a stack's catalog."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from metronome_iac import events
from metronome_iac.cli import main

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "stripe-migration.md"
ALIASES = {"cus_acme": "acme-prod"}


def doc_examples() -> list[list[dict]]:
    """The ```jsonl blocks of docs/stripe-migration.md: [stripe events, metronome events]."""
    blocks = re.findall(r"```jsonl\n(.*?)```", DOC.read_text(), flags=re.S)
    return [[json.loads(line) for line in block.splitlines() if line.strip()] for block in blocks]


STRIPE_EVENTS, METRONOME_EVENTS = doc_examples()


@pytest.fixture
def stack_dir(tmp_path: Path) -> Path:
    stack = tmp_path / "stacks" / "dev"
    stack.mkdir(parents=True)
    metrics = [
        {
            "name": name,
            "aggregation_type": "SUM",
            "aggregation_key": "tokens",
            "event_type_filter": {"in_values": [name]},
            "property_filters": [
                {"name": "tokens", "exists": True},
                {"name": "model", "exists": True},
                {"name": "region", "exists": True},
            ],
            "group_keys": [["model", "region"]],
        }
        for name in ("input_tokens", "output_tokens")
    ]
    (stack / "catalog.yaml").write_text(yaml.safe_dump({"billable_metrics": metrics}))
    env = {"customers": [{"name": "acme", "ingest_aliases": ["acme-prod"], "stripe_customer_id": "cus_acme"}]}
    (stack / "environment.yaml").write_text(yaml.safe_dump(env))
    return stack


def test_doc_examples_translate_to_metronome_form() -> None:
    assert len(STRIPE_EVENTS) == 2
    translated = [events.translate_event(e, ALIASES, {"tokens"}) for e in STRIPE_EVENTS]
    first, second = translated
    assert first == METRONOME_EVENTS[0]
    # The second has no Stripe identifier: its id is a hash of the event (the doc shows a placeholder).
    assert second["transaction_id"] == events.event_hash(STRIPE_EVENTS[1])
    assert second["transaction_id"].startswith("stripe-")
    assert {**second, "transaction_id": "x"} == {**METRONOME_EVENTS[1], "transaction_id": "x"}
    assert first["properties"]["tokens"] == 1200 and isinstance(first["properties"]["tokens"], int)
    assert first["timestamp"] == "2026-01-01T12:00:00Z"


def test_replay_gives_same_transaction_ids() -> None:
    once = [events.translate_event(e, ALIASES, {"tokens"})["transaction_id"] for e in STRIPE_EVENTS]
    copies = [json.loads(json.dumps(e)) for e in STRIPE_EVENTS]
    again = [events.translate_event(e, ALIASES)["transaction_id"] for e in copies]
    assert once == again
    # A different event (other timestamp) gets a different id.
    moved = {**STRIPE_EVENTS[1], "timestamp": STRIPE_EVENTS[1]["timestamp"] + 1}
    assert events.translate_event(moved, ALIASES)["transaction_id"] != once[1]


@pytest.mark.parametrize(
    ("mutate", "code", "needle"),
    [
        (lambda e: e.pop("event_name"), "missing_event_name", "event_name"),
        (lambda e: e["payload"].pop("stripe_customer_id"), "missing_customer", "payload.stripe_customer_id"),
        (lambda e: e["payload"].update(stripe_customer_id="cus_nobody"), "unknown_customer", "cus_nobody"),
        (lambda e: e.update(timestamp="yesterday"), "bad_timestamp", "'yesterday'"),
        (lambda e: e.pop("timestamp"), "missing_timestamp", "timestamp"),
        (lambda e: e["payload"].update(tokens="12k"), "non_numeric_value", "payload.tokens: '12k'"),
        (lambda e: e.update(payload="x"), "missing_payload", "payload"),
    ],
)
def test_bad_stripe_events_give_precise_reasons(mutate, code: str, needle: str) -> None:
    event = json.loads(json.dumps(STRIPE_EVENTS[0]))
    mutate(event)
    with pytest.raises(events.EventError) as info:
        events.translate_event(event, ALIASES, {"tokens"})
    assert info.value.code == code
    assert needle in info.value.reason


def test_translate_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    aliases = tmp_path / "aliases.yaml"
    aliases.write_text(yaml.safe_dump(ALIASES))
    src = tmp_path / "in.jsonl"
    bad = {**STRIPE_EVENTS[0], "payload": {**STRIPE_EVENTS[0]["payload"], "stripe_customer_id": "cus_x"}}
    src.write_text("\n".join(json.dumps(e) for e in [*STRIPE_EVENTS, bad]) + "\n")
    args = ["--aliases", str(aliases), "--in", str(src), "--numeric-key", "tokens"]
    code = main(["events", "translate", *args])
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 2  # ran; one line failed and needs attention
    assert [e["transaction_id"] for e in lines][0] == "req_7f3a-in"
    assert len(lines) == 2
    assert "line 3: unknown_customer" in err
    assert f"add `cus_x: <ingest alias>` to {aliases}" in err  # where to add it


def test_translate_cli_stdin_with_stack(stack_dir: Path) -> None:
    stdin = "".join(json.dumps(e) + "\n" for e in STRIPE_EVENTS)
    proc = subprocess.run(
        [sys.executable, "-m", "metronome_iac", "events", "translate", "--stack", "dev"],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=stack_dir.parent.parent,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    # numeric keys come from the catalog's SUM metrics, aliases from environment.yaml
    assert lines[0] == METRONOME_EVENTS[0]
    assert lines[1]["properties"]["tokens"] == 350


def test_check_good_events_pass(stack_dir: Path) -> None:
    view = events.load_stack_view(stack_dir)
    translated = [json.dumps(events.translate_event(e, ALIASES, {"tokens"})) for e in STRIPE_EVENTS]
    report = events.check_events(translated, view)
    assert report.ok and report.total == 2, report.counts


def test_check_counts_problems_and_exit_codes(stack_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = events.translate_event(STRIPE_EVENTS[0], ALIASES, {"tokens"})
    bad_lines = [
        {**good, "event_type": "images"},  # unknown_event_type
        {**good, "customer_id": "nobody"},  # unknown_customer
        {**good, "properties": {"model": "large", "region": "us", "tokens": "12"}},  # non_numeric_value
        {**good, "properties": {"model": "large", "region": "us", "tokens": "x"}},  # non_numeric_value
        {**good, "properties": {"model": "large", "tokens": 3}},  # property filter region fails
        {**good, "timestamp": "1767268800"},  # bad_timestamp
    ]
    path = stack_dir / "events.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in [good, *bad_lines]) + "\nnot json\n")
    report = events.check_events(path.read_text().splitlines(), events.load_stack_view(stack_dir))
    assert report.total == 8 and report.bad_events == 7
    assert report.counts == {
        "unknown_event_type": 1,
        "unknown_customer": 1,
        "non_numeric_value": 2,
        "property_filters_unmatched": 1,
        "bad_timestamp": 1,
        "invalid_json": 1,
    }
    assert "line 4" in report.examples["non_numeric_value"] and "'12'" in report.examples["non_numeric_value"]
    assert "region" in report.examples["property_filters_unmatched"]

    stacks = str(stack_dir.parent)
    assert main(["events", "check", "--stack", "dev", "--stacks-dir", stacks, "--in", str(path)]) == 2
    out = capsys.readouterr().out
    assert "non_numeric_value: 2" in out and "7 with problems" in out

    good_path = stack_dir / "good.jsonl"
    good_path.write_text(json.dumps(good) + "\n")
    assert main(["events", "check", "--stack", "dev", "--stacks-dir", stacks, "--in", str(good_path)]) == 0
    assert main(["events", "check", "--stack", "nope", "--stacks-dir", stacks, "--in", str(good_path)]) == 1
    assert "error: --stack nope: there is no stack nope" in capsys.readouterr().err
    missing = str(stack_dir / "missing.jsonl")
    assert main(["events", "check", "--stack", "dev", "--stacks-dir", stacks, "--in", missing]) == 1
    assert capsys.readouterr().err.startswith(f"error: cannot open {missing}")


def test_messages_say_where_to_fix_it(stack_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown alias names the file to add it to; an unknown event type lists the accepted ones."""
    view = events.load_stack_view(stack_dir)
    good = events.translate_event(STRIPE_EVENTS[0], ALIASES, {"tokens"})
    (problem,) = events.check_event({**good, "event_type": "images"}, view)
    assert problem.code == "unknown_event_type"
    assert "stack dev" in problem.reason and "accept: input_tokens, output_tokens" in problem.reason
    (problem,) = events.check_event({**good, "customer_id": "nobody"}, view)
    env_file = stack_dir / "environment.yaml"
    assert f"add it to the ingest_aliases of its customer in {env_file}" in problem.reason

    src = stack_dir / "stripe.jsonl"
    payload = {**STRIPE_EVENTS[0]["payload"], "stripe_customer_id": "cus_new"}
    unknown = {**STRIPE_EVENTS[0], "payload": payload}
    src.write_text(json.dumps(unknown) + "\n")
    stacks = str(stack_dir.parent)
    assert main(["events", "translate", "--stack", "dev", "--stacks-dir", stacks, "--in", str(src)]) == 2
    err = capsys.readouterr().err
    assert f"give its customer in {env_file} `stripe_customer_id: cus_new`" in err, err


def test_group_key_missing_is_reported(stack_dir: Path) -> None:
    view = events.load_stack_view(stack_dir)
    view.metrics[0].property_filters = []  # so only the group key check catches the missing region
    event = events.translate_event(STRIPE_EVENTS[0], ALIASES, {"tokens"})
    event["properties"].pop("region")
    problems = events.check_event(event, view)
    assert [p.code for p in problems] == ["missing_group_key"]
    assert "region" in problems[0].reason


def test_check_reads_stdin(stack_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good = events.translate_event(STRIPE_EVENTS[1], ALIASES, {"tokens"})
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(good) + "\n"))
    assert main(["events", "check", "--stack", "dev", "--stacks-dir", str(stack_dir.parent)]) == 0


def test_custom_customer_and_value_keys() -> None:
    event = {
        "event_name": "gpu_seconds",
        "timestamp": 1767225600,
        "payload": {"acct": "cus_acme", "secs": "7.5"},
    }
    out = events.translate_event(event, ALIASES, customer_key="acct", value_key="secs")
    assert out["customer_id"] == "acme-prod" and out["properties"] == {"secs": 7.5}
    assert out["timestamp"] == "2026-01-01T00:00:00Z"


def test_translate_without_stack_or_aliases_warns(
    stack_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Unmapped customers and string values are kept (a quick look needs no stack) but said, once."""
    src = stack_dir / "stripe.jsonl"
    src.write_text("".join(json.dumps(e) + "\n" for e in STRIPE_EVENTS))
    assert main(["events", "translate", "--in", str(src)]) == 0
    captured = capsys.readouterr()
    out = [json.loads(line) for line in captured.out.splitlines()]
    assert out[0]["customer_id"] == "cus_acme" and out[0]["properties"]["tokens"] == "1200"
    warnings = [line for line in captured.err.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1, captured.err
    assert "--stack" in warnings[0] and "--aliases" in warnings[0], warnings[0]
    assert "customers are not mapped" in warnings[0] and "values are not converted" in warnings[0]

    stacks = str(stack_dir.parent)
    assert main(["events", "translate", "--stack", "dev", "--stacks-dir", stacks, "--in", str(src)]) == 0
    aliases = stack_dir / "aliases.yaml"
    aliases.write_text(yaml.safe_dump(ALIASES))
    assert main(["events", "translate", "--aliases", str(aliases), "--in", str(src)]) == 0
    assert "warning" not in capsys.readouterr().err


@pytest.mark.parametrize("command", ["translate", "check"])
def test_events_subcommands_explain_themselves(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["events", command, "--help"])
    assert exited.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    usage, _, rest = help_text.partition("options:")
    assert len(usage.split("]")[-1].strip()) > 80, "no description under the usage line"
    for option in re.findall(r"\[(--[a-z-]+)", usage) + re.findall(r" (--stack) STACK ", usage):
        described = re.search(rf"{option} [A-Z_]+ (\S+)", rest)
        assert described and not described.group(1).startswith("--"), f"{option} has no help text"
    assert "--stacks-dir STACKS_DIR directory" in rest


def test_v2_meter_events_with_rfc3339_timestamps_translate_too() -> None:
    """Stripe's v2 meter events (the high-throughput stream) carry RFC 3339 times, not Unix seconds."""
    unix = json.loads(json.dumps(STRIPE_EVENTS[0]))
    expected = events.translate_event(unix, ALIASES, {"tokens"})
    for spelled in ("2026-01-01T12:00:00.000Z", "2026-01-01T13:00:00+01:00"):
        v2 = {**unix, "timestamp": spelled}
        assert events.translate_event(v2, ALIASES, {"tokens"}) == expected
    with pytest.raises(events.EventError) as info:
        events.translate_event({**unix, "timestamp": "2026-01-01T12:00:00"}, ALIASES, {"tokens"})
    assert info.value.code == "bad_timestamp" and "no UTC offset" in info.value.reason
