"""Checkouts registered as the merchant's backend does (`POST /checkouts`, SigV4-signed), for the
fault and load suites' harness.

Only an order the bundle registered is verified, recorded and announced: a pay link is now the
answer to a registration, never an order made at StepPay directly.
"""

from __future__ import annotations

import uuid
from typing import Any

from botocore.credentials import Credentials
from hostile.harness import REGION, Harness

from steppay_merchant import SigV4RequestsAuth

# The local stack's API accepts the merchant backend's requests signed with these (dummy) keys.
MERCHANT_AUTH = SigV4RequestsAuth(REGION, Credentials("local", "local"))


def checkout_body(h: Harness, kind: str = "one_time", **overrides: Any) -> dict[str, Any]:
    """One line of the sandbox's seed catalogue, for its seed customer, under a fresh merchantRef."""
    catalogue = h.catalogue()
    product, price = catalogue[kind]
    body: dict[str, Any] = {
        "merchantRef": f"ref-{uuid.uuid4().hex[:12]}",
        "customerId": catalogue["customer"]["id"],
        "items": [
            {"productCode": product["code"], "priceCode": price["code"], "currency": "KRW", "quantity": 1}
        ],
        "successUrl": "http://localhost:8080/ok",
        "errorUrl": "http://localhost:8080/err",
    }
    body.update(overrides)
    return body


def pay_link(h: Harness, kind: str = "one_time", **overrides: Any) -> dict[str, Any]:
    """A checkout registered through the bundle (so a PENDING record with its registration exists)."""
    response = h.request("POST", "/checkouts", json=checkout_body(h, kind, **overrides), auth=MERCHANT_AUTH)
    assert response.status_code == 201, response.text
    return dict(response.json())


def checkout_view(h: Harness, checkout_id: str) -> dict[str, Any]:
    response = h.request("GET", f"/checkouts/{checkout_id}", auth=MERCHANT_AUTH)
    assert response.status_code == 200, response.text
    return dict(response.json())
