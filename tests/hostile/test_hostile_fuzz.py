"""Property-based fuzzing (hypothesis) of the webhook and verification endpoints, over HTTP.

Properties, for every generated request: the answer is never a 5xx; a refusal is the error
envelope with a known code and shows nothing internal; a webhook is accepted exactly when it is
a well-formed v1 webhook or a v2 envelope with a valid, fresh signature; a verification is
refused unless every field is valid (an all-digit order code is an order id: refused), and a valid
order code the bundle never registered is `404 order_not_found` without asking StepPay (the
verification and callback fuzzers count StepPay's lookups: none). Over the whole run: no payment
or subscription record was written (only the acknowledged webhooks themselves are kept) and no
event was published. Generated order ids and codes never name a real order (ids >= 10**12, codes
prefixed `zz`).
"""

from __future__ import annotations

import json
import os
import re
import time
from typing import Any

import pytest
from hostile.harness import (
    ERROR_CODES,
    WEBHOOK_KEY,
    Harness,
    begin,
    compact,
    finish,
    leaks,
    sign,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.e2e

SUITE = "fuzzing"
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "120"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
MAX_ID = 2**63 - 1
# An order code (steppay.identifiers.ORDER_CODE_NOT_ID_PATTERN): at most 64 characters, not all digits.
ORDER_CODE = re.compile(r"(?=[A-Za-z0-9_-]{1,64}\Z)[A-Za-z0-9_-]*[A-Za-z_-][A-Za-z0-9_-]*", re.ASCII)
VERIFY_ANSWER = {"verified", "verdict", "orderCode", "amount", "currency", "paidAt"}
STATUS = re.compile(r"[A-Za-z_]{0,32}", re.ASCII)
EVENTS = [
    "order.payment_completed",
    "payment.completed",
    "payment.failed",
    "payment.canceled",
    "order.updated",
    "subscription.created",
    "subscription.updated",
    "order.created",
]

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
any_ids = st.one_of(
    st.integers(min_value=10**12, max_value=MAX_ID),  # valid, but names nothing
    st.integers(max_value=0),
    st.integers(min_value=2**63, max_value=2**80),
    st.text(max_size=20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
)
codes = st.one_of(
    st.from_regex(r"zz[A-Za-z0-9_-]{1,20}", fullmatch=True),  # valid, but names nothing
    st.text(max_size=70),
    st.integers(min_value=0, max_value=10**70).map(str),  # an order id where a code belongs
    st.sampled_from(["../customers", "a/b?x=1", "%2e%2e%2f", "order_1\n", "order_1\r\nX: 1", "١٢٣", ""]),
    st.sampled_from(["ORDER#zz1", "CHECKOUT#chk_1", "IDEMPOTENCY#k", "zz" + "a" * 63, "0" * 64, "1e5"]),
)
v1_orders = st.fixed_dictionaries(
    {
        "webHookType": st.one_of(st.sampled_from(["PAYMENT", "REFUND"]), st.text(max_size=40)),
        "orderId": any_ids,
    }
)
v1_subscriptions = st.fixed_dictionaries(
    {"id": any_ids, "status": st.one_of(st.sampled_from(["ACTIVE", "CANCELED"]), st.integers(), st.none())}
)
v2_data = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "id": any_ids,
            "code": codes,
            "orderId": any_ids,
            "subscriptionId": any_ids,
            "extra": json_values,
        },
    ),
    json_values,
)
v2_envelopes = st.fixed_dictionaries(
    {
        "timestamp": st.integers(min_value=0, max_value=2**40),
        "version": st.just("v1"),
        "event": st.one_of(st.sampled_from(EVENTS), st.text(max_size=120)),
        "data": v2_data,
    }
)
webhook_bodies = st.one_of(v1_orders, v1_subscriptions, v2_envelopes, json_values)
signature_kinds = st.sampled_from(["none", "garbage", "wrong key", "stale", "future", "valid"])


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID


def webhook_accepted(body: Any, signature: str) -> bool:
    """The documented rules (README, steppay.webhooks): what must be acknowledged."""
    if not isinstance(body, dict):
        return False
    if {"timestamp", "event", "data"} <= body.keys():
        event = body["event"]
        shape_ok = isinstance(event, str) and 0 < len(event) <= 100 and isinstance(body["data"], dict)
        # An authentic signature older than the tolerance is accepted too (a portal resend).
        return shape_ok and signature in ("valid", "stale")
    if "webHookType" in body and "orderId" in body:
        kind = body["webHookType"]
        return (
            isinstance(kind, str)
            and kind.isascii()
            and kind.isalnum()
            and len(kind) <= 32
            and _is_id(body["orderId"])
        )
    if "id" in body and "status" in body and len(body) <= 4:
        return _is_id(body["id"]) and isinstance(body["status"], str)
    return False


def signature_for(kind: str, raw: bytes) -> str | None:
    now = int(time.time())
    return {
        "none": None,
        "garbage": "timestamp=abc,key=???",
        "wrong key": sign(raw, "not-the-key", now),
        "stale": sign(raw, WEBHOOK_KEY, now - 3600),
        "future": sign(raw, WEBHOOK_KEY, now + 3600),
        "valid": sign(raw, WEBHOOK_KEY, now),
    }[kind]


def check_refusal_or(h: Harness, response: Any, ok_status: int) -> None:
    assert response.status_code < 500, f"{response.status_code} {response.text[:300]}"
    found = leaks(response.text)
    assert not found, f"answer shows {found}: {response.text[:300]}"
    if response.status_code != ok_status:
        body = response.json()
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
        assert body["error"]["code"] in ERROR_CODES, body


def test_fuzz_webhook_endpoint(harness: Harness, reliability: Any) -> None:
    h = harness
    events_before, before = begin(h)
    counts = {"tried": 0, "passed": 0}

    @SETTINGS
    @given(body=webhook_bodies, kind=signature_kinds)
    def run(body: Any, kind: str) -> None:
        counts["tried"] += 1
        raw = compact(body)
        response = h.webhook(raw, signature_for(kind, raw))
        check_refusal_or(h, response, 200)
        accepted = webhook_accepted(body, kind)
        assert (response.status_code == 200) == accepted, (body, kind, response.status_code, response.text)
        if accepted:
            assert response.json()["received"] is True and set(response.json()) == {"received", "queued"}
        counts["passed"] += 1

    try:
        run()
    finally:
        reliability.cases(SUITE, counts["tried"], counts["passed"])
    finish(h, events_before, before)


def test_fuzz_webhook_raw_bytes(harness: Harness, reliability: Any) -> None:
    h = harness
    events_before, before = begin(h)
    counts = {"tried": 0, "passed": 0}

    @SETTINGS
    @given(
        data=st.binary(max_size=400), content_type=st.sampled_from(["application/json", "text/plain", None])
    )
    def run(data: bytes, content_type: str | None) -> None:
        counts["tried"] += 1
        response = h.post_raw("/webhooks/steppay", data, content_type)
        check_refusal_or(h, response, 200)
        if response.status_code == 200:  # only bytes that happen to be a valid v1 webhook
            assert webhook_accepted(json.loads(data), "none")
        counts["passed"] += 1

    try:
        run()
    finally:
        reliability.cases(SUITE, counts["tried"], counts["passed"])
    finish(h, events_before, before)


verify_bodies = st.one_of(
    st.fixed_dictionaries(
        {"orderCode": codes},
        optional={"orderId": any_ids, "status": st.one_of(st.text(max_size=40), st.none())},
    ),
    st.dictionaries(st.text(max_size=12), json_values, max_size=4),
)


def verify_valid(body: Any) -> bool:
    if not isinstance(body, dict) or set(body) - {"orderCode", "orderId", "status"}:
        return False
    code = body.get("orderCode")
    if not isinstance(code, str) or not ORDER_CODE.fullmatch(code):
        return False
    order_id = body.get("orderId")
    if order_id is not None and not _is_id(order_id):
        return False
    status = body.get("status")
    return status is None or (isinstance(status, str) and bool(STATUS.fullmatch(status)))


def test_fuzz_verify_endpoint(harness: Harness, reliability: Any) -> None:
    h = harness
    events_before, before = begin(h)
    counts = {"tried": 0, "passed": 0}

    @SETTINGS
    @given(body=verify_bodies)
    def run(body: Any) -> None:
        counts["tried"] += 1
        response = h.post("/payments/verify", body)
        check_refusal_or(h, response, 200)
        code = response.json()["error"]["code"] if response.status_code != 200 else None
        if not verify_valid(body):
            assert (response.status_code, code) == (400, "invalid_request"), (body, response.text)
        else:
            # A valid code of no registered order: not found, and StepPay is not asked.
            assert (response.status_code, code) == (404, "order_not_found"), (body, response.text)
        if response.status_code == 200:  # never, as generated; the answer's shape if it were
            assert set(response.json()) == VERIFY_ANSWER
        counts["passed"] += 1

    try:
        with h.lookup_probe() as lookups:
            run()
            assert lookups() == 0, "StepPay was asked about an order the bundle never registered"
    finally:
        reliability.cases(SUITE, counts["tried"], counts["passed"])
    finish(h, events_before, before)


def test_fuzz_callback_endpoint(harness: Harness, reliability: Any) -> None:
    h = harness
    events_before, before = begin(h)
    counts = {"tried": 0, "passed": 0}

    @SETTINGS
    @given(
        params=st.fixed_dictionaries(
            {},
            optional={
                "order_code": codes,
                "order_id": st.one_of(st.text(max_size=25), st.integers().map(str)),
                "status": st.text(max_size=40),
            },
        )
    )
    def run(params: dict[str, str]) -> None:
        counts["tried"] += 1
        response = h.request("GET", "/payments/callback", params=params)
        check_refusal_or(h, response, 303)
        code_ok = bool(ORDER_CODE.fullmatch(params.get("order_code", "\n")))
        status_ok = bool(STATUS.fullmatch(params.get("status", "")))
        if not (code_ok and status_ok):
            assert response.status_code == 400, (params, response.status_code, response.text)
        else:
            # Valid names of no registered order: refused (a bad order_id) or not found; never a
            # redirect, and StepPay is not asked.
            assert response.status_code in (400, 404), (params, response.status_code, response.text)
            if response.status_code == 404:
                assert response.json()["error"]["code"] == "order_not_found"
        counts["passed"] += 1

    try:
        with h.lookup_probe() as lookups:
            run()
            assert lookups() == 0, "StepPay was asked about an order the bundle never registered"
    finally:
        reliability.cases(SUITE, counts["tried"], counts["passed"])
    finish(h, events_before, before)
