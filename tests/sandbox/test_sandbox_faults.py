"""Inbound faults: StepPay answering errors, answering slowly, or hanging up."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests
from fixtures.sandbox import SandboxClient


def add_fault(client: SandboxClient, **fault: Any) -> dict[str, Any]:
    response = client.control("POST", "/faults", fault)
    assert response.status_code == 201, response.text
    return dict(response.json()["fault"])


def test_status_fault_answers_with_steppay_error_body_for_count_calls(sandbox_client: SandboxClient) -> None:
    order = sandbox_client.create_order()
    add_fault(sandbox_client, path="/api/v1/orders/*", status=503, latencyMs=0, drop=False, count=2)
    for _ in range(2):
        response = sandbox_client.api("GET", f"/api/v1/orders/{order['orderCode']}")
        assert response.status_code == 503
        assert set(response.json()) == {"traceId", "errorCode", "errorMessage", "details"}
    assert sandbox_client.api("GET", f"/api/v1/orders/{order['orderCode']}").status_code == 200
    assert sandbox_client.control("GET", "/faults").json()["faults"] == []


def test_fault_path_is_a_glob_that_spares_other_paths(sandbox_client: SandboxClient) -> None:
    add_fault(sandbox_client, path="/api/v1/orders/*", status=500, count=1)
    # The list/create path does not match "/api/v1/orders/*".
    assert sandbox_client.api("GET", "/api/v1/orders").status_code == 200
    assert sandbox_client.api("GET", "/api/v1/products").status_code == 200
    order = sandbox_client.create_order()
    # "*" crosses "/": the pay link matches too.
    assert sandbox_client.api("GET", f"/api/v1/orders/{order['orderCode']}/pay").status_code == 500
    assert sandbox_client.api("GET", f"/api/v1/orders/{order['orderCode']}/pay").status_code == 302


def test_fault_applies_before_authentication(sandbox_client: SandboxClient) -> None:
    add_fault(sandbox_client, path="/api/v1/products", status=502)
    response = sandbox_client.http.get(f"{sandbox_client.base_url}/api/v1/products", timeout=10)
    assert response.status_code == 502


def test_method_filter(sandbox_client: SandboxClient) -> None:
    add_fault(sandbox_client, path="/api/v1/orders", method="post", status=429, count=1)
    assert sandbox_client.api("GET", "/api/v1/orders").status_code == 200
    response = sandbox_client.api("POST", "/api/v1/orders", json=sandbox_client.order_body())
    assert response.status_code == 429
    assert sandbox_client.api("POST", "/api/v1/orders", json=sandbox_client.order_body()).status_code == 201


def test_a_failed_create_creates_nothing(sandbox_client: SandboxClient) -> None:
    before = sandbox_client.api("GET", "/api/v1/orders", params={"size": 1}).json()["totalElements"]
    add_fault(sandbox_client, path="/api/v1/orders", method="POST", status=500)
    assert sandbox_client.api("POST", "/api/v1/orders", json=sandbox_client.order_body()).status_code == 500
    assert sandbox_client.api("GET", "/api/v1/orders", params={"size": 1}).json()["totalElements"] == before


def test_latency_fault_delays_a_normal_answer(sandbox_client: SandboxClient) -> None:
    add_fault(sandbox_client, path="/api/v1/products", latencyMs=2000, count=1)
    started = time.monotonic()
    response = sandbox_client.api("GET", "/api/v1/products")
    assert response.status_code == 200 and response.json()["content"]
    assert time.monotonic() - started >= 2.0
    # count honoured: the fault is used up, and the next call is not delayed (a wide margin, so a
    # loaded machine's slow answer is not mistaken for the fault)
    assert sandbox_client.control("GET", "/faults").json()["faults"] == []
    started = time.monotonic()
    assert sandbox_client.api("GET", "/api/v1/products").status_code == 200
    assert time.monotonic() - started < 1.5


def test_latency_fault_trips_a_client_timeout(sandbox_client: SandboxClient) -> None:
    add_fault(sandbox_client, path="/api/v1/products", latencyMs=1000, count=1)
    with pytest.raises(requests.exceptions.ReadTimeout):
        sandbox_client.api("GET", "/api/v1/products", timeout=0.3)


def test_drop_fault_closes_the_connection_without_an_answer(sandbox_client: SandboxClient) -> None:
    order = sandbox_client.create_order()
    add_fault(sandbox_client, path="/api/v1/orders/*", drop=True, count=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        sandbox_client.api("GET", f"/api/v1/orders/{order['orderCode']}")
    # The next call on the same session gets a normal answer.
    assert sandbox_client.api("GET", f"/api/v1/orders/{order['orderCode']}").status_code == 200


def test_drop_of_a_post_does_not_answer_but_the_body_was_read(sandbox_client: SandboxClient) -> None:
    add_fault(sandbox_client, path="/api/v1/orders", method="POST", drop=True)
    with pytest.raises(requests.exceptions.ConnectionError):
        sandbox_client.api("POST", "/api/v1/orders", json=sandbox_client.order_body())


def test_faults_are_used_in_order_and_cleared(sandbox_client: SandboxClient) -> None:
    add_fault(sandbox_client, path="/api/v1/products", status=500)
    add_fault(sandbox_client, path="/api/v1/products", status=503)
    add_fault(sandbox_client, path="/api/v1/customers", status=504, count=5)
    assert len(sandbox_client.control("GET", "/faults").json()["faults"]) == 3
    assert sandbox_client.api("GET", "/api/v1/products").status_code == 500
    assert sandbox_client.api("GET", "/api/v1/products").status_code == 503
    assert sandbox_client.control("DELETE", "/faults").status_code == 200
    assert sandbox_client.api("GET", "/api/v1/customers").status_code == 200


def test_control_api_is_never_faulted(sandbox_client: SandboxClient) -> None:
    add_fault(sandbox_client, path="*", status=500, count=10)
    assert sandbox_client.control("GET", "/faults").status_code == 200
    assert sandbox_client.control("DELETE", "/faults").status_code == 200
    assert sandbox_client.api("GET", "/api/v1/products").status_code == 200


def test_pay_page_can_be_faulted(sandbox_client: SandboxClient) -> None:
    order = sandbox_client.create_order()
    add_fault(sandbox_client, path=f"/pay/{order['orderCode']}", status=502)
    assert sandbox_client.http.get(f"{sandbox_client.base_url}/pay/{order['orderCode']}").status_code == 502


@pytest.mark.parametrize(
    "fault",
    [
        {},
        {"path": "/api/v1/orders/*"},
        {"path": "no-slash", "status": 500},
        {"path": "/x", "status": 99},
        {"path": "/x", "status": "500"},
        {"path": "/x", "latencyMs": -1},
        {"path": "/x", "drop": "yes"},
        {"path": "/x", "status": 500, "count": 0},
        {"path": "/x", "status": 500, "method": "G E T"},
    ],
)
def test_bad_inbound_faults_are_400(sandbox_client: SandboxClient, fault: dict[str, Any]) -> None:
    assert sandbox_client.control("POST", "/faults", fault).status_code == 400
