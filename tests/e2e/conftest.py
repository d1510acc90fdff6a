"""Helpers for end-to-end tests through the local API (the `local_stack` fixture)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
import requests
from fixtures.sandbox import seed_catalogue, seed_order_body

SECRET_TOKEN = "sandbox-secret-token"  # the sandbox's documented local default


@dataclass
class Shop:
    """What a merchant frontend and a tester can do against the running local stack."""

    stack: Any
    http: requests.Session = field(default_factory=requests.Session)
    _events: list[dict[str, Any]] = field(default_factory=list)

    # -- the bundle's API --
    def post(self, path: str, body: Any, **kwargs: Any) -> requests.Response:
        return self.http.post(f"{self.stack.api_url}{path}", json=body, timeout=30, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.http.get(f"{self.stack.api_url}{path}", timeout=30, allow_redirects=False, **kwargs)

    # -- the sandbox (StepPay) --
    def steppay(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Secret-Token": SECRET_TOKEN, **kwargs.pop("headers", {})}
        return self.http.request(
            method, f"{self.stack.sandbox_url}{path}", headers=headers, timeout=30, **kwargs
        )

    def control(self, path: str, body: Any | None = None) -> requests.Response:
        return self.http.post(f"{self.stack.sandbox_url}/_sandbox{path}", json=body or {}, timeout=30)

    def clear_faults(self) -> None:
        self.http.delete(f"{self.stack.sandbox_url}/_sandbox/faults", timeout=10).raise_for_status()

    def catalogue(self) -> dict[str, Any]:
        return seed_catalogue(self.steppay)

    def order_body(self, kind: str = "one_time") -> dict[str, Any]:
        return seed_order_body(self.catalogue(), kind)

    def pay_url_body(self, **overrides: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "order": self.order_body(),
            "successUrl": "http://localhost:8080/checkout/success",
            "errorUrl": "http://localhost:8080/checkout/error",
            "cancelUrl": "http://localhost:8080/checkout/cancel",
            "lang": "ko",
            "merchantRef": "cart-42",
        }
        body.update(overrides)
        return body

    # -- what was stored and published --
    def table(self) -> Any:
        resource = boto3.resource(
            "dynamodb",
            endpoint_url=self.stack.dynamodb_endpoint,
            region_name="ap-northeast-2",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        return resource.Table(self.stack.table_names["PaymentsTable"])

    def record(self, order_code: str) -> dict[str, Any] | None:
        item = self.table().get_item(Key={"pk": f"ORDER#{order_code}", "sk": "ORDER"}, ConsistentRead=True)
        return item.get("Item")

    def item_count(self) -> int:
        return len(self.table().scan(ConsistentRead=True)["Items"])

    def table_snapshot(self) -> list[dict[str, Any]]:
        return sorted(self.table().scan(ConsistentRead=True)["Items"], key=lambda i: str(i["pk"]))

    def events(self, max_wait: float = 0.0) -> list[dict[str, Any]]:
        """Every event the tap has delivered so far (accumulated across calls)."""
        self._events.extend(self.stack.read_tap(max_wait))
        return list(self._events)

    def events_for(self, order_code: str, max_wait: float = 0.0) -> list[dict[str, Any]]:
        return [e for e in self.events(max_wait) if e.get("detail", {}).get("orderCode") == order_code]

    def wait_for_events(self, order_code: str, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        found = self.events_for(order_code)
        while len(found) < count and time.monotonic() < deadline:
            found = self.events_for(order_code, max_wait=1.0)
        return found

    def settle_publisher(self) -> None:
        """Wait until the stream poller has delivered every record written so far."""
        self.stack.wait_idle(timeout=30)

    def new_pay_link(self, kind: str = "one_time", **overrides: Any) -> dict[str, Any]:
        response = self.post("/payments/pay-url", self.pay_url_body(order=self.order_body(kind), **overrides))
        assert response.status_code == 201, response.text
        return response.json()


@pytest.fixture(scope="session")
def shop(local_stack: Any) -> Shop:
    return Shop(local_stack)


@pytest.fixture(autouse=True)
def _clear_sandbox_faults(shop: Shop) -> Any:
    yield
    shop.clear_faults()


def error_code(response: requests.Response) -> str:
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    return str(body["error"]["code"])


def no_leak(response: requests.Response) -> None:
    text = response.text
    for marker in ("Traceback", 'File "', SECRET_TOKEN, "sandbox-webhook-key", "botocore", "/work/"):
        assert marker not in text, f"response leaks {marker!r}: {text[:300]}"


Predicate = Callable[[dict[str, Any]], bool]


def as_json(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))
