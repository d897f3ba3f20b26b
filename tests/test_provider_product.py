"""Product through the real provider host over gRPC, against the emulator over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from provider_host import UNKNOWN, ProviderHost, unique

from providers.billable_metric import BillableMetricProvider as M
from providers.product import ProductProvider as P


@pytest.fixture(scope="module")
def host(emulator) -> Iterator[ProviderHost]:
    with ProviderHost(emulator.base_url, emulator.token) as h:
        yield h


@pytest.fixture(scope="module")
def metric_ids(host) -> list[str]:
    ids = []
    for _ in range(2):
        name = unique("pm")
        object_id, _, _ = host.create_checked(
            M,
            {
                "identity": f"metronome-iac/test/{name}",
                "name": name,
                "aggregation_type": "SUM",
                "aggregation_key": "tokens",
                "property_filters": [
                    {"name": "tokens", "exists": True},
                    {"name": "model", "exists": True},
                    {"name": "region", "exists": True},
                ],
                "group_keys": [["model", "region"], ["model"]],
            },
        )
        ids.append(object_id)
    return ids


def product(metric_id: str, **over):
    name = unique("product")
    base = {
        "identity": f"metronome-iac/test/{name}",
        "name": name,
        "type": "USAGE",
        "billable_metric_id": metric_id,
        "pricing_group_key": ["model", "region"],
        "quantity_conversion": {"conversion_factor": 1000000, "operation": "DIVIDE", "name": "per million"},
        "quantity_rounding": {"decimal_places": 2, "rounding_method": "ROUND_UP"},
        "tags": ["ai", "tokens"],
    }
    return {**base, **over}


def test_check(host, metric_ids):
    host.check_ok(P, product(metric_ids[0]))
    failures = dict(host.check(P, {}, product(metric_ids[0], type="GADGET"))[1])
    assert "type" in failures and "USAGE" in failures["type"]
    failures = dict(host.check(P, {}, product(None))[1])
    assert "billable_metric_id" in failures and "to fix" in failures["billable_metric_id"]
    failures = dict(host.check(P, {}, product(metric_ids[0], update_starting_at="2026-01-01T00:30:00Z"))[1])
    assert "hour boundary" in failures["update_starting_at"]
    failures = dict(host.check(P, {}, {**product(metric_ids[0]), "type": "FIXED"})[1])
    assert "pricing_group_key" in failures  # usage-only fields on a FIXED product
    # Preview: the metric id is not known yet.
    inputs = host.check_ok(P, product(UNKNOWN))
    assert inputs["billable_metric_id"] == UNKNOWN


def test_check_compares_group_keys_with_a_live_metric(host, metric_ids):
    # The metric exists already (its id is known at preview): its group keys are looked up.
    failures = dict(host.check(P, {}, product(metric_ids[0], pricing_group_key=["region", "tier"]))[1])
    assert "pricing_group_key" in failures, failures
    assert (
        "['model', 'region']" in failures["pricing_group_key"] and "to fix" in failures["pricing_group_key"]
    )
    # pricing + presentation together must be one of the metric's group keys.
    over = {"pricing_group_key": ["model"], "presentation_group_key": ["region"]}
    host.check_ok(P, product(metric_ids[0], **over))
    failures = dict(host.check(P, {}, product(metric_ids[0], presentation_group_key=["model"]))[1])
    assert "presentation_group_key" not in failures  # {"model", "region"} is still one of them
    failures = dict(host.check(P, {}, product(metric_ids[0], pricing_group_key=["region"]))[1])
    assert "pricing_group_key" in failures  # ["region"] alone is not
    # A metric id the API does not know is left to refresh / the API (no failure from a look-up).
    host.check_ok(P, product("00000000-0000-4000-8000-000000000000"))


def test_lifecycle(host, emulator, metric_ids):
    client = emulator.client()
    object_id, inputs, outs = host.create_checked(P, product(metric_ids[0]))
    live = client.v1.contracts.products.retrieve(id=object_id).data
    assert live.type == "USAGE" and live.current.name == inputs["name"]

    read_id, read_outs = host.read(P, object_id, outs)
    assert read_id == object_id and read_outs == outs == inputs

    # No phantom diffs: defaults (is_refundable), floats vs ints, reordered tags.
    same = {
        **inputs,
        "tags": ["tokens", "ai"],
        "is_refundable": None,
        "quantity_conversion": {**inputs["quantity_conversion"], "conversion_factor": 1e6},
    }
    assert host.diff(P, object_id, read_outs, same).changes == "NONE"

    # Mutable: name, tags and even the metric change in place.
    changed = {**inputs, "name": inputs["name"] + "-v2", "billable_metric_id": metric_ids[1], "tags": ["ai"]}
    d = host.diff(P, object_id, outs, changed)
    assert d.changes == "SOME" and d.replaces == []
    outs = host.update(P, object_id, outs, changed)
    live = client.v1.contracts.products.retrieve(id=object_id).data
    assert live.current.name == changed["name"] and live.current.billable_metric_id == metric_ids[1]
    _, read_outs = host.read(P, object_id, outs)
    assert host.diff(P, object_id, read_outs, changed).changes == "NONE"

    # type forces replacement.
    d = host.diff(P, object_id, outs, {**changed, "type": "FIXED"})
    assert d.replaces == ["type"]

    # Out-of-band edit shows.
    from datetime import datetime, timezone

    hour = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    client.v1.contracts.products.update(product_id=object_id, starting_at=hour, name="hand-edited")
    _, drifted = host.read(P, object_id, outs)
    assert drifted["name"] == "hand-edited"

    host.delete(P, object_id, outs)
    assert client.v1.contracts.products.retrieve(id=object_id).data.archived_at is not None
    assert host.read(P, object_id, outs)[0] == ""


def test_scheduled_update_reads_back_without_diff(host, metric_ids):
    object_id, inputs, outs = host.create_checked(P, product(metric_ids[0]))
    later = {**inputs, "name": inputs["name"] + "-later", "update_starting_at": "2099-01-01T00:00:00Z"}
    outs = host.update(P, object_id, outs, host.check_ok(P, later))
    _, read_outs = host.read(P, object_id, outs)
    assert read_outs["name"] == later["name"]
    assert host.diff(P, object_id, read_outs, later).changes == "NONE"


def test_read_after_out_of_band_archive(host, emulator, metric_ids):
    object_id, _, outs = host.create_checked(P, product(metric_ids[0]))
    emulator.client().v1.contracts.products.archive(product_id=object_id)
    assert host.read(P, object_id, outs) == ("", {})


def test_check_look_ups_stop_after_the_api_fails_once():
    """Preview must not crawl through retries per product when the API is down: one failed look-up
    (with a single retry) turns the courtesy check off for the rest of the run."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    hits: list[str] = []

    class Down(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            hits.append(self.path)
            self.send_response(503)
            self.send_header("Content-Type", "application/json")
            self.send_header("retry-after-ms", "10")
            self.end_headers()
            self.wfile.write(b'{"message": "down"}')

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Down)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with ProviderHost(f"http://127.0.0.1:{server.server_port}", "token") as down:
            for n in range(5):
                down.check_ok(P, product(f"00000000-0000-4000-8000-00000000000{n}"))
    finally:
        server.shutdown()
    assert 1 <= len(hits) <= 2, hits
