"""Concurrent requests, and the optional state file."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from fixtures.sandbox import SandboxClient, WebhookReceiver, v2_event

from steppay_sandbox.server import SandboxServer


def test_sixteen_concurrent_creates_get_unique_ids_and_codes(sandbox_client: SandboxClient) -> None:
    body = sandbox_client.order_body()
    barrier = threading.Barrier(16)

    def create(_: int) -> dict[str, object]:
        with requests.Session() as http:
            barrier.wait()
            response = http.post(
                f"{sandbox_client.base_url}/api/v1/orders",
                json=body,
                headers={"Secret-Token": sandbox_client.token},
                timeout=10,
            )
            assert response.status_code == 201, response.text
            return dict(response.json())

    with ThreadPoolExecutor(16) as pool:
        orders = list(pool.map(create, range(16)))
    assert len({o["id"] for o in orders}) == 16
    assert len({o["orderCode"] for o in orders}) == 16
    assert len({o["idKey"] for o in orders}) == 16


def test_sixteen_concurrent_completions_pay_exactly_once(
    sandbox: SandboxServer, sandbox_client: SandboxClient, sandbox_webhooks: WebhookReceiver
) -> None:
    order = sandbox_client.create_order("recurring")
    barrier = threading.Barrier(16)

    def complete(_: int) -> int:
        with requests.Session() as http:
            barrier.wait()
            response = http.post(
                f"{sandbox_client.base_url}/_sandbox/orders/{order['orderCode']}/complete",
                json={"outcome": "success"},
                timeout=10,
            )
            return response.status_code

    with ThreadPoolExecutor(16) as pool:
        statuses = sorted(pool.map(complete, range(16)))
    assert statuses == [200] + [409] * 15
    detail = sandbox_client.api("GET", f"/api/v1/orders/{order['orderCode']}").json()
    assert detail["paidAmount"] == 9900 and len(detail["subscriptions"]) == 1
    assert sandbox.wait_for_webhooks(5)
    assert len(sandbox_webhooks.matching(v2_event("payment.completed", orderId=order["id"]))) == 1
    assert len(sandbox_webhooks.matching(v2_event("subscription.created", orderId=order["id"]))) == 1


def test_concurrent_pay_page_clicks_pay_once(sandbox_client: SandboxClient) -> None:
    order = sandbox_client.create_order()
    barrier = threading.Barrier(8)

    def click(_: int) -> int:
        with requests.Session() as http:
            barrier.wait()
            response = http.post(
                f"{sandbox_client.base_url}/pay/{order['orderCode']}",
                data={"action": "pay", "successUrl": "https://shop.example.com/ok"},
                allow_redirects=False,
                timeout=10,
            )
            return response.status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = sorted(pool.map(click, range(8)))
    assert statuses == [303] + [409] * 7


def test_state_file_round_trip(tmp_path: Path) -> None:
    state_file = tmp_path / "state" / "sandbox.json"
    with SandboxServer(port=0, state_file=state_file) as first:
        client = SandboxClient(first.url)
        one_time = client.create_order(quantity=2)
        client.complete(one_time["orderCode"])
        client.control("POST", f"/orders/{one_time['orderCode']}/refund", {"amount": 1000})
        initial, sub_id = client.paid_subscription()
        client.control("POST", f"/subscriptions/{sub_id}/renew", {"outcome": "failure"})
        unpaid = client.create_order()
        before = {
            ref: client.api("GET", f"/api/v1/orders/{ref}").json()
            for ref in (one_time["orderCode"], initial["orderCode"], unpaid["orderCode"])
        }
        sub_before = client.api("GET", f"/api/v1/subscriptions/{sub_id}").json()
        list_before = client.api("GET", "/api/v1/orders", params={"size": 100}).json()
    saved = json.loads(state_file.read_text(encoding="utf-8"))
    assert saved["version"] == 1 and len(saved["orders"]) == 4
    assert "sandbox-secret-token" not in state_file.read_text(encoding="utf-8")

    with SandboxServer(port=0, state_file=state_file) as second:
        client = SandboxClient(second.url)
        for ref, detail in before.items():
            assert client.api("GET", f"/api/v1/orders/{ref}").json() == detail
        assert client.api("GET", f"/api/v1/subscriptions/{sub_id}").json() == sub_before
        assert client.api("GET", "/api/v1/orders", params={"size": 100}).json() == list_before
        receipt = client.api("GET", f"/api/payment/receipt/{one_time['idKey']}").json()
        assert receipt["status"] == "PARTIAL_CANCELED"
        # Counters survive: no id is handed out twice.
        newer = client.create_order()
        assert newer["id"] > max(o["id"] for o in saved["orders"])
        # The restored unpaid order can still be paid, once.
        assert client.complete(unpaid["orderCode"]).status_code == 200
        assert client.complete(unpaid["orderCode"]).status_code == 409


def test_without_state_file_nothing_is_written(tmp_path: Path) -> None:
    with SandboxServer(port=0) as server:
        SandboxClient(server.url).create_order()
    assert list(tmp_path.iterdir()) == []


def test_server_binds_to_loopback_only() -> None:
    with SandboxServer(port=0) as server:
        assert server.url.startswith("http://127.0.0.1:")
        assert server._httpd is not None
        assert server._httpd.server_address[0] == "127.0.0.1"


def test_stop_hangs_up_on_kept_alive_connections() -> None:
    server = SandboxServer(port=0).start()
    client = SandboxClient(server.url)
    assert client.api("GET", "/api/v1/products").status_code == 200  # the session keeps the connection
    server.stop()
    try:
        client.api("GET", "/api/v1/products", timeout=2)
    except requests.exceptions.ConnectionError:
        pass
    else:
        raise AssertionError("a stopped sandbox still answered")
