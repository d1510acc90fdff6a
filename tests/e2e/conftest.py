"""Helpers for end-to-end tests through the local API (the `local_stack` fixture)."""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
import requests
from botocore.credentials import Credentials
from fixtures.sandbox import seed_catalogue

from steppay_merchant import SigV4RequestsAuth

SECRET_TOKEN = "sandbox-secret-token"  # the sandbox's documented local default
# The merchant backend's credentials on the local stack (its API accepts only these).
MERCHANT_AUTH = SigV4RequestsAuth("ap-northeast-2", Credentials("local", "local"))
_refs = itertools.count(1)


def new_merchant_ref(prefix: str = "cart") -> str:
    """A merchantRef no other test used (the session shares one table)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}-{next(_refs)}"


PROCESSOR = "WebhookProcessorFunction"


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

    # -- the merchant's backend (SigV4-signed with the local stack's credentials) --
    def backend_post(self, path: str, body: Any, **kwargs: Any) -> requests.Response:
        return self.http.post(
            f"{self.stack.api_url}{path}", json=body, timeout=30, auth=MERCHANT_AUTH, **kwargs
        )

    def backend_get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.http.get(f"{self.stack.api_url}{path}", timeout=30, auth=MERCHANT_AUTH, **kwargs)

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

    def checkout_items(self, kind: str = "one_time", quantity: int = 1, **item: Any) -> list[dict[str, Any]]:
        product, price = self.catalogue()[kind]
        line = {
            "productCode": product["code"],
            "priceCode": price["code"],
            "currency": "KRW",
            "quantity": quantity,
        }
        return [{**line, **item}]

    def checkout_body(self, kind: str = "one_time", **overrides: Any) -> dict[str, Any]:
        """What a merchant's backend registers: the seed customer buys one line of the catalogue."""
        body: dict[str, Any] = {
            "merchantRef": new_merchant_ref(),
            "customerId": self.catalogue()["customer"]["id"],
            "items": self.checkout_items(kind),
            "successUrl": "http://localhost:8080/checkout/success",
            "errorUrl": "http://localhost:8080/checkout/error",
            "cancelUrl": "http://localhost:8080/checkout/cancel",
            "lang": "ko",
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

    # -- what the webhook processor did (the queue, not the table, holds webhooks) --
    def processor_mark(self) -> int:
        """A mark in the processor's log: `processed_webhooks(mark)` shows what came after it."""
        return len(self.stack.logs.lines(PROCESSOR))

    def processed_webhooks(self, since: int) -> list[dict[str, Any]]:
        """The processor's record of each webhook it handled since a mark: event, hint, state, detail."""
        return list(self.stack.logs.records(PROCESSOR, "Webhook processed", since))

    def webhooks_waiting(self) -> int:
        """Webhooks on the queue (new, delayed, or back for a retry after a failed try)."""
        return int(self.stack.queue_depth("WebhookQueue"))

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

    def new_checkout(self, kind: str = "one_time", **overrides: Any) -> dict[str, Any]:
        """Register a checkout as the merchant's backend does; the answer carries the pay link."""
        response = self.backend_post("/checkouts", self.checkout_body(kind, **overrides))
        assert response.status_code == 201, response.text
        return dict(response.json())

    new_pay_link = new_checkout  # the shopper's side of a checkout is its pay link


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
