"""Hostile input against the running local stack, over HTTP.

Every case asserts the exact status and stable error code (or, for answers that are not
refusals, the exact harmless outcome), that the answer shows no trace, secret or internal
detail, that no record was written (every item of every table compared, and StepPay's order
count), and that no event reached the tap. Webhooks that StepPay could legitimately have sent
(unsigned v1, validly signed v2) are acknowledged and kept, as designed: for those only the
stored webhook itself may appear, and its processing must change nothing else.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from hostile.harness import WEBHOOK_KEY, Harness, begin, compact, finish, plain, sign, steppay_order_count

pytestmark = [pytest.mark.e2e, pytest.mark.leaves_settled]

SUITE = "hostile input"
RESULT_PAGE_NETLOC = "127.0.0.1:8080"  # the local stack's default RESULT_PAGE_URL
GOOD = {"successUrl": "http://localhost:8080/ok", "errorUrl": "http://localhost:8080/err"}
UNKNOWN_ID = 987_654_321_012

Send = Callable[[Harness, Any], requests.Response]


@dataclass(frozen=True)
class Attack:
    id: str
    send: Send
    status: int
    code: str | None = None  # the error code; None when the answer is not an error envelope
    setup: Callable[[Harness], Any] | None = None
    check: Callable[[Harness, Any, requests.Response], None] | None = None  # more on the answer
    after: Callable[[Harness, Any], None] | None = None  # once everything has settled
    stores_webhook: bool = False  # an acknowledged webhook: only WEBHOOK# items may appear
    body: dict[str, Any] | None = field(default=None)  # a gateway answer's exact body


# -- set-ups ------------------------------------------------------------------------------


def unpaid(h: Harness) -> dict[str, Any]:
    return h.shared("unpaid", lambda h: h.pay_link())


def paid_unrecorded(h: Harness) -> dict[str, Any]:
    return h.shared("paid unrecorded", _paid_unrecorded)


def _paid_unrecorded(h: Harness) -> dict[str, Any]:
    """Paid at StepPay, but the bundle was told nothing: still PENDING here."""
    link = h.pay_link()
    with h.webhooks_off():
        h.complete(link["orderCode"])
    assert h.record(link["orderCode"])["state"] == "PENDING"  # type: ignore[index]
    return link


def paid_and_recorded(h: Harness) -> dict[str, Any]:
    link = h.pay_link()
    h.complete(link["orderCode"])
    return link


def failed_payment(h: Harness) -> dict[str, Any]:
    def make(h: Harness) -> dict[str, Any]:
        link = h.pay_link()
        h.complete(link["orderCode"], "failure")
        return link

    return h.shared("failed payment", make)


def foreign_paid(h: Harness) -> dict[str, Any]:
    """An order the bundle never issued, paid at StepPay, not announced to us."""

    def make(h: Harness) -> dict[str, Any]:
        order = h.steppay_order()
        with h.webhooks_off():
            h.complete(order["orderCode"])
        return order

    return h.shared("foreign paid", make)


def foreign_unpaid(h: Harness) -> dict[str, Any]:
    return h.shared("foreign unpaid", lambda h: h.steppay_order())


def tampered(field_name: str, value: Any) -> Callable[[Harness], dict[str, Any]]:
    """Paid at StepPay, but what we ordered (the stored PENDING record) disagrees with it."""

    def setup(h: Harness) -> dict[str, Any]:
        link = h.pay_link()
        h.table().update_item(
            Key={"pk": f"ORDER#{link['orderCode']}", "sk": "ORDER"},
            UpdateExpression="SET #f = :v",
            ExpressionAttributeNames={"#f": field_name},
            ExpressionAttributeValues={":v": value},
        )
        h.complete(link["orderCode"])
        return link

    return setup


def delivered_once(body: Callable[[Harness, Any], dict[str, Any]], setup: Callable[[Harness], Any]) -> Any:
    def run(h: Harness) -> Any:
        ctx = setup(h)
        first = h.signed_webhook(body(h, ctx))
        assert first.status_code == 200, first.text
        return ctx

    return run


# -- senders ------------------------------------------------------------------------------


def callback(**params: Any) -> Send:
    def send(h: Harness, ctx: Any) -> requests.Response:
        resolved = {k: (v(ctx) if callable(v) else v) for k, v in params.items()}
        return h.request("GET", "/payments/callback", params=resolved)

    return send


def callback_raw(query: str, **headers: str) -> Send:
    def send(h: Harness, ctx: Any) -> requests.Response:
        return h.request("GET", f"/payments/callback?{query.format(ctx=ctx)}", headers=headers)

    return send


def verify(body: Any) -> Send:
    def send(h: Harness, ctx: Any) -> requests.Response:
        return h.post("/payments/verify", body(ctx) if callable(body) else body)

    return send


def raw(path: str, data: bytes, content_type: str | None = "application/json", **headers: str) -> Send:
    def send(h: Harness, ctx: Any) -> requests.Response:
        return h.post_raw(path, data, content_type, **headers)

    return send


def method(verb: str, path: str) -> Send:
    def send(h: Harness, ctx: Any) -> requests.Response:
        return h.request(verb, path, data=b"{}", headers={"Content-Type": "application/json"})

    return send


def pay_url(**overrides: Any) -> Send:
    def send(h: Harness, ctx: Any) -> requests.Response:
        body: dict[str, Any] = {"order": h.order_body(), **GOOD, "merchantRef": "hostile"}
        for key, value in overrides.items():
            if value is None:
                body.pop(key, None)
            else:
                body[key] = value(h) if callable(value) else value
        return h.post("/payments/pay-url", body)

    return send


def paid_claim(ctx: dict[str, Any], **data: Any) -> dict[str, Any]:
    """A v2 `order.payment_completed` claiming the order is paid (what a forger would send)."""
    return {
        "timestamp": int(time.time()),
        "version": "v1",
        "event": "order.payment_completed",
        "data": {
            "id": ctx["orderId"],
            "code": ctx["orderCode"],
            "paidAmount": 15000,
            "paymentDate": "2026-11-26T10:00:00",
            **data,
        },
    }


def v2(
    signature: Callable[[bytes, int], str | None], body_after: Callable[[bytes], bytes] | None = None
) -> Send:
    """Send a forged paid claim for the set-up order with the given signature header."""

    def send(h: Harness, ctx: Any) -> requests.Response:
        body = compact(paid_claim(ctx))
        header = signature(body, int(time.time()))
        sent = body_after(body) if body_after else body
        return h.webhook(sent, header)

    return send


def v2_signed(body: Callable[[Harness, Any], dict[str, Any]]) -> Send:
    def send(h: Harness, ctx: Any) -> requests.Response:
        return h.signed_webhook(body(h, ctx))

    return send


def v1(body: Callable[[Any], Any] | dict[str, Any]) -> Send:
    def send(h: Harness, ctx: Any) -> requests.Response:
        value = body(ctx) if callable(body) else body
        return h.webhook(compact(value))

    return send


# -- checks -------------------------------------------------------------------------------


def redirected_to_result(result: str) -> Callable[[Harness, Any, requests.Response], None]:
    def check(h: Harness, ctx: Any, response: requests.Response) -> None:
        location = urlsplit(response.headers["Location"])
        assert location.netloc == RESULT_PAGE_NETLOC, location
        query = parse_qs(location.query)
        assert query["result"] == [result], query
        assert "evil" not in response.headers["Location"]
        assert "set-cookie" not in {k.lower() for k in response.headers}

    return check


def verdict(expected: str) -> Callable[[Harness, Any, requests.Response], None]:
    def check(h: Harness, ctx: Any, response: requests.Response) -> None:
        body = response.json()
        assert body["verdict"] == expected, body
        assert body["verified"] is False

    return check


def acknowledged(duplicate: bool = False) -> Callable[[Harness, Any, requests.Response], None]:
    def check(h: Harness, ctx: Any, response: requests.Response) -> None:
        assert response.json() == {"received": True, "duplicate": duplicate}

    return check


def webhook_settled(state: str, detail: str | None = None) -> Callable[[Harness, Any], None]:
    """The stored webhook was processed once, to `state`, and is not left for a retry."""

    def after(h: Harness, ctx: Any) -> None:
        mine = [plain(item) for item in h.items() if item.get("pk") in h.last_webhook_keys]
        assert mine, "the acknowledged webhook was stored"
        for item in mine:
            assert item["state"] == state, item
            if detail is not None:
                assert detail in item.get("outcome", ""), item

    return after


def not_paid(h: Harness, ctx: Any) -> None:
    record = h.record(ctx["orderCode"])
    assert record is None or record["state"] != "PAID", record


def no_set_cookie(h: Harness, ctx: Any, response: requests.Response) -> None:
    assert "set-cookie" not in {k.lower() for k in response.headers}


def no_cors_grant(h: Harness, ctx: Any, response: requests.Response) -> None:
    assert "access-control-allow-origin" not in {k.lower() for k in response.headers}


# -- the cases ----------------------------------------------------------------------------

SIGNATURES: list[Attack] = [
    Attack("v2 signature missing", v2(lambda b, t: None), 401, "signature_missing", unpaid),
    Attack("v2 signature empty", v2(lambda b, t: ""), 401, "signature_missing", unpaid),
    Attack("v2 signature garbage", v2(lambda b, t: "garbage"), 401, "signature_malformed", unpaid),
    Attack("v2 signature without key", v2(lambda b, t: f"timestamp={t}"), 401, "signature_malformed", unpaid),
    Attack(
        "v2 signature timestamp not a number",
        v2(lambda b, t: sign(b, WEBHOOK_KEY, t).replace(f"timestamp={t}", "timestamp=now")),
        401,
        "signature_malformed",
        unpaid,
    ),
    Attack(
        "v2 signature key not base64",
        v2(lambda b, t: f"timestamp={t},key=%%%not-base64%%%"),
        401,
        "signature_malformed",
        unpaid,
    ),
    Attack(
        "v2 signature repeated parts",
        v2(lambda b, t: f"{sign(b, WEBHOOK_KEY, t)},timestamp={t}"),
        401,
        "signature_malformed",
        unpaid,
    ),
    Attack(
        "v2 signature lists too many keys",
        v2(lambda b, t: sign(b, WEBHOOK_KEY, t) + ";AAAA" * 9),
        401,
        "signature_malformed",
        unpaid,
    ),
    Attack(
        "v2 signature header oversized",
        v2(lambda b, t: sign(b, WEBHOOK_KEY, t) + ",pad=" + "x" * 5000),
        401,
        "signature_malformed",
        unpaid,
    ),
    Attack(
        "v2 signature with a wrong key",
        v2(lambda b, t: sign(b, "not-the-key", t)),
        401,
        "signature_mismatch",
        unpaid,
    ),
    Attack(
        "v2 signature stale (an hour old)",
        v2(lambda b, t: sign(b, WEBHOOK_KEY, t - 3600)),
        401,
        "signature_stale",
        unpaid,
    ),
    Attack(
        "v2 signature future-dated (an hour ahead)",
        v2(lambda b, t: sign(b, WEBHOOK_KEY, t + 3600)),
        401,
        "signature_stale",
        unpaid,
    ),
    Attack(
        "v2 signature replayed from another body",
        v2(lambda b, t: sign(b.replace(b"order.payment_completed", b"order.created"), WEBHOOK_KEY, t)),
        401,
        "signature_mismatch",
        unpaid,
    ),
    Attack(
        "v2 valid signature, amount modified afterwards",
        v2(
            lambda b, t: sign(b, WEBHOOK_KEY, t),
            lambda b: b.replace(b'"paidAmount":15000', b'"paidAmount":1'),
        ),
        401,
        "signature_mismatch",
        unpaid,
    ),
    Attack(
        "v2 valid signature, whitespace appended afterwards",
        v2(lambda b, t: sign(b, WEBHOOK_KEY, t), lambda b: b + b" "),
        401,
        "signature_mismatch",
        unpaid,
    ),
    Attack(
        "v2 valid signature re-serialised body",
        v2(lambda b, t: sign(b, WEBHOOK_KEY, t), lambda b: json.dumps(json.loads(b), indent=1).encode()),
        401,
        "signature_mismatch",
        unpaid,
    ),
    Attack(
        "v2 validly signed claim for an unpaid order",
        v2_signed(lambda h, ctx: paid_claim(ctx)),
        200,
        setup=unpaid,
        check=acknowledged(),
        after=webhook_settled("PROCESSED", "NOT_PAID"),
        stores_webhook=True,
    ),
    Attack(
        "v2 exact replay within the tolerance",
        v2_signed(lambda h, ctx: paid_claim(ctx)),
        200,
        setup=delivered_once(lambda h, ctx: paid_claim(ctx), unpaid),
        check=acknowledged(duplicate=True),
        stores_webhook=True,
    ),
    Attack(
        "v2 signed claim with a traversal order code",
        v2_signed(lambda h, ctx: paid_claim(ctx, code="../customers", id="../customers")),
        200,
        setup=unpaid,
        check=acknowledged(),
        after=webhook_settled("REJECTED"),
        stores_webhook=True,
    ),
    Attack(
        "v2 signed claim with an object as order code",
        v2_signed(lambda h, ctx: paid_claim(ctx, code={"$ne": None}, id={"$gt": 0})),
        200,
        setup=unpaid,
        check=acknowledged(),
        after=webhook_settled("REJECTED"),
        stores_webhook=True,
    ),
    Attack(
        "v2 signed payment.completed naming an unknown order",
        v2_signed(
            lambda h, ctx: {
                "timestamp": int(time.time()),
                "version": "v1",
                "event": "payment.completed",
                "data": {"orderId": UNKNOWN_ID, "amount": 15000},
            }
        ),
        200,
        check=acknowledged(),
        after=webhook_settled("REJECTED"),
        stores_webhook=True,
    ),
]

V1: list[Attack] = [
    Attack(
        "v1 payment naming an unpaid order",
        v1(lambda ctx: {"webHookType": "PAYMENT", "orderId": ctx["orderId"]}),
        200,
        setup=unpaid,
        check=acknowledged(),
        after=webhook_settled("PROCESSED", "NOT_PAID"),
        stores_webhook=True,
    ),
    Attack(
        "v1 payment naming an unknown order",
        v1({"webHookType": "PAYMENT", "orderId": UNKNOWN_ID}),
        200,
        check=acknowledged(),
        after=webhook_settled("REJECTED"),
        stores_webhook=True,
    ),
    Attack(
        "v1 payment naming a foreign unpaid order",
        v1(lambda ctx: {"webHookType": "PAYMENT", "orderId": ctx["orderId"]}),
        200,
        setup=foreign_unpaid,
        check=acknowledged(),
        after=webhook_settled("PROCESSED", "NOT_PAID"),
        stores_webhook=True,
    ),
    Attack(
        "v1 payment naming a failed payment",
        v1(lambda ctx: {"webHookType": "PAYMENT", "orderId": ctx["orderId"]}),
        200,
        setup=failed_payment,
        check=acknowledged(),
        after=webhook_settled("PROCESSED", "FAILED"),
        stores_webhook=True,
    ),
    Attack(
        "v1 status of an unknown subscription",
        v1({"id": UNKNOWN_ID, "status": "ACTIVE"}),
        200,
        check=acknowledged(),
        after=webhook_settled("REJECTED"),
        stores_webhook=True,
    ),
    Attack(
        "v1 order id as a string", v1({"webHookType": "PAYMENT", "orderId": "100001"}), 400, "invalid_webhook"
    ),
    Attack(
        "v1 order id traversal", v1({"webHookType": "PAYMENT", "orderId": "../1"}), 400, "invalid_webhook"
    ),
    Attack("v1 order id zero", v1({"webHookType": "PAYMENT", "orderId": 0}), 400, "invalid_webhook"),
    Attack("v1 order id negative", v1({"webHookType": "PAYMENT", "orderId": -7}), 400, "invalid_webhook"),
    Attack(
        "v1 order id beyond int64", v1({"webHookType": "PAYMENT", "orderId": 2**63}), 400, "invalid_webhook"
    ),
    Attack("v1 order id float", v1({"webHookType": "PAYMENT", "orderId": 100001.5}), 400, "invalid_webhook"),
    Attack("v1 order id boolean", v1({"webHookType": "PAYMENT", "orderId": True}), 400, "invalid_webhook"),
    Attack("v1 type with CRLF", v1({"webHookType": "PAYMENT\r\nX: 1", "orderId": 1}), 400, "invalid_webhook"),
    Attack("v1 type non-ASCII", v1({"webHookType": "PAYMENTé", "orderId": 1}), 400, "invalid_webhook"),
    Attack("v1 subscription id as text", v1({"id": "../1", "status": "ACTIVE"}), 400, "invalid_webhook"),
    Attack("not a StepPay webhook", v1({"hello": "world"}), 400, "invalid_webhook"),
]

CALLBACKS: list[Attack] = [
    Attack(
        "callback status=success for an unpaid order",
        callback(order_code=lambda c: c["orderCode"], order_id=lambda c: c["orderId"], status="success"),
        303,
        setup=unpaid,
        check=redirected_to_result("pending"),
    ),
    Attack(
        "callback with a mismatched order_id for a paid order",
        callback(order_code=lambda c: c["orderCode"], order_id=lambda c: c["orderId"] + 7, status="success"),
        303,
        setup=paid_unrecorded,
        check=redirected_to_result("failed"),
    ),
    Attack(
        "callback for an unknown order code",
        callback(order_code=f"order_{uuid.uuid4().hex[:10]}", status="success"),
        404,
        "order_not_found",
    ),
    Attack(
        "callback naming another paid order by its id",
        callback(order_code=lambda c: str(c["orderId"]), status="success"),
        303,
        setup=foreign_paid,
        check=redirected_to_result("failed"),
    ),
    Attack(
        "callback status=success for a failed payment",
        callback(order_code=lambda c: c["orderCode"], status="success"),
        303,
        setup=failed_payment,
        check=redirected_to_result("failed"),
    ),
    Attack(
        "callback with injected redirect parameters",
        callback_raw(
            "order_code={ctx[orderCode]}&status=success&successUrl=https://evil.example/"
            "&redirect_uri=https://evil.example/&next=//evil.example&returnUrl=javascript:alert(1)"
        ),
        303,
        setup=unpaid,
        check=redirected_to_result("pending"),
    ),
    Attack(
        "callback with a forged Host header",
        callback_raw(
            "order_code={ctx[orderCode]}&status=success",
            Host="evil.example",
            **{"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"},
        ),
        303,
        setup=unpaid,
        check=redirected_to_result("pending"),
    ),
    Attack(
        "callback header injection in order_code",
        callback_raw("order_code=order_1%0d%0aSet-Cookie:%20session=evil&status=success"),
        400,
        "invalid_request",
        check=no_set_cookie,
    ),
    Attack(
        "callback header injection in status",
        callback_raw("order_code=order_1&status=success%0d%0aLocation:%20https://evil.example"),
        400,
        "invalid_request",
        check=no_set_cookie,
    ),
    Attack(
        "callback status with a trailing newline",
        callback_raw("order_code=order_1&status=success%0a"),
        400,
        "invalid_request",
    ),
    Attack(
        "callback traversal", callback(order_code="../../customers", status="success"), 400, "invalid_request"
    ),
    Attack(
        "callback double-encoded traversal",
        callback_raw("order_code=..%252f..%252fcustomers&status=success"),
        400,
        "invalid_request",
    ),
    Attack(
        "callback order_id injection",
        callback(order_code="order_1", order_id="1 OR 1=1"),
        400,
        "invalid_request",
    ),
    Attack("callback without parameters", callback(), 400, "invalid_request"),
]

VERIFY: list[Attack] = [
    Attack(
        "verify claims success for an unpaid order",
        verify(lambda c: {"orderCode": c["orderCode"], "orderId": c["orderId"], "status": "success"}),
        200,
        setup=unpaid,
        check=verdict("NOT_PAID"),
    ),
    Attack(
        "verify with a mismatched order id",
        verify(lambda c: {"orderCode": c["orderCode"], "orderId": c["orderId"] + 7, "status": "success"}),
        200,
        setup=paid_unrecorded,
        check=verdict("MISMATCH"),
    ),
    Attack("verify unknown order", verify({"orderCode": "order_zz9ghost00"}), 404, "order_not_found"),
    Attack(
        "verify with a client-supplied amount",
        verify(lambda c: {"orderCode": c["orderCode"], "amount": 1}),
        400,
        "invalid_request",
        setup=paid_unrecorded,
    ),
    Attack(
        "verify with a client-supplied verdict",
        verify(lambda c: {"orderCode": c["orderCode"], "verified": True, "verdict": "PAID"}),
        400,
        "invalid_request",
        setup=unpaid,
    ),
    Attack("verify traversal", verify({"orderCode": "../customers"}), 400, "invalid_request"),
    Attack("verify query injection", verify({"orderCode": "a/b?x=1"}), 400, "invalid_request"),
    Attack("verify encoded traversal", verify({"orderCode": "%2e%2e%2fcustomers"}), 400, "invalid_request"),
    Attack("verify CRLF", verify({"orderCode": "order_1\r\nX-Injected: 1"}), 400, "invalid_request"),
    Attack("verify SQL injection", verify({"orderCode": "order_1' OR '1'='1"}), 400, "invalid_request"),
    Attack("verify NoSQL operator", verify({"orderCode": {"$ne": None}}), 400, "invalid_request"),
    Attack("verify non-ASCII digits", verify({"orderCode": "١٢٣٤٥"}), 400, "invalid_request"),
    Attack("verify trailing newline", verify({"orderCode": "order_1\n"}), 400, "invalid_request"),
    Attack("verify NUL byte", verify({"orderCode": "order_1\u0000"}), 400, "invalid_request"),
    Attack(
        "verify order id as text", verify({"orderCode": "order_1", "orderId": "12"}), 400, "invalid_request"
    ),
    Attack(
        "verify order id negative", verify({"orderCode": "order_1", "orderId": -1}), 400, "invalid_request"
    ),
    Attack(
        "verify order id beyond int64",
        verify({"orderCode": "order_1", "orderId": 2**64}),
        400,
        "invalid_request",
    ),
    Attack("verify order id float", verify({"orderCode": "order_1", "orderId": 1.5}), 400, "invalid_request"),
    Attack(
        "verify order id boolean", verify({"orderCode": "order_1", "orderId": True}), 400, "invalid_request"
    ),
    Attack(
        "verify order id NaN",
        raw("/payments/verify", b'{"orderCode": "order_1", "orderId": NaN}'),
        400,
        "invalid_request",
    ),
    Attack(
        "verify duplicate keys",
        raw("/payments/verify", b'{"orderCode": "order_1", "orderCode": "../customers"}'),
        400,
        "invalid_request",
    ),
]

AMOUNTS: list[Attack] = [
    Attack(
        "verify when the paid amount disagrees with the order",
        verify(lambda c: {"orderCode": c["orderCode"]}),
        200,
        setup=tampered("amount", Decimal(1000)),
        check=verdict("MISMATCH"),
        after=not_paid,
    ),
    Attack(
        "verify when the currency disagrees with the order",
        verify(lambda c: {"orderCode": c["orderCode"]}),
        200,
        setup=tampered("currency", "USD"),
        check=verdict("MISMATCH"),
        after=not_paid,
    ),
    Attack(
        "callback when the paid amount disagrees with the order",
        callback(order_code=lambda c: c["orderCode"], status="success"),
        303,
        setup=tampered("amount", Decimal(990)),
        check=redirected_to_result("failed"),
        after=not_paid,
    ),
    Attack(
        "signed webhook when the paid amount disagrees with the order",
        v2_signed(lambda h, ctx: paid_claim(ctx)),
        200,
        setup=tampered("amount", Decimal(2)),
        check=acknowledged(),
        after=lambda h, ctx: (not_paid(h, ctx), webhook_settled("PROCESSED", "MISMATCH")(h, ctx)),
        stores_webhook=True,
    ),
]

PAY_URL: list[Attack] = [
    Attack(
        "pay-url order code traversal", pay_url(order=None, orderCode="../customers"), 400, "invalid_request"
    ),
    Attack(
        "pay-url order code path injection",
        pay_url(order=None, orderCode="order_1/../../customers"),
        400,
        "invalid_request",
    ),
    Attack(
        "pay-url customer id as text",
        pay_url(order=lambda h: {**h.order_body(), "customerId": "../1"}),
        400,
        "invalid_request",
    ),
    Attack(
        "pay-url customer code traversal",
        pay_url(order=lambda h: {"customerCode": "../../admin", "items": h.order_body()["items"]}),
        400,
        "invalid_request",
    ),
    Attack(
        "pay-url product code injection",
        pay_url(
            order=lambda h: {
                **h.order_body(),
                "items": [{**h.order_body()["items"][0], "productCode": "../../products?x=1"}],
            }
        ),
        400,
        "invalid_request",
    ),
    Attack(
        "pay-url currency with CRLF",
        pay_url(
            order=lambda h: {
                **h.order_body(),
                "items": [{**h.order_body()["items"][0], "currency": "KRW\r\n"}],
            }
        ),
        400,
        "invalid_request",
    ),
    Attack(
        "pay-url merchantRef with CRLF",
        pay_url(merchantRef="cart\r\nSet-Cookie: a=b"),
        400,
        "invalid_request",
    ),
    Attack(
        "pay-url for an already paid order",
        lambda h, ctx: h.post("/payments/pay-url", {"orderCode": ctx["orderCode"], **GOOD}),
        409,
        "order_already_paid",
        setup=paid_and_recorded,
    ),
]

METHODS: list[Attack] = [
    Attack(f"{verb} {path}", method(verb, path), 404, body={"message": "Not Found"})
    for verb, path in [
        ("GET", "/payments/pay-url"),
        ("PUT", "/payments/pay-url"),
        ("GET", "/payments/verify"),
        ("DELETE", "/payments/verify"),
        ("POST", "/payments/callback"),
        ("GET", "/webhooks/steppay"),
        ("PATCH", "/webhooks/steppay"),
    ]
] + [
    Attack(
        "CORS preflight from a foreign origin",
        lambda h, ctx: h.request(
            "OPTIONS",
            "/payments/verify",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        ),
        204,
        check=no_cors_grant,
    ),
    Attack(
        "request from a foreign origin",
        lambda h, ctx: h.request(
            "POST",
            "/payments/verify",
            json={"orderCode": "order_1"},
            headers={"Origin": "https://evil.example"},
        ),
        404,
        "order_not_found",
        check=no_cors_grant,
    ),
]

ATTACKS = SIGNATURES + V1 + CALLBACKS + VERIFY + AMOUNTS + PAY_URL + METHODS
SHARED_SETUPS = (None, unpaid, paid_unrecorded, failed_payment, foreign_paid, foreign_unpaid)


def run_attack(h: Harness, attack: Attack) -> None:
    shared_before = len(h.fixtures)
    ctx = attack.setup(h) if attack.setup else None
    if attack.setup not in SHARED_SETUPS or len(h.fixtures) != shared_before or h.dirty:
        # The set-up did something: let it finish and take its events out of the way. (A case
        # without new set-up starts from the settled, drained state the previous case left.)
        h.settle()
        h.read_events()
    h.dirty = True
    events_before = len(h.events)
    before = h.snapshot()
    orders_before = steppay_order_count(h)

    response = attack.send(h, ctx)

    if attack.code is not None:
        h.assert_error(response, attack.status, attack.code)
    else:
        assert response.status_code == attack.status, f"{response.status_code} {response.text[:300]}"
        h.assert_no_leak(response)
        if attack.body is not None:
            assert response.json() == attack.body
    if attack.check is not None:
        attack.check(h, ctx, response)
    h.settle()
    after = h.snapshot()
    changed = {key for key in set(before) | set(after) if before.get(key) != after.get(key)}
    h.last_webhook_keys = {key.split(":", 2)[1] for key in changed if ":WEBHOOK#" in key}
    if attack.stores_webhook:
        changed = {key for key in changed if ":WEBHOOK#" not in key}
    assert not changed, f"records written: {sorted(changed)[:5]}"
    assert steppay_order_count(h) == orders_before, "an order was created at StepPay"
    if attack.after is not None:
        attack.after(h, ctx)
    h.read_events()
    assert h.events[events_before:] == [], f"events published: {h.events[events_before:]}"
    h.dirty = False


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.id for a in ATTACKS])
def test_hostile_input(harness: Harness, reliability: Any, attack: Attack) -> None:
    with reliability.case(SUITE, attack.id):
        run_attack(harness, attack)


# -- open redirects: every redirect parameter ----------------------------------------------

REDIRECTS: list[tuple[str, str, str]] = [
    ("other host", "https://evil.example/ok", "redirect_not_allowed"),
    ("javascript:", "javascript:alert(document.cookie)", "redirect_not_allowed"),
    ("protocol-relative", "//evil.example/ok", "redirect_not_allowed"),
    ("userinfo", "http://localhost@evil.example/", "redirect_not_allowed"),
    ("userinfo with port", "http://localhost:8080@evil.example/", "redirect_not_allowed"),
    ("backslash userinfo", "http://localhost\\@evil.example/", "redirect_not_allowed"),
    ("backslash slashes", "http:\\\\evil.example\\ok", "redirect_not_allowed"),
    ("encoded @", "http://localhost%40evil.example/", "redirect_not_allowed"),
    ("encoded dot", "http://evil%2Eexample/", "redirect_not_allowed"),
    ("encoded scheme", "http%3A%2F%2Fevil.example%2F", "redirect_not_allowed"),
    ("allowed host as a subdomain", "http://localhost.evil.example/", "redirect_not_allowed"),
    ("allowed IP as a prefix", "http://127.0.0.1.nip.io/", "redirect_not_allowed"),
    ("fragment trick", "http://localhost/#@evil.example", "redirect_not_allowed"),
    ("data: URL", "data:text/html,<script>alert(1)</script>", "redirect_not_allowed"),
    ("homograph host", "http://lоcalhost/", "redirect_not_allowed"),  # noqa: RUF001 - Cyrillic o
    ("CRLF in URL", "http://localhost/\r\nLocation: https://evil.example", "redirect_not_allowed"),
    ("port out of range", "http://localhost:99999/", "redirect_not_allowed"),
    ("very long URL", "http://localhost/" + "a" * 3000, "invalid_request"),
]
REDIRECT_FIELDS = ("successUrl", "errorUrl", "cancelUrl")


@pytest.mark.parametrize(("name", "url", "code"), REDIRECTS, ids=[r[0] for r in REDIRECTS])
def test_open_redirect_refused_on_every_parameter(
    harness: Harness, reliability: Any, name: str, url: str, code: str
) -> None:
    h = harness
    events_before, before = begin(h)
    orders_before = steppay_order_count(h)
    for field_name in REDIRECT_FIELDS:
        with reliability.case(SUITE, f"open redirect in {field_name}: {name}"):
            body = {"order": h.order_body(), **GOOD, "cancelUrl": "http://localhost:8080/cancel"}
            body[field_name] = url
            h.assert_error(h.post("/payments/pay-url", body), 400, code)
    assert steppay_order_count(h) == orders_before, "an order was created at StepPay"
    finish(h, events_before, before)


# -- unreadable bodies at every endpoint that takes one ------------------------------------

DEEP = b'{"a": ' + b"[" * 200 + b"]" * 200 + b"}"
VERY_DEEP = b'{"a": ' + b"[" * 60000 + b"]" * 60000 + b"}"
BODIES: list[tuple[str, bytes, str | None, int, str]] = [
    ("malformed JSON", b'{"orderCode": ', "application/json", 400, "malformed_json"),
    ("JSON array", b'["order_1"]', "application/json", 400, "invalid_request"),
    ("JSON string", b'"order_1"', "application/json", 400, "invalid_request"),
    ("empty body", b"", "application/json", 400, "malformed_json"),
    ("UTF-8 BOM", b'\xef\xbb\xbf{"orderCode": "order_1"}', "application/json", 400, "malformed_json"),
    ("invalid UTF-8", b'{"orderCode": "\xc3\x28"}', "application/json", 400, "malformed_json"),
    (
        "Latin-1 declared",
        '{"orderCode": "ordér"}'.encode("latin-1"),
        "application/json; charset=latin-1",
        400,
        "malformed_json",
    ),
    ("huge number", b'{"orderId": ' + b"9" * 6000 + b"}", "application/json", 400, "malformed_json"),
    ("deeply nested", DEEP, "application/json", 400, "invalid_request"),
    ("nested beyond the parser", VERY_DEEP, "application/json", 400, "malformed_json"),
    ("text/plain", b"{}", "text/plain", 415, "unsupported_media_type"),
    (
        "form-encoded",
        b"orderCode=order_1",
        "application/x-www-form-urlencoded",
        415,
        "unsupported_media_type",
    ),
    (
        "multipart",
        b"--x\r\n\r\n{}\r\n--x--",
        "multipart/form-data; boundary=x",
        415,
        "unsupported_media_type",
    ),
    ("XML", b"<order>1</order>", "application/xml", 415, "unsupported_media_type"),
    ("no content type", b"{}", None, 415, "unsupported_media_type"),
    ("JSON-like type", b"{}", "application/json-patch+json", 415, "unsupported_media_type"),
]
BODY_ENDPOINTS = ("/payments/pay-url", "/payments/verify", "/webhooks/steppay")


def _expected(path: str, name: str, status: int, code: str) -> tuple[int, str]:
    if path != "/webhooks/steppay" and name == "nested beyond the parser":
        return 413, "payload_too_large"  # 120 KB: over the 16 KiB limit before it is parsed
    return status, code


@pytest.mark.parametrize(("name", "data", "ctype", "status", "code"), BODIES, ids=[b[0] for b in BODIES])
def test_unreadable_bodies_at_every_endpoint(
    harness: Harness, reliability: Any, name: str, data: bytes, ctype: str | None, status: int, code: str
) -> None:
    h = harness
    events_before, before = begin(h)
    for path in BODY_ENDPOINTS:
        with reliability.case(SUITE, f"{path}: {name}"):
            want_status, want_code = _expected(path, name, status, code)
            h.assert_error(h.post_raw(path, data, ctype), want_status, want_code)
    finish(h, events_before, before)


@pytest.mark.parametrize(
    ("path", "size", "status", "body_code"),
    [
        ("/payments/pay-url", 17 * 1024, 413, "payload_too_large"),
        ("/payments/verify", 17 * 1024, 413, "payload_too_large"),
        ("/webhooks/steppay", 300 * 1024, 413, "payload_too_large"),
        ("/webhooks/steppay", 11 * 1024 * 1024, 413, None),
    ],
    ids=["pay-url over 16 KiB", "verify over 16 KiB", "webhook over 256 KiB", "webhook over 10 MB"],
)
def test_bodies_over_the_size_limits(
    harness: Harness, reliability: Any, path: str, size: int, status: int, body_code: str | None
) -> None:
    h = harness
    with reliability.case(SUITE, f"{path}: body of {size} bytes"):
        events_before, before = begin(h)
        data = b'{"orderCode": "' + b"a" * size + b'"}'
        response = h.post_raw(path, data)
        if body_code is None:  # beyond API Gateway's own 10 MB limit: its answer
            assert response.status_code == status
            assert response.json() == {"message": "Request Entity Too Large"}
            h.assert_no_leak(response)
        else:
            h.assert_error(response, status, body_code)
        finish(h, events_before, before)
