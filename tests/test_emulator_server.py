"""Emulator server behaviour: auth, persistence across restarts, fault and latency knobs, statistics."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import metronome
import pytest
from conftest import REPO, Emulator, start_emulator


def uid(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def test_auth_required(emulator: Emulator) -> None:
    wrong = metronome.Metronome(bearer_token="wrong-token", base_url=emulator.base_url, max_retries=0)
    with pytest.raises(metronome.AuthenticationError) as err:
        wrong.v1.billable_metrics.list()
    assert err.value.status_code == 401 and err.value.body["message"]
    # No token at all: the SDK always sends one, so go around it.
    missing = httpx.get(f"{emulator.base_url}/v1/billable-metrics", timeout=10)
    assert missing.status_code == 401 and "message" in missing.json()
    # Knob endpoints need no token.
    assert emulator.admin("GET", "health").status_code == 200


def test_any_token_without_token_flag() -> None:
    emu = start_emulator(token=None)
    try:
        client = metronome.Metronome(bearer_token="whatever", base_url=emu.base_url, max_retries=0)
        assert list(client.v1.billable_metrics.list()) == []
        basic = httpx.get(f"{emu.base_url}/v1/billable-metrics", headers={"Authorization": "Basic abc"})
        assert basic.status_code == 401
    finally:
        emu.stop()


def test_state_survives_restart(tmp_path: Path) -> None:
    db = str(tmp_path / "m.db")
    emu = start_emulator(db=db)
    try:
        client = emu.client(max_retries=0)
        client.v1.custom_fields.add_key(entity="customer", key="team", enforce_uniqueness=False)
        metric_id = client.v1.billable_metrics.create(name="m", aggregation_type="COUNT").data.id
        customer_id = client.v1.customers.create(
            name="acme", ingest_aliases=["acme-prod"], custom_fields={"team": "a"}
        ).data.id
        client.v1.usage.ingest(
            usage=[
                {
                    "transaction_id": "t1",
                    "customer_id": "acme-prod",
                    "event_type": "e",
                    "timestamp": "2026-01-01T00:00:00Z",
                }
            ]
        )
    finally:
        emu.stop()
    emu = start_emulator(db=db)
    try:
        client = emu.client(max_retries=0)
        assert client.v1.billable_metrics.retrieve(billable_metric_id=metric_id).data.name == "m"
        customer = client.v1.customers.retrieve(customer_id=customer_id).data
        assert customer.ingest_aliases == ["acme-prod"] and customer.custom_fields == {"team": "a"}
        with pytest.raises(metronome.ConflictError):
            client.v1.customers.create(name="again", ingest_aliases=["acme-prod"])
        assert [k.key for k in client.v1.custom_fields.list_keys()] == ["team"]
        assert len(client.v1.usage.search(transaction_ids=["t1"])) == 1
        # A new metric after the restart gets listed after the old one (cursor order survives).
        client.v1.billable_metrics.create(name="m2", aggregation_type="COUNT")
        assert [m.name for m in client.v1.billable_metrics.list(limit=1)] == ["m", "m2"]
    finally:
        emu.stop()


def test_stats_and_reset(fresh_emulator: Emulator) -> None:
    client = fresh_emulator.client(max_retries=0)
    for _ in range(3):
        client.v1.contracts.products.create(name=uid(), type="FIXED")
    metric_id = client.v1.billable_metrics.create(name="m", aggregation_type="COUNT").data.id
    client.v1.billable_metrics.retrieve(billable_metric_id=metric_id)
    fresh_emulator.admin("GET", "health")
    stats = fresh_emulator.admin("GET", "stats").json()
    assert stats["total"] == 5
    assert stats["by_route"]["POST /v1/contract-pricing/products/create"] == 3
    assert stats["by_route"]["GET /v1/billable-metrics/{billable_metric_id}"] == 1

    assert fresh_emulator.admin("POST", "reset").status_code == 200
    assert fresh_emulator.admin("GET", "stats").json()["total"] == 0
    with pytest.raises(metronome.NotFoundError):
        client.v1.billable_metrics.retrieve(billable_metric_id=metric_id)
    assert [u.name for u in client.v1.pricing_units.list()] == ["USD (cents)"]


def test_fault_injection_retries_get_through(fresh_emulator: Emulator) -> None:
    setup = fresh_emulator.client(max_retries=0)
    metric_id = setup.v1.billable_metrics.create(name="m", aggregation_type="COUNT").data.id
    config = fresh_emulator.admin("POST", "config", json={"fail_rate": 0.3, "seed": 7}).json()
    assert config["fail_rate"] == 0.3
    client = fresh_emulator.client()  # the SDK's default retries (2)
    ok = 0
    for _ in range(20):
        try:
            client.v1.billable_metrics.retrieve(billable_metric_id=metric_id)
            ok += 1
        except (metronome.RateLimitError, metronome.InternalServerError):
            pass
    assert ok >= 17  # 0.3^3 = 2.7% chance all three attempts fail
    stats = fresh_emulator.admin("GET", "stats").json()
    assert stats["by_route"]["GET /v1/billable-metrics/{billable_metric_id}"] > 20  # retries are counted
    assert sum(stats["injected_failures"].values()) > 0

    # 500 after processing: the object exists although the client saw an error (naive retries duplicate).
    before = fresh_emulator.admin("GET", "stats").json()["injected_failures"].get("500-after", 0)
    fresh_emulator.admin("POST", "config", json={"fail_rate": 1.0, "seed": 1})
    no_retry = fresh_emulator.client(max_retries=0)
    for _ in range(12):
        with pytest.raises((metronome.RateLimitError, metronome.InternalServerError)):
            no_retry.v1.contracts.products.create(name="ghost", type="FIXED")
    fresh_emulator.admin("POST", "config", json={"fail_rate": 0})
    ghosts = [p for p in setup.v1.contracts.products.list() if p.current.name == "ghost"]
    assert 0 < len(ghosts) < 12
    assert fresh_emulator.admin("GET", "stats").json()["injected_failures"]["500-after"] - before == len(
        ghosts
    )


def test_fault_flags_and_latency() -> None:
    emu = start_emulator("--fail-rate", "1", "--seed", "3")
    try:
        with pytest.raises((metronome.RateLimitError, metronome.InternalServerError)):
            emu.client(max_retries=0).v1.billable_metrics.list()
        emu.admin("POST", "config", json={"fail_rate": 0, "latency_ms": 200})
        started = time.monotonic()
        emu.client(max_retries=0).v1.billable_metrics.list()
        assert time.monotonic() - started >= 0.2
        assert emu.admin("GET", "health").status_code == 200
    finally:
        emu.stop()


def test_unknown_headers_and_paths_ignored(emulator: Emulator) -> None:
    client = emulator.client(max_retries=0, default_headers={"X-Stainless-Whatever": "1", "X-Custom": "y"})
    client.v1.billable_metrics.list()
    with pytest.raises(metronome.NotFoundError):
        client.get("/v1/no-such-endpoint", cast_to=object)


def test_db_directory_is_created(tmp_path: Path) -> None:
    db = tmp_path / ".emulator" / "nested" / "dev.db"  # neither directory exists yet
    emu = start_emulator(db=str(db))
    try:
        assert emu.admin("GET", "health").status_code == 200
        assert db.exists()
    finally:
        emu.stop()


@pytest.mark.parametrize("case", ["under_a_file", "a_directory", "not_sqlite"])
def test_unusable_db_is_one_error_line(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from metronome_iac.cli import main

    (tmp_path / "afile").write_text("not a directory\n")
    (tmp_path / "adir").mkdir()
    (tmp_path / "junk.db").write_text("not a database, just text\n" * 100)
    db = {"under_a_file": "afile/dev.db", "a_directory": "adir", "not_sqlite": "junk.db"}[case]
    monkeypatch.chdir(tmp_path)
    assert main(["emulator", "--port", "1", "--db", db]) == 1  # fails before it listens
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and db in lines[0], err
    assert "Traceback" not in err


ACCOUNT_KNOBS = {"contract_editing": True, "contract_item_limit": 100}


def test_config_echoes_seed(fresh_emulator: Emulator) -> None:
    # README: GET|POST config take {"fail_rate": 0.1, "latency_ms": 50, "seed": 1} (and the idempotency
    # window and the account kind's knobs); both answer all of them.
    day = 24 * 3600.0
    got = fresh_emulator.admin("GET", "config").json()
    assert got == {
        "fail_rate": 0.0,
        "latency_ms": 0.0,
        "seed": None,
        "idempotency_ttl_s": day,
        **ACCOUNT_KNOBS,
    }
    posted = fresh_emulator.admin("POST", "config", json={"fail_rate": 0.1, "latency_ms": 50, "seed": 1})
    set_ = {"fail_rate": 0.1, "latency_ms": 50.0, "seed": 1, "idempotency_ttl_s": day, **ACCOUNT_KNOBS}
    assert posted.json() == set_
    assert fresh_emulator.admin("GET", "config").json() == set_
    assert fresh_emulator.admin("POST", "config", json={"seed": "x"}).status_code == 400
    assert fresh_emulator.admin("POST", "config", json={"idempotency_ttl_s": -1}).status_code == 400
    fresh_emulator.admin("POST", "config", json={"fail_rate": 0, "latency_ms": 0})


def test_seed_flag_is_echoed() -> None:
    emu = start_emulator("--seed", "5")
    try:
        assert emu.admin("GET", "config").json()["seed"] == 5
    finally:
        emu.stop()


def test_port_in_use_is_one_error_line() -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        done = subprocess.run(
            [sys.executable, "-m", "metronome_iac", "emulator", "--port", str(port)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        holder.close()
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1, done.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert f"port {port}" in lines[0] and "127.0.0.1" in lines[0] and "in use" in lines[0], done.stderr
    assert "--port" in lines[0]


@pytest.mark.parametrize("port", ["99999", "0", "-1", "http"])
def test_bad_port_is_a_bad_argument(port: str, capsys: pytest.CaptureFixture) -> None:
    from metronome_iac.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["emulator", "--port", port])
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert "error: argument --port" in err and "1-65535" in err and "Traceback" not in err, err
