"""Bad input at every endpoint: a 4xx with a stable code, nothing written, no event, no leak."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from e2e.conftest import Shop, error_code, no_leak

pytestmark = pytest.mark.e2e

GOOD_REDIRECTS = {
    "successUrl": "http://localhost:8080/ok",
    "errorUrl": "http://localhost:8080/err",
}


def _post_raw(
    shop: Shop, path: str, data: bytes, content_type: str = "application/json"
) -> requests.Response:
    return shop.http.post(
        f"{shop.stack.api_url}{path}", data=data, headers={"Content-Type": content_type}, timeout=30
    )


def _assert_refused(shop: Shop, send: Any, status: int, code: str) -> None:
    before = shop.table_snapshot()
    events_before = len(shop.events())
    response = send()
    assert response.status_code == status, response.text
    assert error_code(response) == code
    no_leak(response)
    assert shop.table_snapshot() == before
    shop.settle_publisher()
    assert len(shop.events(max_wait=0.5)) == events_before


BAD_BODIES: list[tuple[str, str, bytes, str, int, str]] = [
    (
        "pay-url malformed JSON",
        "/payments/pay-url",
        b'{"orderCode": ',
        "application/json",
        400,
        "malformed_json",
    ),
    (
        "verify malformed JSON",
        "/payments/verify",
        b"{orderCode: x}",
        "application/json",
        400,
        "malformed_json",
    ),
    ("verify not an object", "/payments/verify", b'["order_1"]', "application/json", 400, "invalid_request"),
    (
        "verify invalid UTF-8",
        "/payments/verify",
        b'{"orderCode": "\xc3\x28"}',
        "application/json",
        400,
        "malformed_json",
    ),
    (
        "verify form-encoded",
        "/payments/verify",
        b"orderCode=order_1",
        "application/x-www-form-urlencoded",
        415,
        "unsupported_media_type",
    ),
    ("pay-url text/plain", "/payments/pay-url", b"{}", "text/plain", 415, "unsupported_media_type"),
    (
        "verify oversize",
        "/payments/verify",
        b'{"orderCode": "' + b"a" * 20000 + b'"}',
        "application/json",
        413,
        "payload_too_large",
    ),
    (
        "verify huge number",
        "/payments/verify",
        b'{"orderCode": "order_1", "orderId": ' + b"9" * 6000 + b"}",
        "application/json",
        400,
        "malformed_json",
    ),
    (
        "verify deep nesting",
        "/payments/verify",
        b'{"orderCode": ' + b"[" * 200 + b"]" * 200 + b"}",
        "application/json",
        400,
        "invalid_request",
    ),
]


@pytest.mark.parametrize(
    ("name", "path", "data", "ctype", "status", "code"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES]
)
def test_unreadable_bodies(
    shop: Shop, name: str, path: str, data: bytes, ctype: str, status: int, code: str
) -> None:
    _assert_refused(shop, lambda: _post_raw(shop, path, data, ctype), status, code)


BAD_VERIFY: list[tuple[str, dict[str, Any], int, str]] = [
    ("missing orderCode", {}, 400, "invalid_request"),
    ("orderCode wrong type", {"orderCode": 123}, 400, "invalid_request"),
    ("orderId wrong type", {"orderCode": "order_1", "orderId": "12"}, 400, "invalid_request"),
    ("orderId negative", {"orderCode": "order_1", "orderId": -5}, 400, "invalid_request"),
    ("orderId beyond int64", {"orderCode": "order_1", "orderId": 2**64}, 400, "invalid_request"),
    ("unknown field", {"orderCode": "order_1", "amount": 1}, 400, "invalid_request"),
    ("path traversal", {"orderCode": "../customers"}, 400, "invalid_request"),
    ("query injection", {"orderCode": "a/b?x=1"}, 400, "invalid_request"),
    ("encoded traversal", {"orderCode": "%2e%2e%2fcustomers"}, 400, "invalid_request"),
    ("empty code", {"orderCode": ""}, 400, "invalid_request"),
    ("CRLF in code", {"orderCode": "order_1\r\nX-Injected: 1"}, 400, "invalid_request"),
    (
        "status injection",
        {"orderCode": "order_1", "status": "success\r\nSet-Cookie: a=b"},
        400,
        "invalid_request",
    ),
    ("unknown order", {"orderCode": "order_unknown0000"}, 404, "order_not_found"),
]


@pytest.mark.parametrize(("name", "body", "status", "code"), BAD_VERIFY, ids=[b[0] for b in BAD_VERIFY])
def test_bad_verify_requests(shop: Shop, name: str, body: dict[str, Any], status: int, code: str) -> None:
    _assert_refused(shop, lambda: shop.post("/payments/verify", body), status, code)


BAD_CALLBACKS: list[tuple[str, dict[str, str], int, str]] = [
    ("missing order_code", {"status": "success"}, 400, "invalid_request"),
    ("traversal", {"order_code": "../../customers", "status": "success"}, 400, "invalid_request"),
    ("order_id not a number", {"order_code": "order_1", "order_id": "1 OR 1=1"}, 400, "invalid_request"),
    ("unknown order", {"order_code": "order_unknown0000", "status": "success"}, 404, "order_not_found"),
]


@pytest.mark.parametrize(
    ("name", "params", "status", "code"), BAD_CALLBACKS, ids=[b[0] for b in BAD_CALLBACKS]
)
def test_bad_callbacks(shop: Shop, name: str, params: dict[str, str], status: int, code: str) -> None:
    _assert_refused(shop, lambda: shop.get("/payments/callback", params=params), status, code)


def _bad_pay_url_bodies(shop: Shop) -> list[tuple[str, dict[str, Any], int, str]]:
    order = shop.order_body()
    base = {"order": order, **GOOD_REDIRECTS}
    return [
        ("neither order nor code", {**GOOD_REDIRECTS}, 400, "invalid_request"),
        ("both order and code", {**base, "orderCode": "order_1"}, 400, "invalid_request"),
        (
            "missing successUrl",
            {"order": order, "errorUrl": GOOD_REDIRECTS["errorUrl"]},
            400,
            "invalid_request",
        ),
        ("items empty", {**base, "order": {**order, "items": []}}, 400, "invalid_request"),
        ("no customer", {**base, "order": {"items": order["items"]}}, 400, "invalid_request"),
        (
            "quantity as string",
            {**base, "order": {**order, "items": [{**order["items"][0], "minimumQuantity": "1"}]}},
            400,
            "invalid_request",
        ),
        ("merchantRef too long", {**base, "merchantRef": "x" * 129}, 400, "invalid_request"),
        ("bad lang", {**base, "lang": "de"}, 400, "invalid_request"),
        ("code traversal", {"orderCode": "../customers", **GOOD_REDIRECTS}, 400, "invalid_request"),
        ("unknown order code", {"orderCode": "order_unknown0000", **GOOD_REDIRECTS}, 404, "order_not_found"),
        (
            "unknown price",
            {**base, "order": {**order, "items": [{**order["items"][0], "priceCode": "price_nope"}]}},
            422,
            "order_rejected",
        ),
        (
            "success to other host",
            {**base, "successUrl": "https://evil.example/"},
            400,
            "redirect_not_allowed",
        ),
        ("error javascript:", {**base, "errorUrl": "javascript:alert(1)"}, 400, "redirect_not_allowed"),
        ("cancel protocol-relative", {**base, "cancelUrl": "//evil.example/x"}, 400, "redirect_not_allowed"),
        (
            "userinfo trick",
            {**base, "successUrl": "http://localhost@evil.example/"},
            400,
            "redirect_not_allowed",
        ),
        (
            "backslash trick",
            {**base, "successUrl": "http://localhost\\@evil.example/"},
            400,
            "redirect_not_allowed",
        ),
        ("too long", {**base, "successUrl": "http://localhost/" + "a" * 2100}, 400, "invalid_request"),
    ]


def test_bad_pay_url_requests(shop: Shop) -> None:
    cases = _bad_pay_url_bodies(shop)
    for name, body, status, code in cases:
        try:
            _assert_refused(shop, lambda body=body: shop.post("/payments/pay-url", body), status, code)
        except AssertionError as exc:
            raise AssertionError(f"case {name!r}: {exc}") from exc
    # No order may have been created at StepPay for a refused redirect either.


def test_refused_redirect_creates_no_order_at_steppay(shop: Shop) -> None:
    before = shop.steppay("GET", "/api/v1/orders", params={"size": 1}).json()["totalElements"]
    body = shop.pay_url_body(successUrl="https://evil.example/")
    response = shop.post("/payments/pay-url", body)
    assert error_code(response) == "redirect_not_allowed"
    after = shop.steppay("GET", "/api/v1/orders", params={"size": 1}).json()["totalElements"]
    assert after == before


def test_unknown_route_and_wrong_method(shop: Shop) -> None:
    assert shop.get("/payments/nope").status_code == 404
    wrong = shop.http.get(f"{shop.stack.api_url}/payments/verify", timeout=10)
    assert wrong.status_code in (404, 405)
    wrong_put = shop.http.put(f"{shop.stack.api_url}/payments/pay-url", json={}, timeout=10)
    assert wrong_put.status_code in (404, 405)
