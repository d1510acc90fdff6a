"""Bad input at every endpoint: a 4xx with a stable code, nothing written, no event, no leak."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from botocore.credentials import Credentials
from e2e.conftest import MERCHANT_AUTH, Shop, error_code, new_merchant_ref, no_leak
from fixtures.sandbox import seed_order_body

from steppay_merchant import SigV4RequestsAuth

pytestmark = pytest.mark.e2e

GOOD_REDIRECTS = {
    "successUrl": "http://localhost:8080/ok",
    "errorUrl": "http://localhost:8080/err",
}


# The merchant's backend's routes: every request to them is SigV4-signed (AWS_IAM).
SIGNED_PATHS = ("/checkouts",)


def _post_raw(
    shop: Shop, path: str, data: bytes, content_type: str = "application/json"
) -> requests.Response:
    return shop.http.post(
        f"{shop.stack.api_url}{path}",
        data=data,
        headers={"Content-Type": content_type},
        timeout=30,
        auth=MERCHANT_AUTH if path in SIGNED_PATHS else None,
    )


def _quiet(shop: Shop) -> None:
    """StepPay's (the sandbox's) webhooks delivered and everything they started done."""
    assert shop.stack.sandbox.wait_for_webhooks(30)
    shop.settle_publisher()


def _assert_refused(
    shop: Shop,
    send: Any,
    status: int,
    code: str,
) -> None:
    """Refused with `code`; nothing written, nothing announced."""
    _quiet(shop)  # what earlier requests caused is not this one's doing
    before = shop.table_snapshot()
    events_before = len(shop.events())
    response = send()
    assert response.status_code == status, response.text
    assert error_code(response) == code
    no_leak(response)
    _quiet(shop)  # and what this one caused (a webhook StepPay sent about it) is
    assert shop.table_snapshot() == before
    assert len(shop.events(max_wait=0.5)) == events_before


BAD_BODIES: list[tuple[str, str, bytes, str, int, str]] = [
    (
        "checkouts malformed JSON",
        "/checkouts",
        b'{"merchantRef": ',
        "application/json",
        400,
        "malformed_json",
    ),
    ("checkouts not an object", "/checkouts", b'["cart-1"]', "application/json", 400, "invalid_request"),
    (
        "checkouts invalid UTF-8",
        "/checkouts",
        b'{"merchantRef": "\xc3\x28"}',
        "application/json",
        400,
        "malformed_json",
    ),
    (
        "checkouts oversize",
        "/checkouts",
        b'{"merchantRef": "' + b"a" * 20000 + b'"}',
        "application/json",
        413,
        "payload_too_large",
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
    ("checkouts text/plain", "/checkouts", b"{}", "text/plain", 415, "unsupported_media_type"),
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
    # A bare number is an order id, never an order code: not looked up.
    ("numeric order code", {"orderCode": "100001"}, 400, "invalid_request"),
]


@pytest.mark.parametrize(("name", "body", "status", "code"), BAD_VERIFY, ids=[b[0] for b in BAD_VERIFY])
def test_bad_verify_requests(shop: Shop, name: str, body: dict[str, Any], status: int, code: str) -> None:
    _assert_refused(shop, lambda: shop.post("/payments/verify", body), status, code)


BAD_CALLBACKS: list[tuple[str, dict[str, str], int, str]] = [
    ("missing order_code", {"status": "success"}, 400, "invalid_request"),
    ("traversal", {"order_code": "../../customers", "status": "success"}, 400, "invalid_request"),
    ("order_id not a number", {"order_code": "order_1", "order_id": "1 OR 1=1"}, 400, "invalid_request"),
    ("unknown order", {"order_code": "order_unknown0000", "status": "success"}, 404, "order_not_found"),
    ("numeric order code", {"order_code": "100001", "status": "success"}, 400, "invalid_request"),
]


@pytest.mark.parametrize(
    ("name", "params", "status", "code"), BAD_CALLBACKS, ids=[b[0] for b in BAD_CALLBACKS]
)
def test_bad_callbacks(shop: Shop, name: str, params: dict[str, str], status: int, code: str) -> None:
    _assert_refused(shop, lambda: shop.get("/payments/callback", params=params), status, code)


def test_orders_the_bundle_did_not_register_are_not_looked_up(shop: Shop) -> None:
    """Verify and callback answer only for registered orders: StepPay is not even asked."""
    created = shop.steppay("POST", "/api/v1/orders", json=_seed_order(shop))
    assert created.status_code == 201, created.text
    code, order_id = created.json()["orderCode"], created.json()["id"]
    shop.control("/faults", {"webhooks": "drop", "count": 100})  # only what this test sends asks
    shop.control(f"/orders/{code}/complete", {"outcome": "success"})
    # Were StepPay asked, these faults would answer 503 (steppay_unavailable), not 404.
    for ref in (code, order_id):
        fault = {"path": f"/api/v1/orders/{ref}", "method": "GET", "status": 503, "count": 1000}
        assert shop.control("/faults", fault).status_code in (200, 201)
    _assert_refused(shop, lambda: shop.post("/payments/verify", {"orderCode": code}), 404, "order_not_found")
    _assert_refused(
        shop,
        lambda: shop.get("/payments/callback", params={"order_code": code, "status": "success"}),
        404,
        "order_not_found",
    )
    faults = shop.http.get(f"{shop.stack.sandbox_url}/_sandbox/faults", timeout=10).json()["faults"]
    assert [f["count"] for f in faults if f.get("kind") == "inbound"] == [1000, 1000], faults
    assert shop.record(code) is None


def _seed_order(shop: Shop) -> dict[str, Any]:
    return seed_order_body(shop.catalogue())


# -- POST /checkouts: the merchant's backend (SigV4-signed) ---------------------------------------


def _steppay_orders(shop: Shop) -> int:
    return int(shop.steppay("GET", "/api/v1/orders", params={"size": 1}).json()["totalElements"])


def _assert_refused_at_steppay_too(shop: Shop, send: Any, status: int, code: str) -> None:
    """Refused, nothing stored, nothing announced, and no order left at StepPay either."""
    before = _steppay_orders(shop)
    _assert_refused(shop, send, status, code)
    assert _steppay_orders(shop) == before


def _bad_checkout_bodies(shop: Shop) -> list[tuple[str, dict[str, Any], int, str]]:
    base = shop.checkout_body()
    item = base["items"][0]
    customer = base["customerId"]
    no_customer = {k: v for k, v in base.items() if k != "customerId"}

    def without(name: str) -> dict[str, Any]:
        return {k: v for k, v in base.items() if k != name}

    def line(**changes: Any) -> dict[str, Any]:
        return {**base, "items": [{**item, **changes}]}

    return [
        ("no merchantRef", without("merchantRef"), 400, "invalid_request"),
        ("empty merchantRef", {**base, "merchantRef": ""}, 400, "invalid_request"),
        ("merchantRef too long", {**base, "merchantRef": "x" * 129}, 400, "invalid_request"),
        ("merchantRef control char", {**base, "merchantRef": "cart\n42"}, 400, "invalid_request"),
        ("merchantRef not a string", {**base, "merchantRef": 42}, 400, "invalid_request"),
        ("no customer", no_customer, 400, "invalid_request"),
        ("two customers", {**base, "customerCode": "customer_x"}, 400, "invalid_request"),
        ("customerId as string", {**base, "customerId": str(customer)}, 400, "invalid_request"),
        ("customerId negative", {**base, "customerId": -1}, 400, "invalid_request"),
        ("customerUuid not a uuid", {**no_customer, "customerUuid": "not-a-uuid"}, 400, "invalid_request"),
        ("no items", without("items"), 400, "invalid_request"),
        ("items empty", {**base, "items": []}, 400, "invalid_request"),
        ("too many items", {**base, "items": [item] * 21}, 400, "invalid_request"),
        ("same line twice", {**base, "items": [item, item]}, 400, "invalid_request"),
        ("quantity as string", line(quantity="1"), 400, "invalid_request"),
        ("quantity zero", line(quantity=0), 400, "invalid_request"),
        ("quantity too big", line(quantity=1001), 400, "invalid_request"),
        ("maxQuantity below quantity", line(quantity=3, maxQuantity=2), 400, "invalid_request"),
        ("currency lower case", line(currency="krw"), 400, "invalid_request"),
        ("priceCode traversal", line(priceCode="../customers"), 400, "invalid_request"),
        ("unknown item field", line(price=1), 400, "invalid_request"),
        ("unknown field", {**base, "amount": 1}, 400, "invalid_request"),
        ("the old pay-url order", {**without("items"), "order": {"items": [item]}}, 400, "invalid_request"),
        ("an order code", {**base, "orderCode": "order_1"}, 400, "invalid_request"),
        ("expectedAmount float", {**base, "expectedAmount": 15000.0}, 400, "invalid_request"),
        ("expectedAmount negative", {**base, "expectedAmount": "-1"}, 400, "invalid_request"),
        ("expiresAt without offset", {**base, "expiresAt": "2030-01-01T00:00:00"}, 400, "invalid_request"),
        ("expiresAt past", {**base, "expiresAt": "2020-01-01T00:00:00+00:00"}, 400, "invalid_request"),
        ("expiresAt too far", {**base, "expiresAt": "2099-01-01T00:00:00+00:00"}, 400, "invalid_request"),
        ("missing successUrl", without("successUrl"), 400, "invalid_request"),
        ("missing errorUrl", without("errorUrl"), 400, "invalid_request"),
        ("bad lang", {**base, "lang": "de"}, 400, "invalid_request"),
        ("too long", {**base, "successUrl": "http://localhost/" + "a" * 2100}, 400, "invalid_request"),
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
    ]


def test_bad_checkout_requests(shop: Shop) -> None:
    for name, body, status, code in _bad_checkout_bodies(shop):
        try:
            _assert_refused_at_steppay_too(
                shop, lambda body=body: shop.backend_post("/checkouts", body), status, code
            )
        except AssertionError as exc:
            raise AssertionError(f"case {name!r}: {exc}") from exc


def test_checkouts_steppay_refuses_store_nothing(shop: Shop) -> None:
    """StepPay is asked, and refuses (or prices otherwise): nothing is stored, the ref stays free."""
    ref = new_merchant_ref()
    unknown_price = shop.checkout_body(merchantRef=ref, items=shop.checkout_items(priceCode="price_nope"))
    _assert_refused(shop, lambda: shop.backend_post("/checkouts", unknown_price), 422, "order_rejected")
    unknown_customer = shop.checkout_body(merchantRef=ref, customerId=987654321)
    response = shop.backend_post("/checkouts", unknown_customer)
    assert response.status_code in (404, 422), response.text
    _assert_refused(
        shop,
        lambda: shop.backend_post("/checkouts", unknown_customer),
        response.status_code,
        error_code(response),
    )
    # StepPay prices the order only once it is created: the bundle cancels that order (nobody is
    # told of it); StepPay's webhooks about it are queued as hints, and record nothing. The bundle
    # writes nothing of its own.
    wrong_total = shop.checkout_body(merchantRef=ref, expectedAmount="14999")
    _assert_refused(
        shop, lambda: shop.backend_post("/checkouts", wrong_total), 422, "expected_amount_mismatch"
    )
    newest = shop.steppay("GET", "/api/v1/orders", params={"size": 1, "sort": "id", "sortDir": "DESC"})
    code = newest.json()["content"][0]["orderCode"]  # the order the refused checkout made
    assert shop.record(code) is None
    order = shop.steppay("GET", f"/api/v1/orders/{code}").json()
    assert order["items"] and {item["status"] for item in order["items"]} == {"CANCELLED"}, order
    # The refusals left the merchantRef free: a correct registration under it succeeds.
    assert shop.backend_post("/checkouts", shop.checkout_body(merchantRef=ref)).status_code == 201


def test_unsigned_or_badly_signed_checkouts_are_403_and_create_nothing(shop: Shop) -> None:
    body = shop.checkout_body()
    url = f"{shop.stack.api_url}/checkouts"
    wrong_secret = SigV4RequestsAuth("ap-northeast-2", Credentials("local", "not-the-secret"))
    wrong_key = SigV4RequestsAuth("ap-northeast-2", Credentials("someone-else", "local"))
    sends = {
        "unsigned": lambda: shop.post("/checkouts", body),
        "wrong secret": lambda: shop.http.post(url, json=body, auth=wrong_secret, timeout=30),
        "wrong access key": lambda: shop.http.post(url, json=body, auth=wrong_key, timeout=30),
        "forged header": lambda: shop.post(
            "/checkouts",
            body,
            headers={
                "Authorization": "AWS4-HMAC-SHA256 Credential=local/20260101/ap-northeast-2/execute-api/"
                "aws4_request, SignedHeaders=host, Signature=" + "0" * 64
            },
        ),
        "signed, body changed after": lambda: _tampered(shop, body),
        "unsigned read": lambda: shop.get("/checkouts", params={"merchantRef": body["merchantRef"]}),
        "unsigned read by id": lambda: shop.get("/checkouts/chk_" + "0" * 32),
    }
    for name, send in sends.items():
        before, orders_before = shop.table_snapshot(), _steppay_orders(shop)
        events_before = len(shop.events())
        response = send()
        assert response.status_code == 403, (name, response.text)
        assert set(response.json()) == {"message"}, (name, response.text)  # API Gateway's own answer
        no_leak(response)
        assert shop.table_snapshot() == before, name
        assert _steppay_orders(shop) == orders_before, name
        shop.settle_publisher()
        assert len(shop.events(max_wait=0.5)) == events_before, name
    # The same body, signed, registers.
    assert shop.backend_post("/checkouts", body).status_code == 201


def _tampered(shop: Shop, body: dict[str, Any]) -> requests.Response:
    request = requests.Request("POST", f"{shop.stack.api_url}/checkouts", json=body).prepare()
    MERCHANT_AUTH(request)
    request.body = request.body.replace(b'"quantity": 1', b'"quantity": 9')  # type: ignore[union-attr]
    request.headers["Content-Length"] = str(len(request.body))  # type: ignore[arg-type]
    return shop.http.send(request, timeout=30)


def test_merchant_ref_and_idempotency_key_conflicts_write_nothing(shop: Shop) -> None:
    first = shop.checkout_body()
    created = shop.backend_post("/checkouts", first)
    assert created.status_code == 201, created.text
    # The same registration again (keys in another order): the same checkout, nothing new.
    before = shop.table_snapshot()
    again = shop.backend_post("/checkouts", dict(reversed(list(first.items()))))
    assert again.status_code == 200, again.text
    assert again.json() == created.json()
    assert shop.table_snapshot() == before
    # Other content under the same merchantRef.
    other = {**first, "items": shop.checkout_items(quantity=2)}
    _assert_refused_at_steppay_too(
        shop, lambda: shop.backend_post("/checkouts", other), 409, "merchant_ref_conflict"
    )
    # An Idempotency-Key reused with another body.
    key = {"Idempotency-Key": f"key-{new_merchant_ref()}"}
    keyed = shop.backend_post("/checkouts", shop.checkout_body(), headers=key)
    assert keyed.status_code == 201, keyed.text
    _assert_refused_at_steppay_too(
        shop,
        lambda: shop.backend_post("/checkouts", shop.checkout_body(), headers=key),
        409,
        "idempotency_key_reused",
    )
    _assert_refused_at_steppay_too(
        shop,
        lambda: shop.backend_post("/checkouts", shop.checkout_body(), headers={"Idempotency-Key": "a b"}),
        400,
        "invalid_request",
    )


def test_bad_checkout_reads(shop: Shop) -> None:
    cases = [
        ("/checkouts/not-a-checkout-id", {}, 400, "invalid_request"),
        ("/checkouts/chk_" + "0" * 32, {}, 404, "checkout_not_found"),
        ("/checkouts", {}, 400, "invalid_request"),
        ("/checkouts", {"merchantRef": "x" * 129}, 400, "invalid_request"),
        ("/checkouts", {"merchantRef": new_merchant_ref()}, 404, "checkout_not_found"),
    ]
    for path, params, status, code in cases:
        _assert_refused(
            shop, lambda path=path, params=params: shop.backend_get(path, params=params), status, code
        )


def test_refused_redirect_creates_no_order_at_steppay(shop: Shop) -> None:
    before = _steppay_orders(shop)
    body = shop.checkout_body(successUrl="https://evil.example/")
    response = shop.backend_post("/checkouts", body)
    assert error_code(response) == "redirect_not_allowed"
    assert _steppay_orders(shop) == before
    assert shop.backend_get("/checkouts", params={"merchantRef": body["merchantRef"]}).status_code == 404


def test_unknown_route_wrong_method_and_the_old_pay_url_route(shop: Shop) -> None:
    assert shop.get("/payments/nope").status_code == 404
    wrong = shop.http.get(f"{shop.stack.api_url}/payments/verify", timeout=10)
    assert wrong.status_code in (404, 405)
    wrong_put = shop.http.put(f"{shop.stack.api_url}/checkouts", json={}, auth=MERCHANT_AUTH, timeout=10)
    assert wrong_put.status_code in (403, 404, 405)
    # The public pay-url route is gone: a browser can no longer decide what is sold.
    before, orders_before = shop.table_snapshot(), _steppay_orders(shop)
    gone = shop.post("/payments/pay-url", {"order": _seed_order(shop), "successUrl": "http://localhost/"})
    assert gone.status_code == 404, gone.text
    assert shop.table_snapshot() == before
    assert _steppay_orders(shop) == orders_before


# A refused registration leaves its Idempotency-Key unbound: nothing is written, and a corrected
# retry under the same key registers.


def _new_key() -> dict[str, str]:
    return {"Idempotency-Key": f"key-{new_merchant_ref()}"}


def test_a_merchant_ref_conflict_with_a_new_idempotency_key_writes_nothing(shop: Shop) -> None:
    taken = shop.new_checkout()
    conflicting = shop.checkout_body(merchantRef=taken["merchantRef"], items=shop.checkout_items(quantity=2))
    _assert_refused_at_steppay_too(
        shop,
        lambda: shop.backend_post("/checkouts", conflicting, headers=_new_key()),
        409,
        "merchant_ref_conflict",
    )


def test_a_registration_steppay_refuses_with_a_new_idempotency_key_writes_nothing(shop: Shop) -> None:
    unknown_price = shop.checkout_body(items=shop.checkout_items(priceCode="price_nope"))
    _assert_refused_at_steppay_too(
        shop,
        lambda: shop.backend_post("/checkouts", unknown_price, headers=_new_key()),
        422,
        "order_rejected",
    )


def test_a_corrected_retry_under_the_same_idempotency_key_registers(shop: Shop) -> None:
    key = _new_key()
    refused = shop.checkout_body(items=shop.checkout_items(priceCode="price_nope"))
    assert shop.backend_post("/checkouts", refused, headers=key).status_code == 422
    corrected = shop.checkout_body(merchantRef=refused["merchantRef"])
    response = shop.backend_post("/checkouts", corrected, headers=key)
    assert response.status_code == 201, response.text
