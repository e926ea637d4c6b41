"""The OpenAPI description (/openapi.json, companion/surfaces/openapi.py) held to the real responses of
a running bridge by schemathesis: generated requests to every operation, with and without
the bearer token, each response checked against the document (status codes, content types,
schemas), on a store with real signed events."""

from __future__ import annotations

import json
import urllib.request

import pytest
import schemathesis

from .bridge_support import DEVICE_ID, MV, PUBLIC_KEY, Handheld, evidence, make_event

T0 = 1793491200


@pytest.fixture
def bridge(start_bridge, broker):
    b = start_bridge(DEVICE_ID, PUBLIC_KEY)
    hh = Handheld(broker.url, broker.pki)
    try:
        eid, msg = make_event("commission", T0, 1, mpans=[MV.MPAN], ev=evidence([("ESME", MV.MPAN, "Commissioned")]))
        hh.send(msg)
        assert not hh.resend_until_acked({eid: msg}, timeout=30, every=1.0)
    finally:
        hh.close()
    return b


def test_every_operation_answers_as_the_document_says(bridge):
    """Schemathesis generates each operation's requests from the document (its pytest plugin
    does not run on this pytest: the operations are driven by hypothesis here)."""
    from hypothesis import HealthCheck, given, settings

    schema = schemathesis.openapi.from_url(bridge.http + "/openapi.json")
    operations = [op.ok() for op in schema.get_all_operations()]
    assert {"GET /v1/sites/{mpxn}", "GET /v1/sites/{mpxn}/events", "GET /v1/keys", "GET /healthz",
            "GET /readyz", "GET /metrics"} <= {op.label for op in operations}
    auth = {"Authorization": f"Bearer {bridge.token}"}
    # A 13-digit path that fits the pattern may still fail its check digit: a documented 400,
    # which schemathesis' positive-data check would count against the API.
    from schemathesis.specs.openapi.checks import positive_data_acceptance

    skip = [positive_data_acceptance]
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):  # type: ignore[no-untyped-def]
            case.call_and_validate(excluded_checks=skip)  # no token: 401 where one is needed, as documented
            case.call_and_validate(headers=auth, excluded_checks=skip)

        check()


def test_the_document_is_openapi_3_1_and_a_known_site_validates(bridge):
    with urllib.request.urlopen(bridge.http + "/openapi.json", timeout=10) as r:
        doc = json.loads(r.read())
    assert doc["openapi"].startswith("3.1") and doc["info"]["version"]
    assert {"/v1/sites/{mpxn}", "/v1/sites/{mpxn}/events", "/v1/conflicts", "/v1/devices/{eui}",
            "/v1/alerts/triage", "/v1/keys", "/healthz", "/readyz", "/metrics", "/openapi.json"} == set(doc["paths"])
    req = urllib.request.Request(bridge.http + f"/v1/sites/{MV.MPAN}",
                                 headers={"Authorization": f"Bearer {bridge.token}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        site = json.loads(r.read())
    import jsonschema_rs

    jsonschema_rs.validate({**doc["components"]["schemas"]["Site"], "$defs": {}}, site)
    assert site["flag"] == "A"
