"""BillableMetric through the real provider host over gRPC, against the emulator over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from provider_host import ProviderHost, unique

from providers.billable_metric import BillableMetricProvider as M


@pytest.fixture(scope="module")
def host(emulator) -> Iterator[ProviderHost]:
    with ProviderHost(emulator.base_url, emulator.token) as h:
        yield h


def metric(**over):
    name = unique("metric")
    base = {
        "identity": f"metronome-iac/test/{name}",
        "name": name,
        "aggregation_type": "SUM",
        "aggregation_key": "tokens",
        "event_type_filter": {"in_values": ["completion", "chat"]},
        "property_filters": [
            {"name": "tokens", "exists": True},
            {"name": "model", "exists": True},
            {"name": "region", "exists": True},
            {"name": "direction", "in_values": ["input", "output"]},
        ],
        "group_keys": [["model", "region"]],
    }
    return {**base, **over}


def failures_of(host, news):
    _, failures = host.check(M, {}, news)
    return dict(failures)


def test_check_accepts_good_inputs_and_coerces(host):
    inputs = host.check_ok(M, metric(aggregation_type="COUNT", aggregation_key=None))
    assert inputs["aggregation_type"] == "COUNT"


def test_check_rejects_bad_aggregation_type(host):
    failures = failures_of(host, metric(aggregation_type="AVERAGE"))
    assert "aggregation_type" in failures
    assert "COUNT" in failures["aggregation_type"] and "to fix" in failures["aggregation_type"]


def test_check_requires_aggregation_key_unless_count(host):
    failures = failures_of(host, metric(aggregation_key=None))
    assert "aggregation_key" in failures and "required" in failures["aggregation_key"]


def test_check_group_key_must_be_required_by_property_filters(host):
    failures = failures_of(host, metric(group_keys=[["model", "tier"]]))
    assert list(failures) == ["group_keys[0][1]"]
    assert "{name: tier, exists: true}" in failures["group_keys[0][1]"]


def test_check_unknown_field(host):
    failures = failures_of(host, metric(aggregation="SUM"))
    assert "aggregation" in failures and "remove it" in failures["aggregation"]


def test_high_cardinality_group_key_warns_but_passes(emulator):
    with ProviderHost(emulator.base_url, emulator.token) as h:
        news = metric(
            property_filters=[
                {"name": "tokens", "exists": True},
                {"name": "request_id", "exists": True},
                {"name": "model", "exists": True},
            ],
            group_keys=[["model", "request_id"]],
        )
        h.check_ok(M, news)
        h.close()
        err = h.stderr_text()
    assert "request_id" in err and "low-cardinality" in err
    assert "approaches 1,000" in err  # the migration guide's advice, named


def test_lifecycle(host, emulator):
    client = emulator.client()
    news = metric()
    object_id, inputs, outs = host.create_checked(M, news)
    live = client.v1.billable_metrics.retrieve(billable_metric_id=object_id).data
    assert live.name == news["name"] and live.aggregation_key == "tokens"
    assert (live.custom_fields or {})["iac_identity"].startswith(news["identity"] + "#")

    # Read returns exactly the inputs.
    read_id, read_outs = host.read(M, object_id, outs)
    assert read_id == object_id and read_outs == outs == inputs

    # No phantom diffs: reordered lists, floats vs ints, missing vs None.
    reordered = {
        **inputs,
        "event_type_filter": {"in_values": ["chat", "completion"]},
        "property_filters": list(reversed(inputs["property_filters"])),
        "custom_fields": None,
    }
    assert host.diff(M, object_id, read_outs, reordered).changes == "NONE"

    # Mutable change: name -> update, no replacement.
    renamed = {**inputs, "name": news["name"] + "-renamed"}
    d = host.diff(M, object_id, outs, renamed)
    assert d.changes == "SOME" and d.replaces == []
    outs = host.update(M, object_id, outs, renamed)
    assert client.v1.billable_metrics.retrieve(billable_metric_id=object_id).data.name == renamed["name"]

    # Every other field forces replacement.
    for field, value in {
        "aggregation_type": "MAX",
        "aggregation_key": "other",
        "event_type_filter": {"in_values": ["x"]},
        "property_filters": [{"name": "model", "exists": True}],
        "group_keys": [["model"]],
    }.items():
        d = host.diff(M, object_id, outs, {**renamed, field: value})
        assert d.changes == "SOME" and d.replaces == [field], field

    # Out-of-band rename shows on read.
    client.v1.billable_metrics.update(billable_metric_id=object_id, name="hand-edited")
    _, drifted = host.read(M, object_id, outs)
    assert drifted["name"] == "hand-edited"
    assert host.diff(M, object_id, drifted, renamed).changes == "SOME"

    # Delete archives.
    host.delete(M, object_id, outs)
    assert client.v1.billable_metrics.retrieve(billable_metric_id=object_id).data.archived_at is not None
    assert host.read(M, object_id, outs)[0] == ""
    host.delete(M, object_id, outs)  # re-archiving is success


def test_read_after_out_of_band_archive(host, emulator):
    object_id, _, outs = host.create_checked(M, metric())
    emulator.client().v1.billable_metrics.archive(id=object_id)
    assert host.read(M, object_id, outs) == ("", {})


def test_api_error_names_resource(host):
    # An invalid value sneaked past check (as an engine skipping check would): Metronome's 400.
    from provider_host import ProviderError

    inputs = host.check_ok(M, metric())
    with pytest.raises(ProviderError) as err:
        host.create(M, {**inputs, "aggregation_type": "MEDIAN"})
    assert "BillableMetric '" in str(err.value) and "400" in str(err.value)


def test_create_after_out_of_band_archive_makes_a_new_metric(host, emulator):
    """The host's identity index was loaded while the metric was live; it must not hand back the
    archived object when the engine re-creates the resource (refresh saw it gone)."""
    inputs = metric()
    first_id, _, _ = host.create_checked(M, inputs)
    emulator.client().v1.billable_metrics.archive(id=first_id)
    second_id, _, _ = host.create_checked(M, inputs)
    assert second_id != first_id
    live = emulator.client().v1.billable_metrics.retrieve(billable_metric_id=second_id).data
    assert live.archived_at is None


def test_refresh_of_a_metric_without_lists_returns_the_state_unchanged(host):
    """Metronome answers `group_keys: []` where none were declared: a refresh must not show that."""
    name = unique("bare")
    news = {"identity": f"metronome-iac/test/{name}", "name": name, "aggregation_type": "COUNT"}
    object_id, inputs, outs = host.create_checked(M, news)
    _, read_outs = host.read(M, object_id, outs)
    assert read_outs == outs, (read_outs, outs)
