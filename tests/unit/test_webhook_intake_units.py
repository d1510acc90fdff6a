"""Webhook intake and processing rules, in process with fakes: hints, size caps, metric
dimensions, one queue write per actionable delivery (none otherwise, nothing deduplicated), stale
signatures, v1 gating, the queue message, and the processor's batch coalescing."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import SecretStr

from steppay import intake
from steppay.errors import StepPayUnavailable
from steppay.intake import QueuedWebhook, WebhookOutcome
from steppay.persistence import PaymentRecord, PaymentState
from steppay.signature import sign
from steppay.webhooks import (
    MAX_BODY_BYTES,
    WebhookHint,
    WebhookTooLarge,
    WebhookUnauthenticated,
    WebhookV1Disabled,
    authenticate_webhook,
    hint_from_body,
    metric_event_type,
)

KEY = "whsec_unit-key"
KEYS = (SecretStr(KEY),)
NOW = 1_800_000_000


def v2(event: str, data: dict[str, Any], timestamp: int = NOW) -> bytes:
    return json.dumps({"timestamp": timestamp, "version": "v1", "event": event, "data": data}).encode()


def signed(raw: bytes, at: int = NOW) -> dict[str, str]:
    return {"Steppay-Signature": sign(raw, KEY, at)}


def authenticate(raw: bytes, headers: dict[str, str] | None = None, **kwargs: Any) -> Any:
    return authenticate_webhook(raw, headers or {}, KEYS, tolerance_seconds=300, now=NOW, **kwargs)


# -- hints -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "body", "hint"),
    [
        ("order.payment_completed", {"data": {"id": 5, "code": "order_a"}}, WebhookHint("order", "order_a")),
        ("order.updated", {"data": {"id": 5}}, WebhookHint("order", "5")),
        ("payment.canceled", {"data": {"orderId": 7}}, WebhookHint("order", "7")),
        ("subscription.updated", {"data": {"subscriptionId": 9}}, WebhookHint("subscription", None, 9)),
        ("subscription.updated", {"data": {"subscriptionId": True}}, WebhookHint("none")),
        ("order.created", {"data": {"id": 5, "code": "order_a"}}, WebhookHint("none")),
        ("customer.updated", {"data": {"id": 5}}, WebhookHint("none")),
        ("payment.completed", {"data": {}}, WebhookHint("none")),
        ("order.updated", {"data": "x"}, WebhookHint("none")),
        ("v1.subscription", {"id": 11, "status": "ACTIVE"}, WebhookHint("subscription", None, 11)),
        ("v1.order.PAYMENT", {"webHookType": "PAYMENT", "orderId": 12}, WebhookHint("order", "12")),
    ],
)
def test_hint_names_what_to_look_up_never_what_to_believe(event: str, body: Any, hint: WebhookHint) -> None:
    assert hint_from_body(event, body) == hint


def test_types_that_change_nothing_are_not_actionable() -> None:
    for event, data in (("order.created", {"id": 1, "code": "order_a"}), ("customer.updated", {"id": 1})):
        raw = v2(event, data)
        assert authenticate(raw, signed(raw)).actionable is False
    raw = v2("order.payment_completed", {"id": 1, "code": "order_a"})
    assert authenticate(raw, signed(raw)).actionable is True


# -- size caps, metric dimensions ----------------------------------------------------------------


def test_bodies_are_capped_per_version() -> None:
    v1 = json.dumps({"webHookType": "PAYMENT", "orderId": 1, "pad": "x" * MAX_BODY_BYTES["v1"]}).encode()
    with pytest.raises(WebhookTooLarge) as caught:
        authenticate(v1, v1_enabled=True)
    assert (caught.value.status, caught.value.code) == (413, "payload_too_large")
    small_v1 = json.dumps({"webHookType": "PAYMENT", "orderId": 1}).encode()
    assert authenticate(small_v1, v1_enabled=True).version == "v1"
    # The same size is fine for v2, which has a cap of its own.
    v2_body = v2("order.updated", {"id": 1, "pad": "x" * MAX_BODY_BYTES["v1"]})
    assert authenticate(v2_body, signed(v2_body)).version == "v2"
    too_big = v2("order.updated", {"id": 1, "pad": "x" * MAX_BODY_BYTES["v2"]})
    with pytest.raises(WebhookTooLarge):
        authenticate(too_big, signed(too_big))


@pytest.mark.parametrize(
    ("event_type", "dimension"),
    [
        ("order.payment_completed", "order.payment_completed"),
        ("subscription.updated", "subscription.updated"),
        ("v1.subscription", "v1.subscription"),
        ("v1.order.PAYMENT", "v1.order.PAYMENT"),
        ("v1.order.ANYTHING", "other"),
        ("customer.updated", "other"),
        ("x" * 100, "other"),
    ],
)
def test_metric_dimension_comes_from_a_fixed_list(event_type: str, dimension: str) -> None:
    assert metric_event_type(event_type) == dimension


# -- the intake's one durable write, stale signatures, v1 ------------------------------------------


@dataclass
class FakeQueue:
    sent: list[dict[str, Any]] = field(default_factory=list)

    def send_message(self, **request: Any) -> dict[str, str]:
        self.sent.append(request)
        return {"MessageId": str(len(self.sent))}


@pytest.fixture
def queue(monkeypatch: pytest.MonkeyPatch) -> FakeQueue:
    fake = FakeQueue()
    monkeypatch.setattr(intake, "_sqs_client", lambda: fake)
    monkeypatch.setattr(intake, "get_webhook_keys", lambda: KEYS)
    monkeypatch.setattr(
        intake,
        "get_settings",
        lambda: SimpleNamespace(
            webhook_tolerance_seconds=300, webhook_v1_intake="enabled", webhook_queue_url="q"
        ),
    )
    return fake


def test_each_actionable_delivery_is_one_queue_write_and_nothing_is_deduplicated(queue: FakeQueue) -> None:
    # The same signed request twice (a portal resend), then a real change back to the same body.
    raw = v2("subscription.updated", {"subscriptionId": 9, "status": "ACTIVE"})
    headers = {"Steppay-Signature": sign(raw, KEY, int(time.time()))}
    answers = [intake.accept_webhook(raw, headers) for _ in range(2)]
    v1 = b'{"id":9,"status":"ACTIVE"}'
    answers += [intake.accept_webhook(v1, {}) for _ in range(2)]
    assert [a.queued for a in answers] == [True] * 4
    assert len(queue.sent) == 4
    messages = [QueuedWebhook.model_validate_json(m["MessageBody"]) for m in queue.sent]
    assert {(m.hint, m.subscription_id) for m in messages} == {("subscription", 9)}


def test_types_that_change_nothing_are_acknowledged_without_any_write(queue: FakeQueue) -> None:
    now = int(time.time())
    for event, data in (("order.created", {"id": 1, "code": "order_a"}), ("customer.updated", {"id": 1})):
        raw = v2(event, data, timestamp=now)
        assert intake.accept_webhook(raw, {"Steppay-Signature": sign(raw, KEY, now)}).queued is False
    assert queue.sent == []


def test_an_authentic_signature_older_than_the_tolerance_is_accepted_as_stale() -> None:
    raw = v2("order.payment_completed", {"id": 1, "code": "order_a"})
    old = authenticate(raw, signed(raw, at=NOW - 86_400))
    assert old.stale_signature is True and old.signature_timestamp == NOW - 86_400
    fresh = authenticate(raw, signed(raw, at=NOW - 10))
    assert fresh.stale_signature is False


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (lambda raw: sign(raw, "not-the-key", NOW - 86_400), "signature_mismatch"),  # old and forged
        (lambda raw: sign(raw + b" ", KEY, NOW - 86_400), "signature_mismatch"),  # old, other body
        (lambda raw: sign(raw, "not-the-key", NOW), "signature_mismatch"),
        (lambda raw: "garbage", "signature_malformed"),
        (lambda raw: None, "signature_missing"),
    ],
)
def test_bad_signatures_are_refused_however_old(header: Any, code: str) -> None:
    raw = v2("order.payment_completed", {"id": 1, "code": "order_a"})
    value = header(raw)
    with pytest.raises(WebhookUnauthenticated) as caught:
        authenticate(raw, {"Steppay-Signature": value} if value is not None else {})
    assert (caught.value.status, caught.value.code) == (401, code)


def test_a_timestamp_far_in_the_future_is_refused() -> None:
    raw = v2("order.payment_completed", {"id": 1, "code": "order_a"})
    with pytest.raises(WebhookUnauthenticated) as caught:
        authenticate(raw, signed(raw, at=NOW + 3600))
    assert caught.value.code == "signature_stale"


def test_v1_bodies_are_refused_unless_enabled() -> None:
    raw = b'{"id":9,"status":"ACTIVE"}'
    with pytest.raises(WebhookV1Disabled) as caught:
        authenticate(raw)
    assert (caught.value.status, caught.value.code) == (400, "webhook_v1_disabled")
    assert authenticate(raw, v1_enabled=True).hint == WebhookHint("subscription", None, 9)


# -- processing: coalescing and what the record already answers ---------------------------------


@dataclass
class FakeRecords:
    payments: dict[str, PaymentRecord] = field(default_factory=dict)

    def get_payment(self, code: str) -> PaymentRecord | None:
        return self.payments.get(code)

    def settled_state_by_order_id(self, order_id: int) -> PaymentState | None:
        for record in self.payments.values():
            if record.order_id == order_id and record.state in (PaymentState.PAID, PaymentState.CANCELED):
                return record.state
        return None


def queued(event: str, data: dict[str, Any]) -> QueuedWebhook:
    raw = v2(event, data)
    return QueuedWebhook.of(authenticate(raw, signed(raw)))


@dataclass
class FakeFlows:
    order_lookups: list[str] = field(default_factory=list)
    subscription_lookups: list[int] = field(default_factory=list)
    fail: bool = False
    renewal_of: int | None = None  # a subscription the confirmed orders renew

    def confirm_order(self, ref: str, *, via: Any) -> Any:
        self.order_lookups.append(ref)
        if self.fail:
            raise StepPayUnavailable("down")
        verdict = SimpleNamespace(value="CANCELED")
        record = SimpleNamespace(subscription_id=self.renewal_of) if self.renewal_of is not None else None
        return SimpleNamespace(record=record, registered=True, result=SimpleNamespace(verdict=verdict))

    def sync_subscription(self, subscription_id: int) -> Any:
        self.subscription_lookups.append(subscription_id)
        if self.fail:
            raise StepPayUnavailable("down")
        return SimpleNamespace(status="PAUSE"), True


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> tuple[FakeRecords, FakeFlows]:
    import steppay.service
    from steppay import persistence

    store, flows = FakeRecords(), FakeFlows()
    monkeypatch.setattr(persistence, "get_payment_store", lambda: store)
    monkeypatch.setattr(steppay.service, "get_payment_flows", lambda: flows)
    return store, flows


def test_deliveries_for_one_subscription_in_a_batch_cost_one_lookup(
    world: tuple[FakeRecords, FakeFlows],
) -> None:
    _, flows = world
    same = [queued("subscription.updated", {"subscriptionId": 9, "n": n}) for n in range(3)]
    other = queued("subscription.updated", {"subscriptionId": 10})
    batch = intake.BatchLookups()
    outcomes = [intake.process_queued_webhook(message, batch) for message in [*same, other]]
    assert flows.subscription_lookups == [9, 10]
    assert [o.looked_up for o in outcomes] == [True, False, False, True]
    assert {(o.state, o.detail) for o in outcomes[:3]} == {(WebhookOutcome.PROCESSED, "subscription PAUSE")}
    # A new batch asks again: a look-up answers only deliveries received before it.
    intake.process_queued_webhook(
        queued("subscription.updated", {"subscriptionId": 9}), intake.BatchLookups()
    )
    assert flows.subscription_lookups == [9, 10, 9]


def test_a_failed_lookup_fails_every_delivery_it_would_have_answered(
    world: tuple[FakeRecords, FakeFlows],
) -> None:
    _, flows = world
    flows.fail = True
    batch = intake.BatchLookups()
    for n in range(2):
        with pytest.raises(StepPayUnavailable):  # each fails: the queue delivers both again
            intake.process_queued_webhook(
                queued("subscription.updated", {"subscriptionId": 9, "n": n}), batch
            )
    assert flows.subscription_lookups == [9]  # one call to a StepPay that is down


def test_a_payment_hint_for_an_order_recorded_paid_needs_no_lookup_but_a_refund_does(
    world: tuple[FakeRecords, FakeFlows],
) -> None:
    store, flows = world
    store.payments["order_a"] = PaymentRecord(order_code="order_a", order_id=5, state=PaymentState.PAID)
    batch = intake.BatchLookups()
    first = intake.process_queued_webhook(
        queued("order.payment_completed", {"id": 5, "code": "order_a"}), batch
    )
    assert (first.state, first.looked_up) == (WebhookOutcome.PROCESSED, False)
    assert flows.order_lookups == []
    # The record's "it was paid" does not answer the refund delivery of the same batch.
    second = intake.process_queued_webhook(queued("order.updated", {"id": 5, "code": "order_a"}), batch)
    assert second.looked_up is True and flows.order_lookups == ["order_a"]
    # An order not recorded PAID is looked up, payment hint or not.
    intake.process_queued_webhook(queued("order.payment_completed", {"id": 6, "code": "order_b"}), batch)
    assert flows.order_lookups == ["order_a", "order_b"]
    # payment.completed names StepPay's numeric id: the settled-orders index answers it.
    by_id = intake.process_queued_webhook(queued("payment.completed", {"orderId": 5}), intake.BatchLookups())
    assert (by_id.detail, by_id.looked_up) == ("order PAID (recorded)", False)
    unknown_id = intake.process_queued_webhook(
        queued("payment.completed", {"orderId": 77}), intake.BatchLookups()
    )
    assert unknown_id.looked_up is True and flows.order_lookups[-1] == "77"


def test_a_renewal_answers_the_subscription_deliveries_of_its_batch(
    world: tuple[FakeRecords, FakeFlows],
) -> None:
    _, flows = world
    flows.renewal_of = 9  # what StepPay's order names
    batch = intake.BatchLookups()
    intake.process_queued_webhook(queued("order.payment_completed", {"id": 8, "code": "order_r"}), batch)
    assert flows.subscription_lookups == [9]
    same = intake.process_queued_webhook(queued("subscription.updated", {"subscriptionId": 9}), batch)
    assert (same.detail, same.looked_up) == ("subscription PAUSE", False)
    other = intake.process_queued_webhook(queued("subscription.updated", {"subscriptionId": 10}), batch)
    assert other.looked_up is True and flows.subscription_lookups == [9, 10]


def test_queue_message_carries_the_hint_and_small_metadata_only() -> None:
    raw = v2("order.payment_completed", {"id": 5, "code": "order_a", "customer": {"email": "a@b.c"}})
    message = json.loads(QueuedWebhook.of(authenticate(raw, signed(raw))).to_message())
    assert set(message) == {
        "version",
        "eventType",
        "receivedAt",
        "bodySha256",
        "hint",
        "signatureTimestamp",
        "orderRef",
    }
    assert (message["hint"], message["orderRef"], message["signatureTimestamp"]) == ("order", "order_a", NOW)
    assert "a@b.c" not in json.dumps(message)
    # What the processor reads back is what was queued; anything else is refused (to the DLQ).
    assert QueuedWebhook.model_validate_json(json.dumps(message)).order_ref == "order_a"
    for broken in ({**message, "hint": "none"}, {**message, "bodySha256": "x"}, {"dedupeKey": "k"}):
        with pytest.raises(ValueError):
            QueuedWebhook.model_validate_json(json.dumps(broken))


def test_every_documented_event_is_either_acted_on_or_inert() -> None:
    from steppay import webhook_events as ev

    naming_everything = {"data": {"id": 5, "code": "order_a", "orderId": 5, "subscriptionId": 9}}
    for event in ev.ORDER_EVENTS | ev.PAYMENT_EVENTS | ev.SUBSCRIPTION_EVENTS:
        acted_on = hint_from_body(event, naming_everything).kind != "none"
        assert acted_on is (event not in ev.INERT_EVENTS), event
        assert metric_event_type(event) == event
    assert ev.PAYMENT_COMPLETED_EVENTS <= ev.KNOWN_EVENTS - ev.INERT_EVENTS
