"""Whatever arrives, the sandbox answers a 4xx (never a 500, never a traceback)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from fixtures.sandbox import SECRET_TOKEN, SandboxClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from steppay_sandbox.server import SandboxServer

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
KEYS = st.sampled_from(
    [
        "items",
        "customerId",
        "customerCode",
        "customerUuid",
        "requestPrice",
        "reason",
        "outcome",
        "amount",
        "status",
        "path",
        "webhooks",
        "count",
        "delayMs",
        "latencyMs",
        "drop",
        "method",
        "webhookUrl",
        "webhookKey",
        "webhookVersions",
        "webhookRetryDelaysMs",
        "webhookTimeoutMs",
        "errorCode",
        "purchaseDeadline",
        "paymentGateway",
        "productCode",
        "priceCode",
        "currency",
        "minimumQuantity",
    ]
)
BODIES = JSON | st.dictionaries(KEYS, JSON, max_size=5)


@pytest.fixture(scope="module")
def fuzzed() -> Iterator[tuple[SandboxServer, dict[str, Any]]]:
    with SandboxServer(port=0, webhook_retry_delays=()) as server:
        client = SandboxClient(server.url)
        order, sub_id = client.paid_subscription()
        yield server, {"code": order["orderCode"], "sub": sub_id}


ENDPOINTS = [
    ("POST", "/api/v1/orders"),
    ("PATCH", "/api/v1/orders/{code}/cancel"),
    ("POST", "/_sandbox/orders/{code}/complete"),
    ("POST", "/_sandbox/orders/{code}/refund"),
    ("POST", "/_sandbox/subscriptions/{sub}/renew"),
    ("POST", "/_sandbox/subscriptions/{sub}/status"),
    ("POST", "/_sandbox/faults"),
    ("POST", "/_sandbox/config"),
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(endpoint=st.sampled_from(ENDPOINTS), body=BODIES)
def test_no_request_body_breaks_the_sandbox(
    fuzzed: tuple[SandboxServer, dict[str, Any]], endpoint: tuple[str, str], body: Any
) -> None:
    server, refs = fuzzed
    method, path = endpoint
    try:
        response = requests.request(
            method,
            server.url + path.format(**refs),
            data=json.dumps(body),
            headers={"Secret-Token": SECRET_TOKEN, "Content-Type": "application/json"},
            timeout=10,
        )
        assert response.status_code < 500, (response.status_code, response.text)
        assert "Traceback" not in response.text
    finally:
        server.faults.clear()
        server.configure_webhooks(url=None, key="sandbox-webhook-key", versions=["v2"], retry_delays=[])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    segment=st.text(st.characters(codec="utf-8", exclude_characters="/?#"), min_size=1, max_size=20).filter(
        lambda s: s not in (".", "..")
    ),
    query=st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
)
def test_no_path_or_query_breaks_the_sandbox(
    fuzzed: tuple[SandboxServer, dict[str, Any]], segment: str, query: dict[str, str]
) -> None:
    server, _ = fuzzed
    headers = {"Secret-Token": SECRET_TOKEN}
    for path in (
        f"/api/v1/orders/{segment}",
        f"/api/v1/subscriptions/{segment}",
        f"/api/payment/receipt/{segment}",
        f"/pay/{segment}",
        f"/api/public/orders/{segment}/pay",
    ):
        response = requests.get(
            server.url + path, params=query, headers=headers, timeout=10, allow_redirects=False
        )
        assert response.status_code == 404, (path, response.status_code, response.text)
    listing = requests.get(server.url + "/api/v1/orders", params=query, headers=headers, timeout=10)
    assert listing.status_code in (200, 400), listing.text
