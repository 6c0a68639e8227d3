"""The series the gateway defines are the contract deploy/'s rules and dashboard are built on
(tests/deploy/contract.py): the same names, types, labels and buckets, and labels no client can
widen."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from shubproxy.metrics import series
from shubproxy.metrics.recorder import Recorder
from tests.deploy import contract


def exposed() -> dict[str, Any]:
    """The gateway's families as a scrape shows them, every series touched once."""
    metrics = Recorder()
    metrics.request("proxy", "GET", 200, 0.01, 10)
    metrics.upstream("proxy", 0.01)
    return {
        family.name: family
        for family in text_string_to_metric_families(generate_latest(REGISTRY).decode())
        # _created: in-process only (the multiprocess collector the gateway serves has none)
        if family.name.startswith("vx11_gateway_") and not family.name.endswith("_created")
    }


def label_names(family: Any) -> tuple[str, ...]:
    names = {name for sample in family.samples for name in sample.labels} - {"le"}
    return tuple(sorted(names))


def test_every_series_is_in_the_contract_with_its_type_and_labels():
    # The parser names a counter without its _total, as OpenMetrics does.
    suffix = {"counter": "_total", "histogram": "", "gauge": ""}
    found = {
        family.name + suffix[family.type]: (family.type, label_names(family))
        for family in exposed().values()
    }
    expected = (
        {name: ("counter", tuple(sorted(labels))) for name, labels in contract.COUNTERS.items()}
        | {
            name: ("histogram", tuple(sorted(labels)))
            for name, labels in contract.HISTOGRAMS.items()
        }
        | {name: ("gauge", tuple(sorted(labels))) for name, labels in contract.GAUGES.items()}
    )
    assert found == expected


def test_histograms_have_the_contracts_buckets_from_a_tenth_of_a_millisecond_to_a_minute():
    assert series.BUCKETS == contract.BUCKETS
    assert (series.BUCKETS[0], series.BUCKETS[-1]) == (0.0001, 60)
    families = exposed()
    for name in contract.HISTOGRAMS:
        bounds = [
            float(sample.labels["le"])
            for sample in families[name].samples
            if sample.name.endswith("_bucket") and sample.labels["route"] == "proxy"
        ]
        assert bounds == [*series.BUCKETS, float("inf")], name


@pytest.mark.parametrize(
    ("label", "values"),
    [
        ("route", series.ROUTES),
        ("kind", series.ERROR_KINDS),
        ("key", series.CACHE_KEYS),
        ("result", series.CACHE_RESULTS),
        ("policy", series.POLICIES),
    ],
)
def test_fixed_labels_take_the_contracts_values(label, values):
    assert set(values) == contract.LABEL_VALUES[label]


def test_retry_and_shed_reasons_are_the_contracts():
    assert set(series.RETRY_REASONS) == contract.REASONS["vx11_gateway_upstream_retries_total"]
    assert set(series.SHED_REASONS) == contract.REASONS["vx11_gateway_shed_requests_total"]


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "DELETE", "PROPFIND", "PURGE"])
def test_a_registered_method_is_its_own_label(method):
    assert series.fold_method(method) == method


@pytest.mark.parametrize("method", ["BREW", "get", "X" * 200, "GET ", "M-SEARCH"])
def test_any_other_method_is_other(method):
    assert series.fold_method(method) == "other"
