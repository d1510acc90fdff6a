"""Hostile input against the running local stack, over HTTP.

Every case asserts the exact status and stable error code (or, for answers that are not
refusals, the exact harmless outcome), that the answer shows no trace, secret or internal
detail, that no record was written (every item of every table compared, and StepPay's order
count), that every refusal asked StepPay nothing (its order and subscription lookups are
counted), and that no event reached the tap. Webhooks that StepPay could legitimately have sent
(unsigned v1, validly signed v2) are acknowledged and kept, as designed: for those only the
stored webhook itself may appear, and its processing must change nothing else. An order paid for
something other than what was registered is the one designed write: recorded MISMATCH once and
announced once as `Payment Mismatch`, never PAID.

`POST /checkouts` (and its GETs) is the merchant backend's, AWS_IAM on the HTTP API: every
attack on it is sent SigV4-signed as the backend (authenticated, but its input still validated),
and all of them again unsigned (API Gateway's 403, the function never runs).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from botocore.credentials import Credentials
from hostile.harness import (
    MERCHANT_AUTH,
    REGION,
    RESULT_URLS,
    WEBHOOK_KEY,
    Harness,
    begin,
    compact,
    finish,
    newest_steppay_orders,
    plain,
    sign,
    steppay_order_count,
)

from steppay.api_models import CheckoutRequest
from steppay.payments import checkout_id_for, content_hash
from steppay_merchant import SigV4RequestsAuth

pytestmark = [pytest.mark.e2e, pytest.mark.leaves_settled]

SUITE = "hostile input"
RESULT_PAGE_NETLOC = "127.0.0.1:8080"  # the local stack's default RESULT_PAGE_URL
UNKNOWN_ID = 987_654_321_012
FORBIDDEN = {"message": "Forbidden"}  # API Gateway's answer to an unsigned AWS_IAM request
NOT_FOUND = {"message": "Not Found"}  # API Gateway's answer when no route matches
SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
)
VERIFY_ANSWER = {"verified", "verdict", "orderCode", "amount", "currency", "paidAt"}
CHECKOUT_ANSWER = {
    "checkoutId",
    "merchantRef",
    "orderCode",
    "orderId",
    "payUrl",
    "amount",
    "currency",
    "expiresAt",
}
DROP = object()  # a field left out of a body

Send = Callable[[Harness, Any], requests.Response]
Check = Callable[[Harness, Any, requests.Response], None]


@dataclass(frozen=True)
class Attack:
    id: str
    send: Send
    status: int
    code: str | None = None  # the error code; None when the answer is not an error envelope
    setup: Callable[[Harness], Any] | None = None
    check: Check | None = None  # more on the answer
    after: Callable[[Harness, Any], None] | None = None  # once everything has settled
    body: dict[str, Any] | None = field(default=None)  # a gateway answer's exact body
    body_keys: frozenset[str] | None = None  # a gateway answer's keys, when its text may vary
    # StepPay lookups (GET of an order or subscription) the case may cause; None: not counted.
    # Default: none for every refusal.
    lookups: int | None = -1
    orders_created: int = 0  # StepPay orders the case creates (see the expected_amount case)
    mismatch: bool = False  # the designed write: the order is recorded MISMATCH, announced once
    xfail: str | None = None  # a known product bug (strict: the case fails once it is fixed)

    @property
    def expected_lookups(self) -> int | None:
        if self.lookups != -1:
            return self.lookups
        return 0 if self.code is not None or self.status in (403, 404) else None


# -- set-ups ------------------------------------------------------------------------------


def unpaid(h: Harness) -> dict[str, Any]:
    return h.shared("unpaid", lambda h: h.checkout())


def paid_unrecorded(h: Harness) -> dict[str, Any]:
    return h.shared("paid unrecorded", _paid_unrecorded)


def _paid_unrecorded(h: Harness) -> dict[str, Any]:
    """Paid at StepPay, but the bundle was told nothing: still PENDING here."""
    link = h.checkout()
    with h.webhooks_off():
        h.complete(link["orderCode"])
    assert h.record(link["orderCode"])["state"] == "PENDING"  # type: ignore[index]
    return link


def failed_payment(h: Harness) -> dict[str, Any]:
    def make(h: Harness) -> dict[str, Any]:
        link = h.checkout()
        h.complete(link["orderCode"], "failure")
        return link

    return h.shared("failed payment", make)


def foreign_paid(h: Harness) -> dict[str, Any]:
    """An order the bundle never registered (made at StepPay directly), paid, not announced to us."""

    def make(h: Harness) -> dict[str, Any]:
        order = h.steppay_order()
        with h.webhooks_off():
            h.complete(order["orderCode"])
        return order

    return h.shared("foreign paid", make)


def foreign_unpaid(h: Harness) -> dict[str, Any]:
    return h.shared("foreign unpaid", lambda h: h.steppay_order())


def idempotent(h: Harness) -> dict[str, Any]:
    """A checkout registered with an Idempotency-Key."""
    return h.shared("idempotent", lambda h: h.checkout(headers={"Idempotency-Key": f"key-{uuid.uuid4()}"}))


def claimed_elsewhere(h: Harness) -> dict[str, Any]:
    """A registration another request has just claimed (CREATING, fresh): its body and claim."""
    body = h.checkout_body()
    now = datetime.now(UTC)
    checkout_id = checkout_id_for(body["merchantRef"])
    h.table().put_item(
        Item={
            "pk": f"CHECKOUT#{checkout_id}",
            "sk": "CHECKOUT",
            "entity": "checkout",
            "checkout_id": checkout_id,
            "merchant_ref": body["merchantRef"],
            "content_hash": content_hash(CheckoutRequest.model_validate(body)),
            "state": "CREATING",
            "claimed_at": now.isoformat(),
            "expires_at": (now + timedelta(hours=24)).isoformat(),
            "ttl": int((now + timedelta(days=8)).timestamp()),
        }
    )
    return {"body": body, "headers": {}, "checkoutId": checkout_id}


def recorded_currency(currency: str) -> Callable[[Harness], dict[str, Any]]:
    """Paid at StepPay, but the currency we stored for the order disagrees with StepPay's."""

    def setup(h: Harness) -> dict[str, Any]:
        link = h.checkout()
        h.table().update_item(
            Key={"pk": f"ORDER#{link['orderCode']}", "sk": "ORDER"},
            UpdateExpression="SET #f = :v",
            ExpressionAttributeNames={"#f": "currency"},
            ExpressionAttributeValues={":v": currency},
        )
        with h.webhooks_off():
            h.complete(link["orderCode"])
        return link

    return setup


def charged_otherwise(h: Harness) -> dict[str, Any]:
    """StepPay charged two of what the backend registered one of (the sandbox's test-only tamper);
    paid, but the bundle was not told yet."""
    link = h.checkout()
    tampered = h.control(f"/orders/{link['orderCode']}/tamper", {"items": [{"minimumQuantity": 2}]})
    assert tampered.status_code == 200, tampered.text
    with h.webhooks_off():
        h.complete(link["orderCode"])
    assert h.record(link["orderCode"])["state"] == "PENDING"  # type: ignore[index]
    return link


def mismatch_recorded(h: Harness) -> dict[str, Any]:
    link = charged_otherwise(h)
    first = h.post("/payments/verify", {"orderCode": link["orderCode"]})
    assert first.status_code == 200 and first.json()["verdict"] == "MISMATCH", first.text
    return link


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


def method(verb: str, path: str, auth: Any = None) -> Send:
    def send(h: Harness, ctx: Any) -> requests.Response:
        return h.request(verb, path, data=b"{}", headers={"Content-Type": "application/json"}, auth=auth)

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


def redirected_to_result(result: str) -> Check:
    def check(h: Harness, ctx: Any, response: requests.Response) -> None:
        location = urlsplit(response.headers["Location"])
        assert location.netloc == RESULT_PAGE_NETLOC, location
        query = parse_qs(location.query)
        assert query["result"] == [result], query
        assert "evil" not in response.headers["Location"]
        assert "set-cookie" not in {k.lower() for k in response.headers}

    return check


def verdict(expected: str) -> Check:
    def check(h: Harness, ctx: Any, response: requests.Response) -> None:
        body = response.json()
        assert set(body) == VERIFY_ANSWER, body  # the shopper's page learns the verdict, nothing more
        assert body["verdict"] == expected, body
        assert body["verified"] is False
        assert body["orderCode"] == ctx["orderCode"]

    return check


def acknowledged(queued: bool = True) -> Check:
    def check(h: Harness, ctx: Any, response: requests.Response) -> None:
        assert response.json() == {"received": True, "queued": queued}

    return check


def webhook_settled(state: str, detail: str | None = None) -> Callable[[Harness, Any], None]:
    """The queued webhook was processed, to `state` (the snapshot shows none left for a retry)."""

    def after(h: Harness, ctx: Any) -> None:
        mine = h.processed_webhooks()
        assert mine, "the acknowledged webhook was queued and processed"
        for record in mine:
            assert record["state"] == state, record
            if detail is not None:
                assert detail in record.get("detail", ""), record

    return after


def not_paid(h: Harness, ctx: Any) -> None:
    record = h.record(ctx["orderCode"])
    assert record is None or record["state"] != "PAID", record


def not_recorded(h: Harness, ctx: Any) -> None:
    assert h.record(ctx["orderCode"]) is None


def recorded_mismatch(h: Harness, ctx: Any) -> None:
    record = plain(h.record(ctx["orderCode"]))
    assert record["state"] == "MISMATCH", record
    assert any("quantity" in reason for reason in record["mismatches"]), record
    assert not h.events_for(ctx["orderCode"], "Payment Verified")


def no_set_cookie(h: Harness, ctx: Any, response: requests.Response) -> None:
    assert "set-cookie" not in {k.lower() for k in response.headers}


def no_cors_grant(h: Harness, ctx: Any, response: requests.Response) -> None:
    assert "access-control-allow-origin" not in {k.lower() for k in response.headers}


def same_checkout(h: Harness, ctx: Any, response: requests.Response) -> None:
    """A repeated registration answers the first checkout, exactly."""
    answer = response.json()
    assert set(answer) == CHECKOUT_ANSWER, answer
    assert answer == {key: ctx[key] for key in CHECKOUT_ANSWER}


def retry_after(seconds: str) -> Check:
    def check(h: Harness, ctx: Any, response: requests.Response) -> None:
        assert response.headers.get("Retry-After") == seconds, dict(response.headers)

    return check


def orphan_not_payable(h: Harness, ctx: Any) -> None:
    """The StepPay order a refused registration created is not left for anyone to pay."""
    [orphan] = newest_steppay_orders(h, 1)
    assert h.record(orphan["orderCode"]) is None
    with h.webhooks_off():  # if it can be paid, StepPay's webhooks of that payment are not sent
        paid = h.control(f"/orders/{orphan['orderCode']}/complete", {"outcome": "success"})
    assert paid.status_code == 409, f"the refused checkout's StepPay order could be paid: {paid.text[:200]}"


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
        "v2 forged signature, an hour old",
        v2(lambda b, t: sign(b, "not-the-key", t - 3600)),
        401,
        "signature_mismatch",
        unpaid,
    ),
    Attack(
        "v2 authentic signature an hour old (a portal resend): a hint, confirmed with StepPay",
        v2(lambda b, t: sign(b, WEBHOOK_KEY, t - 3600)),
        200,
        setup=unpaid,
        check=acknowledged(),
        after=webhook_settled("PROCESSED", "NOT_PAID"),
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
    ),
    Attack(
        "v2 exact replay within the tolerance (a hint again)",
        v2_signed(lambda h, ctx: paid_claim(ctx)),
        200,
        setup=delivered_once(lambda h, ctx: paid_claim(ctx), unpaid),
        check=acknowledged(),
        after=webhook_settled("PROCESSED", "NOT_PAID"),  # a hint again: asked, nothing changes
    ),
    Attack(
        "v2 signed claim with a traversal order code",
        v2_signed(lambda h, ctx: paid_claim(ctx, code="../customers", id="../customers")),
        200,
        setup=unpaid,
        check=acknowledged(),
        after=webhook_settled("REJECTED"),
    ),
    Attack(
        "v2 signed claim with an object as order code",
        v2_signed(lambda h, ctx: paid_claim(ctx, code={"$ne": None}, id={"$gt": 0})),
        200,
        setup=unpaid,
        check=acknowledged(),
        after=webhook_settled("REJECTED"),
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
    ),
    Attack(
        "v1 payment naming an unknown order",
        v1({"webHookType": "PAYMENT", "orderId": UNKNOWN_ID}),
        200,
        check=acknowledged(),
        after=webhook_settled("REJECTED"),
    ),
    Attack(
        "v1 payment naming a foreign unpaid order",
        v1(lambda ctx: {"webHookType": "PAYMENT", "orderId": ctx["orderId"]}),
        200,
        setup=foreign_unpaid,
        check=acknowledged(),
        after=webhook_settled("IGNORED", "not registered"),
    ),
    Attack(
        "v1 payment naming a failed payment",
        v1(lambda ctx: {"webHookType": "PAYMENT", "orderId": ctx["orderId"]}),
        200,
        setup=failed_payment,
        check=acknowledged(),
        after=webhook_settled("PROCESSED", "FAILED"),
    ),
    Attack(
        "v1 status of an unknown subscription",
        v1({"id": UNKNOWN_ID, "status": "ACTIVE"}),
        200,
        check=acknowledged(),
        after=webhook_settled("REJECTED"),
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
        "callback for a paid order the bundle never registered",
        callback(order_code=lambda c: c["orderCode"], status="success"),
        404,
        "order_not_found",
        setup=foreign_paid,
        after=not_recorded,
    ),
    Attack(
        "callback for an unpaid order the bundle never registered",
        callback(order_code=lambda c: c["orderCode"], order_id=lambda c: c["orderId"], status="success"),
        404,
        "order_not_found",
        setup=foreign_unpaid,
        after=not_recorded,
    ),
    Attack(
        "callback naming another paid order by its id",
        callback(order_code=lambda c: str(c["orderId"]), status="success"),
        400,
        "invalid_request",
        setup=foreign_paid,
    ),
    Attack(
        "callback naming our own paid order by its id",
        callback(order_code=lambda c: str(c["orderId"]), status="success"),
        400,
        "invalid_request",
        setup=paid_unrecorded,
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
    Attack(
        "callback numeric order code", callback(order_code="100001", status="success"), 400, "invalid_request"
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
        "verify a paid order the bundle never registered",
        verify(lambda c: {"orderCode": c["orderCode"], "status": "success"}),
        404,
        "order_not_found",
        setup=foreign_paid,
        after=not_recorded,
    ),
    Attack(
        "verify an unpaid order the bundle never registered",
        verify(lambda c: {"orderCode": c["orderCode"], "orderId": c["orderId"]}),
        404,
        "order_not_found",
        setup=foreign_unpaid,
        after=not_recorded,
    ),
    Attack(
        "verify naming another paid order by its id",
        verify(lambda c: {"orderCode": str(c["orderId"])}),
        400,
        "invalid_request",
        setup=foreign_paid,
    ),
    Attack(
        "verify naming our own paid order by its id",
        verify(lambda c: {"orderCode": str(c["orderId"]), "orderId": c["orderId"]}),
        400,
        "invalid_request",
        setup=paid_unrecorded,
    ),
    Attack("verify numeric order code", verify({"orderCode": "100001"}), 400, "invalid_request"),
    Attack("verify 64-digit order code", verify({"orderCode": "9" * 64}), 400, "invalid_request"),
    Attack("verify order code over 64 characters", verify({"orderCode": "a" * 65}), 400, "invalid_request"),
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
    Attack(
        "verify with a client-supplied merchantRef",
        verify(lambda c: {"orderCode": c["orderCode"], "merchantRef": c["merchantRef"]}),
        400,
        "invalid_request",
        setup=paid_unrecorded,
    ),
    Attack("verify traversal", verify({"orderCode": "../customers"}), 400, "invalid_request"),
    Attack("verify query injection", verify({"orderCode": "a/b?x=1"}), 400, "invalid_request"),
    Attack("verify encoded traversal", verify({"orderCode": "%2e%2e%2fcustomers"}), 400, "invalid_request"),
    Attack("verify CRLF", verify({"orderCode": "order_1\r\nX-Injected: 1"}), 400, "invalid_request"),
    Attack("verify SQL injection", verify({"orderCode": "order_1' OR '1'='1"}), 400, "invalid_request"),
    Attack("verify NoSQL operator", verify({"orderCode": {"$ne": None}}), 400, "invalid_request"),
    Attack("verify key prefix", verify({"orderCode": "ORDER#order_1"}), 400, "invalid_request"),
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
        "verify when the currency disagrees with the order",
        verify(lambda c: {"orderCode": c["orderCode"]}),
        200,
        setup=recorded_currency("USD"),
        check=verdict("MISMATCH"),
        after=not_paid,
    ),
    Attack(
        "verify when StepPay charged another quantity than registered",
        verify(lambda c: {"orderCode": c["orderCode"], "status": "success"}),
        200,
        setup=charged_otherwise,
        check=verdict("MISMATCH"),
        after=recorded_mismatch,
        mismatch=True,
    ),
    Attack(
        "callback when StepPay charged another quantity than registered",
        callback(order_code=lambda c: c["orderCode"], status="success"),
        303,
        setup=charged_otherwise,
        check=redirected_to_result("failed"),
        after=recorded_mismatch,
        mismatch=True,
    ),
    Attack(
        "signed webhook when StepPay charged another quantity than registered",
        v2_signed(lambda h, ctx: paid_claim(ctx)),
        200,
        setup=charged_otherwise,
        check=acknowledged(),
        after=lambda h, ctx: (recorded_mismatch(h, ctx), webhook_settled("PROCESSED", "MISMATCH")(h, ctx)),
        mismatch=True,
    ),
    Attack(
        "verify again once the mismatch is recorded",
        verify(lambda c: {"orderCode": c["orderCode"], "status": "success"}),
        200,
        setup=mismatch_recorded,
        check=verdict("MISMATCH"),
        after=recorded_mismatch,
    ),
]

# -- the merchant backend's routes: each case signed (validated) and unsigned (403) ---------


@dataclass(frozen=True)
class Backend:
    """A request of the merchant's backend. Sent signed, it gets `status`/`code`; sent unsigned,
    API Gateway's 403 (nothing runs). `body` builds the JSON body (or raw bytes); `path` and
    `headers` may depend on the set-up's result."""

    id: str
    body: Callable[[Harness, Any], Any] | None
    status: int
    code: str | None = None
    setup: Callable[[Harness], Any] | None = None
    method: str = "POST"
    path: str | Callable[[Any], str] = "/checkouts"
    params: dict[str, str] | None = None
    headers: Callable[[Any], dict[str, str]] | None = None
    check: Check | None = None
    after: Callable[[Harness, Any], None] | None = None
    orders_created: int = 0
    lookups: int | None = -1
    xfail: str | None = None


def backend_send(case: Backend, auth: Any) -> Send:
    def send(h: Harness, ctx: Any) -> requests.Response:
        path = case.path(ctx) if callable(case.path) else case.path
        kwargs: dict[str, Any] = {"headers": case.headers(ctx) if case.headers else {}, "auth": auth}
        if case.params is not None:
            kwargs["params"] = case.params
        if case.body is not None:
            payload = case.body(h, ctx)
            if isinstance(payload, bytes):
                kwargs["data"] = payload
                kwargs["headers"] = {"Content-Type": "application/json", **kwargs["headers"]}
            else:
                kwargs["json"] = payload
        return h.request(case.method, path, **kwargs)

    return send


def signed(cases: list[Backend]) -> list[Attack]:
    """Each backend case, SigV4-signed as the merchant's backend: validated by the function."""
    return [
        Attack(
            f"{case.method} {case.id}",
            backend_send(case, MERCHANT_AUTH),
            case.status,
            case.code,
            setup=case.setup,
            check=case.check,
            after=case.after,
            orders_created=case.orders_created,
            lookups=case.lookups,
            xfail=case.xfail,
        )
        for case in cases
    ]


def checkout(**changes: Any) -> Callable[[Harness, Any], dict[str, Any]]:
    """A valid registration body with `changes` (a callable value is given the harness; DROP drops)."""

    def make(h: Harness, ctx: Any) -> dict[str, Any]:
        body = h.checkout_body()
        for key, value in changes.items():
            if value is DROP:
                body.pop(key, None)
            else:
                body[key] = value(h) if callable(value) else value
        return body

    return make


def line(**changes: Any) -> Callable[[Harness], list[dict[str, Any]]]:
    """The body's one item with `changes` (DROP drops a field)."""

    def make(h: Harness) -> list[dict[str, Any]]:
        [item] = h.checkout_items()
        for key, value in changes.items():
            if value is DROP:
                item.pop(key, None)
            else:
                item[key] = value
        return [item]

    return make


def raw_checkout(before_close: bytes) -> Callable[[Harness, Any], bytes]:
    """A valid registration body's JSON text with `before_close` spliced in before its last brace."""

    def make(h: Harness, ctx: Any) -> bytes:
        return compact(h.checkout_body())[:-1] + b"," + before_close + b"}"

    return make


def ahead(delta: timedelta, naive: bool = False) -> Callable[[Harness], str]:
    def make(h: Harness) -> str:
        moment = datetime.now(UTC) + delta
        return moment.replace(tzinfo=None).isoformat() if naive else moment.isoformat()

    return make


def other_content(h: Harness, ctx: Any) -> dict[str, Any]:
    """The set-up checkout's merchantRef, registering something else (two of its line)."""
    return {**ctx["body"], "items": [{**ctx["body"]["items"][0], "quantity": 2}]}


def fresh_ref(h: Harness, ctx: Any) -> dict[str, Any]:
    """Another registration (its own merchantRef) than the set-up's."""
    return {**ctx["body"], "merchantRef": f"hostile-{uuid.uuid4().hex[:16]}"}


def as_set_up(h: Harness, ctx: Any) -> dict[str, Any]:
    return dict(ctx["body"])


def set_up_headers(ctx: Any) -> dict[str, str]:
    return dict(ctx["headers"])


def many_lines(h: Harness) -> list[dict[str, Any]]:
    [item] = h.checkout_items()
    return [{**item, "productCode": f"product-{n}"} for n in range(21)]


UNKNOWN_CHECKOUT = "chk_" + "0" * 32

CHECKOUTS: list[Backend] = [
    # merchantRef
    Backend("/checkouts merchantRef missing", checkout(merchantRef=DROP), 400, "invalid_request"),
    Backend("/checkouts merchantRef empty", checkout(merchantRef=""), 400, "invalid_request"),
    Backend(
        "/checkouts merchantRef with CRLF",
        checkout(merchantRef="cart\r\nSet-Cookie: a=b"),
        400,
        "invalid_request",
    ),
    Backend("/checkouts merchantRef with NUL", checkout(merchantRef="cart\u0000"), 400, "invalid_request"),
    Backend(
        "/checkouts merchantRef over 128 characters", checkout(merchantRef="r" * 129), 400, "invalid_request"
    ),
    Backend(
        "/checkouts merchantRef as an object", checkout(merchantRef={"$ne": None}), 400, "invalid_request"
    ),
    # the customer: exactly one of three identifiers, each well-formed
    Backend("/checkouts without a customer", checkout(customerId=DROP), 400, "invalid_request"),
    Backend(
        "/checkouts with customerId and customerCode", checkout(customerCode="cust_1"), 400, "invalid_request"
    ),
    Backend(
        "/checkouts with all three customer identifiers",
        checkout(customerCode="cust_1", customerUuid=str(uuid.uuid4())),
        400,
        "invalid_request",
    ),
    Backend("/checkouts customerId as text", checkout(customerId="../1"), 400, "invalid_request"),
    Backend("/checkouts customerId as a numeric string", checkout(customerId="1"), 400, "invalid_request"),
    Backend("/checkouts customerId zero", checkout(customerId=0), 400, "invalid_request"),
    Backend("/checkouts customerId negative", checkout(customerId=-5), 400, "invalid_request"),
    Backend("/checkouts customerId beyond int64", checkout(customerId=2**63), 400, "invalid_request"),
    Backend("/checkouts customerId float", checkout(customerId=1.5), 400, "invalid_request"),
    Backend("/checkouts customerId boolean", checkout(customerId=True), 400, "invalid_request"),
    Backend(
        "/checkouts customerCode traversal",
        checkout(customerId=DROP, customerCode="../../admin"),
        400,
        "invalid_request",
    ),
    Backend(
        "/checkouts customerCode with a query",
        checkout(customerId=DROP, customerCode="cust_1?x=1"),
        400,
        "invalid_request",
    ),
    Backend(
        "/checkouts customerUuid not a UUID",
        checkout(customerId=DROP, customerUuid="../../customers"),
        400,
        "invalid_request",
    ),
    # the items: StepPay's catalogue codes, quantities, currency
    Backend("/checkouts items missing", checkout(items=DROP), 400, "invalid_request"),
    Backend("/checkouts items empty", checkout(items=[]), 400, "invalid_request"),
    Backend("/checkouts items not a list", checkout(items={"productCode": "p"}), 400, "invalid_request"),
    Backend("/checkouts 21 items", checkout(items=many_lines), 400, "invalid_request"),
    Backend(
        "/checkouts the same line twice",
        checkout(items=lambda h: h.checkout_items() * 2),
        400,
        "invalid_request",
    ),
    Backend(
        "/checkouts product code traversal",
        checkout(items=line(productCode="../../products?x=1")),
        400,
        "invalid_request",
    ),
    Backend(
        "/checkouts product code path injection",
        checkout(items=line(productCode="product_1/../../customers")),
        400,
        "invalid_request",
    ),
    Backend(
        "/checkouts price code with CRLF",
        checkout(items=line(priceCode="price_1\r\nX-Injected: 1")),
        400,
        "invalid_request",
    ),
    Backend(
        "/checkouts product code non-ASCII", checkout(items=line(productCode="상품")), 400, "invalid_request"
    ),
    Backend("/checkouts price code missing", checkout(items=line(priceCode=DROP)), 400, "invalid_request"),
    Backend(
        "/checkouts currency with CRLF", checkout(items=line(currency="KRW\r\n")), 400, "invalid_request"
    ),
    Backend("/checkouts currency lower-case", checkout(items=line(currency="krw")), 400, "invalid_request"),
    Backend("/checkouts quantity zero", checkout(items=line(quantity=0)), 400, "invalid_request"),
    Backend("/checkouts quantity negative", checkout(items=line(quantity=-1)), 400, "invalid_request"),
    Backend("/checkouts quantity float", checkout(items=line(quantity=1.5)), 400, "invalid_request"),
    Backend("/checkouts quantity as text", checkout(items=line(quantity="1")), 400, "invalid_request"),
    Backend("/checkouts quantity boolean", checkout(items=line(quantity=True)), 400, "invalid_request"),
    Backend("/checkouts quantity over 1000", checkout(items=line(quantity=1001)), 400, "invalid_request"),
    Backend(
        "/checkouts maxQuantity below quantity",
        checkout(items=line(quantity=3, maxQuantity=2)),
        400,
        "invalid_request",
    ),
    Backend("/checkouts maxQuantity float", checkout(items=line(maxQuantity=2.0)), 400, "invalid_request"),
    # what the merchant may not say: a price, the old pay-url shape
    Backend("/checkouts item with a client price", checkout(items=line(price=1)), 400, "invalid_request"),
    Backend("/checkouts with a client amount", checkout(amount=1), 400, "invalid_request"),
    Backend(
        "/checkouts in the old pay-url shape",
        lambda h, ctx: {"order": h.order_body(), **RESULT_URLS, "merchantRef": f"hostile-{uuid.uuid4().hex}"},
        400,
        "invalid_request",
    ),
    # expectedAmount: an integer or a decimal string, never a float
    Backend("/checkouts expectedAmount float", checkout(expectedAmount=15000.0), 400, "invalid_request"),
    Backend("/checkouts expectedAmount fraction float", checkout(expectedAmount=0.1), 400, "invalid_request"),
    Backend("/checkouts expectedAmount boolean", checkout(expectedAmount=True), 400, "invalid_request"),
    Backend("/checkouts expectedAmount negative", checkout(expectedAmount=-1), 400, "invalid_request"),
    Backend("/checkouts expectedAmount as words", checkout(expectedAmount="fifteen"), 400, "invalid_request"),
    Backend(
        "/checkouts expectedAmount three decimals", checkout(expectedAmount="1.001"), 400, "invalid_request"
    ),
    Backend("/checkouts expectedAmount 16 digits", checkout(expectedAmount="1" * 16), 400, "invalid_request"),
    Backend("/checkouts expectedAmount NaN", raw_checkout(b'"expectedAmount":NaN'), 400, "invalid_request"),
    Backend(
        "/checkouts expectedAmount Infinity",
        raw_checkout(b'"expectedAmount":Infinity'),
        400,
        "invalid_request",
    ),
    Backend(
        "/checkouts expectedAmount as a NaN string", checkout(expectedAmount="NaN"), 400, "invalid_request"
    ),
    Backend(
        "/checkouts duplicate keys",
        raw_checkout(b'"customerId":"../1"'),  # the last one is read: it must be valid too
        400,
        "invalid_request",
    ),
    # expiresAt: aware, 5 minutes to 30 days ahead
    Backend(
        "/checkouts expiresAt without a time zone",
        checkout(expiresAt=ahead(timedelta(days=1), naive=True)),
        400,
        "invalid_request",
    ),
    Backend(
        "/checkouts expiresAt in the past",
        checkout(expiresAt=ahead(-timedelta(days=1))),
        400,
        "invalid_request",
    ),
    Backend(
        "/checkouts expiresAt a minute ahead",
        checkout(expiresAt=ahead(timedelta(minutes=1))),
        400,
        "invalid_request",
    ),
    Backend(
        "/checkouts expiresAt 31 days ahead",
        checkout(expiresAt=ahead(timedelta(days=31))),
        400,
        "invalid_request",
    ),
    Backend("/checkouts expiresAt not a date", checkout(expiresAt="tomorrow"), 400, "invalid_request"),
    # the rest of the body
    Backend("/checkouts lang unsupported", checkout(lang="fr"), 400, "invalid_request"),
    Backend("/checkouts lang with CRLF", checkout(lang="ko\r\n"), 400, "invalid_request"),
    Backend("/checkouts successUrl missing", checkout(successUrl=DROP), 400, "invalid_request"),
    Backend("/checkouts errorUrl empty", checkout(errorUrl=""), 400, "invalid_request"),
    Backend(
        "/checkouts successUrl as a list",
        checkout(successUrl=[RESULT_URLS["successUrl"]]),
        400,
        "invalid_request",
    ),
    # Idempotency-Key: printable ASCII, 1-255 characters
    Backend(
        "/checkouts Idempotency-Key with a space",
        checkout(),
        400,
        "invalid_request",
        headers=lambda ctx: {"Idempotency-Key": "two words"},
    ),
    Backend(
        "/checkouts Idempotency-Key empty",
        checkout(),
        400,
        "invalid_request",
        headers=lambda ctx: {"Idempotency-Key": ""},
    ),
    Backend(
        "/checkouts Idempotency-Key over 255 characters",
        checkout(),
        400,
        "invalid_request",
        headers=lambda ctx: {"Idempotency-Key": "k" * 256},
    ),
    # StepPay refuses what it does not sell (nothing is kept, no order is made)
    Backend(
        "/checkouts for a product StepPay does not sell",
        checkout(items=line(productCode="no-such-product", priceCode="no-such-price")),
        422,
        "order_rejected",
    ),
    # one checkout per merchantRef, one body per Idempotency-Key
    Backend(
        "/checkouts merchantRef registered with other content",
        other_content,
        409,
        "merchant_ref_conflict",
        setup=unpaid,
    ),
    Backend(
        "/checkouts the same registration again",
        as_set_up,
        200,
        setup=unpaid,
        check=same_checkout,
    ),
    Backend(
        "/checkouts Idempotency-Key reused for another body",
        fresh_ref,
        409,
        "idempotency_key_reused",
        setup=idempotent,
        headers=set_up_headers,
    ),
    Backend(
        "/checkouts Idempotency-Key replayed with its body",
        as_set_up,
        200,
        setup=idempotent,
        headers=set_up_headers,
        check=same_checkout,
    ),
    Backend(
        "/checkouts while another request registers the same checkout",
        as_set_up,
        409,
        "checkout_in_progress",
        setup=claimed_elsewhere,
        check=retry_after("1"),
    ),
    # the merchant's expectation: StepPay's price is checked before any pay link is handed out
    # The price is StepPay's to say: the order is made, then refused. StepPay announces the order
    # it made (its order.created webhook is acknowledged, not queued): nothing is written or announced.
    Backend(
        "/checkouts expectedAmount StepPay does not charge",
        checkout(expectedAmount="1000"),
        422,
        "expected_amount_mismatch",
        orders_created=1,
        lookups=None,
    ),
    Backend(
        "/checkouts expectedAmount StepPay does not charge, its order voided",
        checkout(expectedAmount="1000"),
        422,
        "expected_amount_mismatch",
        orders_created=1,
        lookups=None,
        after=orphan_not_payable,
    ),
    # reading checkouts back
    Backend(
        f"/checkouts/{UNKNOWN_CHECKOUT} unknown",
        None,
        404,
        "checkout_not_found",
        method="GET",
        path=f"/checkouts/{UNKNOWN_CHECKOUT}",
    ),
    Backend(
        "/checkouts/{id} with a key prefix",
        None,
        400,
        "invalid_request",
        method="GET",
        path="/checkouts/CHECKOUT%23chk_1",
    ),
    Backend(
        "/checkouts/{id} SQL injection",
        None,
        400,
        "invalid_request",
        method="GET",
        path="/checkouts/chk_1'%20OR%20'1'='1",
    ),
    Backend(
        "/checkouts/{id} of an order code",
        None,
        400,
        "invalid_request",
        setup=unpaid,
        method="GET",
        path=lambda ctx: f"/checkouts/{ctx['orderCode']}",
    ),
    Backend(
        "/checkouts?merchantRef= unknown",
        None,
        404,
        "checkout_not_found",
        method="GET",
        params={"merchantRef": "nobody-registered-this"},
    ),
    Backend("/checkouts without merchantRef", None, 400, "invalid_request", method="GET"),
    Backend(
        "/checkouts?merchantRef= with CRLF",
        None,
        400,
        "invalid_request",
        method="GET",
        params={"merchantRef": "cart\r\nX: 1"},
    ),
    Backend(
        "/checkouts?merchantRef= over 128 characters",
        None,
        400,
        "invalid_request",
        method="GET",
        params={"merchantRef": "r" * 129},
    ),
]


# -- the signature itself -----------------------------------------------------------------


def signed_with(auth: Any) -> Send:
    def send(h: Harness, ctx: Any) -> requests.Response:
        return h.request("POST", "/checkouts", json=h.checkout_body(), auth=auth)

    return send


def signed_then(change: Callable[[requests.PreparedRequest], None]) -> Send:
    """Signed as the backend, then changed on the way (what a man in the middle could do)."""

    def send(h: Harness, ctx: Any) -> requests.Response:
        prepared = requests.Request(
            "POST", f"{h.stack.api_url}/checkouts", json=h.checkout_body(), auth=MERCHANT_AUTH
        ).prepare()
        change(prepared)
        h.report.sent(str(prepared.body))
        response = h.http.send(prepared, timeout=60, allow_redirects=False)
        h.report.saw(response.text)
        return response

    return send


def more_items(prepared: requests.PreparedRequest) -> None:
    body = json.loads(prepared.body or b"{}")
    body["items"][0]["quantity"] = 100
    prepared.body = compact(body)
    prepared.headers["Content-Length"] = str(len(prepared.body))


def other_path(prepared: requests.PreparedRequest) -> None:
    prepared.url = f"{prepared.url}?merchantRef=x"


def only_message(message: str | None = None) -> Check:
    def check(h: Harness, ctx: Any, response: requests.Response) -> None:
        body = response.json()
        assert set(body) == {"message"}, body
        if message is not None:
            assert body["message"] == message, body

    return check


def headers_only(**headers: str) -> Send:
    def send(h: Harness, ctx: Any) -> requests.Response:
        return h.request("POST", "/checkouts", json=h.checkout_body(), headers=headers)

    return send


SIGNING: list[Attack] = [
    Attack(
        "POST /checkouts signed with an unknown access key",
        signed_with(SigV4RequestsAuth(REGION, Credentials("AKIAEVIL0000000000", "local"))),
        403,
        check=only_message("The security token included in the request is invalid."),
    ),
    Attack(
        "POST /checkouts signed with a wrong secret",
        signed_with(SigV4RequestsAuth(REGION, Credentials("local", "not-the-secret"))),
        403,
        check=only_message(SIGNATURE_MISMATCH),
    ),
    Attack(
        "POST /checkouts signed with a session token",
        signed_with(SigV4RequestsAuth(REGION, Credentials("local", "local", "forged-token"))),
        403,
        check=only_message(),
    ),
    Attack(
        "POST /checkouts signed for another region",
        signed_with(SigV4RequestsAuth("us-east-1", Credentials("local", "local"))),
        403,
        check=only_message(),
    ),
    Attack(
        "POST /checkouts signed, then the body changed", signed_then(more_items), 403, check=only_message()
    ),
    Attack(
        "POST /checkouts signed, then the query changed", signed_then(other_path), 403, check=only_message()
    ),
    Attack(
        "POST /checkouts with a bearer token",
        headers_only(Authorization="Bearer eyJhbGciOiJub25lIn0.e30."),
        403,
        body=FORBIDDEN,
    ),
    Attack(
        "POST /checkouts with a garbled SigV4 header",
        headers_only(
            Authorization="AWS4-HMAC-SHA256 Credential=local/garbage", **{"X-Amz-Date": "20260101T000000Z"}
        ),
        403,
        check=only_message(),
    ),
    Attack(
        "POST /checkouts with an API key header",
        headers_only(**{"x-api-key": "local", "X-Amz-Security-Token": "local"}),
        403,
        body=FORBIDDEN,
    ),
]

METHODS: list[Attack] = [
    Attack(f"{verb} {path}", method(verb, path), 404, body=NOT_FOUND)
    for verb, path in [
        ("POST", "/payments/pay-url"),  # gone: checkouts are registered by the merchant's backend
        ("GET", "/payments/pay-url"),
        ("PUT", "/payments/pay-url"),
        ("GET", "/payments/verify"),
        ("DELETE", "/payments/verify"),
        ("POST", "/payments/callback"),
        ("GET", "/webhooks/steppay"),
        ("PATCH", "/webhooks/steppay"),
        ("DELETE", "/checkouts"),
        ("PUT", f"/checkouts/{UNKNOWN_CHECKOUT}"),
        ("POST", f"/checkouts/{UNKNOWN_CHECKOUT}"),
    ]
] + [
    Attack(
        "POST /payments/pay-url signed as the backend",
        method("POST", "/payments/pay-url", MERCHANT_AUTH),
        404,
        body=NOT_FOUND,
    ),
    Attack(
        "CORS preflight from a foreign origin",
        lambda h, ctx: h.request(
            "OPTIONS",
            "/payments/verify",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        ),
        204,
        check=no_cors_grant,
        lookups=0,
    ),
    Attack(
        "CORS preflight for /checkouts from a foreign origin",
        lambda h, ctx: h.request(
            "OPTIONS",
            "/checkouts",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        ),
        204,
        check=no_cors_grant,
        lookups=0,
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

ATTACKS = SIGNATURES + V1 + CALLBACKS + VERIFY + AMOUNTS + signed(CHECKOUTS) + SIGNING + METHODS
SHARED_SETUPS = (None, unpaid, paid_unrecorded, failed_payment, foreign_paid, foreign_unpaid, idempotent)


def _mismatch_keys(h: Harness, ctx: Any) -> set[str]:
    """The designed write of a mismatch: the order's record and its checkout (kept, no TTL)."""
    return {
        f"PaymentsTable:ORDER#{ctx['orderCode']}:ORDER",
        f"PaymentsTable:CHECKOUT#{ctx['checkoutId']}:CHECKOUT",
    }


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

    with h.lookup_probe() as lookups:
        h.mark_processor_log()
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
        looked_up = lookups()
    after = h.snapshot()
    changed = {key for key in set(before) | set(after) if before.get(key) != after.get(key)}
    if attack.mismatch:
        assert _mismatch_keys(h, ctx) & changed, "the mismatch was recorded"
        changed -= _mismatch_keys(h, ctx)
    assert not changed, f"records written: {sorted(changed)[:5]}"
    created = steppay_order_count(h) - orders_before
    assert created == attack.orders_created, f"{created} orders created at StepPay"
    if attack.expected_lookups is not None:
        assert looked_up == attack.expected_lookups, f"StepPay was asked {looked_up} times"
    if attack.after is not None:
        attack.after(h, ctx)
    h.read_events()
    fresh = h.events[events_before:]
    if attack.mismatch:
        announced = [(e["detail-type"], e["detail"].get("orderCode")) for e in fresh]
        assert announced == [("Payment Mismatch", ctx["orderCode"])], f"events published: {announced}"
    else:
        assert fresh == [], f"events published: {fresh}"
    h.dirty = False


def _param(attack: Attack) -> Any:
    marks = [pytest.mark.xfail(strict=True, reason=attack.xfail)] if attack.xfail else []
    return pytest.param(attack, id=attack.id, marks=marks)


@pytest.mark.parametrize("attack", [_param(a) for a in ATTACKS])
def test_hostile_input(harness: Harness, reliability: Any, attack: Attack) -> None:
    with reliability.case(SUITE, attack.id):
        run_attack(harness, attack)


def test_backend_cases_unsigned_are_refused_before_anything_runs(harness: Harness, reliability: Any) -> None:
    """Every backend case again, unsigned: API Gateway's 403 `{"message": "Forbidden"}`, whatever
    the body. Over all of them: nothing written, no StepPay order made nor looked up, no event."""
    h = harness
    contexts = [case.setup(h) if case.setup else None for case in CHECKOUTS]
    events_before, before = begin(h)
    orders_before = steppay_order_count(h)
    with h.lookup_probe() as lookups:
        for case, ctx in zip(CHECKOUTS, contexts, strict=True):
            with reliability.case(SUITE, f"unsigned {case.method} {case.id}"):
                response = backend_send(case, None)(h, ctx)
                assert response.status_code == 403, f"{case.id}: {response.status_code} {response.text[:300]}"
                assert response.json() == FORBIDDEN, response.text[:300]
                h.assert_no_leak(response)
        h.settle()
        assert lookups() == 0, "StepPay was asked"
    assert steppay_order_count(h) == orders_before, "an order was created at StepPay"
    finish(h, events_before, before)


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
    with h.lookup_probe() as lookups:
        for field_name in REDIRECT_FIELDS:
            with reliability.case(SUITE, f"open redirect in {field_name}: {name}"):
                body = h.checkout_body(**{field_name: url})
                h.assert_error(h.backend_post("/checkouts", body), 400, code)
            with reliability.case(SUITE, f"open redirect in {field_name}, unsigned: {name}"):
                response = h.post("/checkouts", h.checkout_body(**{field_name: url}))
                assert response.status_code == 403 and response.json() == FORBIDDEN, response.text
        assert lookups() == 0
    assert steppay_order_count(h) == orders_before, "an order was created at StepPay"
    finish(h, events_before, before)


# -- unreadable bodies at every endpoint that takes one ------------------------------------

DEEP = b'{"a": ' + b"[" * 200 + b"]" * 200 + b"}"
VERY_DEEP = b'{"a": ' + b"[" * 60000 + b"]" * 60000 + b"}"
BODIES: list[tuple[str, bytes, str | None, int, str]] = [
    ("malformed JSON", b'{"orderCode": ', "application/json", 400, "malformed_json"),
    ("JSON array", b'["order_1"]', "application/json", 400, "invalid_request"),
    ("JSON string", b'"order_1"', "application/json", 400, "invalid_request"),
    ("JSON null", b"null", "application/json", 400, "invalid_request"),
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
    # 120 KB: over every route's limit (16 KiB; a v2 webhook 64 KiB), refused before it is parsed.
    ("nested beyond the parser", VERY_DEEP, "application/json", 413, "payload_too_large"),
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
# (path, signed as the backend): /checkouts is sent both ways, the public routes unsigned.
BODY_ENDPOINTS = (
    ("/checkouts", True),
    ("/checkouts", False),
    ("/payments/verify", False),
    ("/webhooks/steppay", False),
)


def _expected(path: str, signed: bool, name: str, status: int, code: str) -> tuple[int, str | None]:
    if path == "/checkouts" and not signed:
        return 403, None  # refused by the HTTP API before anything reads the body
    return status, code


@pytest.mark.parametrize(("name", "data", "ctype", "status", "code"), BODIES, ids=[b[0] for b in BODIES])
def test_unreadable_bodies_at_every_endpoint(
    harness: Harness, reliability: Any, name: str, data: bytes, ctype: str | None, status: int, code: str
) -> None:
    h = harness
    events_before, before = begin(h)
    orders_before = steppay_order_count(h)
    with h.lookup_probe() as lookups:
        for path, signed in BODY_ENDPOINTS:
            with reliability.case(
                SUITE, f"{path}{'' if signed or path != '/checkouts' else ' unsigned'}: {name}"
            ):
                want_status, want_code = _expected(path, signed, name, status, code)
                response = h.post_raw(path, data, ctype, auth=MERCHANT_AUTH if signed else None)
                if want_code is None:
                    assert response.status_code == want_status and response.json() == FORBIDDEN, response.text
                    h.assert_no_leak(response)
                else:
                    h.assert_error(response, want_status, want_code)
        assert lookups() == 0
    assert steppay_order_count(h) == orders_before, "an order was created at StepPay"
    finish(h, events_before, before)


@pytest.mark.parametrize(
    ("path", "signed", "size", "status", "body_code"),
    [
        ("/checkouts", True, 17 * 1024, 413, "payload_too_large"),
        ("/checkouts", False, 17 * 1024, 403, None),
        ("/checkouts", True, 11 * 1024 * 1024, 413, None),
        ("/payments/verify", False, 17 * 1024, 413, "payload_too_large"),
        ("/webhooks/steppay", False, 300 * 1024, 413, "payload_too_large"),
        ("/webhooks/steppay", False, 11 * 1024 * 1024, 413, None),
    ],
    ids=[
        "checkouts over 16 KiB",
        "checkouts over 16 KiB unsigned",
        "checkouts over 10 MB",
        "verify over 16 KiB",
        "webhook over 256 KiB",
        "webhook over 10 MB",
    ],
)
def test_bodies_over_the_size_limits(
    harness: Harness, reliability: Any, path: str, signed: bool, size: int, status: int, body_code: str | None
) -> None:
    h = harness
    with reliability.case(
        SUITE, f"{path}: body of {size} bytes{'' if signed or path != '/checkouts' else ' unsigned'}"
    ):
        events_before, before = begin(h)
        orders_before = steppay_order_count(h)
        data = b'{"orderCode": "' + b"a" * size + b'"}'
        response = h.post_raw(path, data, auth=MERCHANT_AUTH if signed else None)
        if body_code is None:  # API Gateway's own answer: beyond its 10 MB limit, or unsigned
            assert response.status_code == status
            message = "Request Entity Too Large" if status == 413 else "Forbidden"
            assert response.json() == {"message": message}
            h.assert_no_leak(response)
        else:
            h.assert_error(response, status, body_code)
        assert steppay_order_count(h) == orders_before, "an order was created at StepPay"
        finish(h, events_before, before)
