"""The order state machine's one table, driven row by row through the payment flows (in memory).

Each row of `steppay.transitions.TRANSITIONS` is exercised for each order kind it applies to:
the order starts in each state the row allows (or with no record), StepPay's answer gives the
row's verdict, and the flow must record the row's state once, with the row's event as the outbox
derives it. Moves the table does not allow must leave the record as it was and announce nothing.
docs/ARCHITECTURE.md must show the table as `render_markdown()` renders it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import pytest
from fixtures.fakes import InMemoryPaymentStore, InMemoryStepPay

from steppay.events import events_for_order_change
from steppay.models import OrderDetail
from steppay.payments import PaymentFlows
from steppay.persistence import (
    PaymentRecord,
    PaymentStore,
    RegisteredItem,
    Registration,
    SubscriptionRecord,
    VerifiedVia,
)
from steppay.settings import Settings
from steppay.transitions import (
    PAYMENT_CANCELED,
    PAYMENT_REFUNDED,
    TRANSITIONS,
    OrderKind,
    PaymentState,
    Transition,
    event_for,
    render_markdown,
    transition_for,
)
from steppay.verdicts import Verdict

ROOT = Path(__file__).resolve().parents[2]
CONTEXT = {"steppay_timezone": "Asia/Seoul"}
CODE = "order_Trans1tion"
SUBSCRIPTION = 77
CUSTOMER = 1001
REGISTRATION = Registration(
    checkout_id="chk_" + "1" * 32,
    merchant_ref="cart-transitions",
    customer_id=CUSTOMER,
    items=[RegisteredItem(product_code="product_a", price_code="price_a", currency="KRW", quantity=1)],
)
ORDER_TYPE = {OrderKind.FIRST: "ONE_TIME", OrderKind.RENEWAL: "RECURRING"}
PARTIAL = 4000  # StepPay's returnedAmount of a partly refunded answer below (of 15,000)
RECORDED_PARTIAL = 1000  # what a PARTIALLY_REFUNDED record of ours holds: an earlier refund


def steppay_order(verdict: Verdict, kind: OrderKind) -> OrderDetail:
    """StepPay's answer that gives `verdict` for the registration above."""
    paid = verdict in (
        Verdict.PAID, Verdict.MISMATCH, Verdict.PARTIALLY_REFUNDED, Verdict.CANCELED, Verdict.NEEDS_REVIEW
    )
    status = {
        Verdict.PAID: "PAID",
        Verdict.MISMATCH: "PAID",
        Verdict.PARTIALLY_REFUNDED: "CANCELLATION_REFUNDED_PARTIALLY",
        Verdict.CANCELED: "CANCELLATION_REFUNDED",
        Verdict.NEEDS_REVIEW: "A_STATUS_STEPPAY_ADDS_LATER",
    }.get(verdict, "PAYMENT_FAILURE")
    returned = {Verdict.CANCELED: 15000, Verdict.PARTIALLY_REFUNDED: PARTIAL}.get(verdict, 0)
    data: dict[str, Any] = {
        "orderId": 501,
        "orderCode": CODE,
        "type": ORDER_TYPE[kind],
        "paidAmount": 15000 if paid else 0,
        "returnedAmount": returned,
        "paymentDate": "2026-12-01T10:00:00" if paid else None,
        "items": [
            {
                "status": status,
                "currency": "KRW",
                "quantity": 1,
                "paidAmount": 15000 if paid else 0,
                "price": {"code": "price_a", "price": 15000},
                "product": {"code": "product_a"},
            }
        ],
        # Another customer paid: the one thing that turns a payment into MISMATCH here.
        "customer": {"id": CUSTOMER + 1 if verdict is Verdict.MISMATCH else CUSTOMER},
        "payment": {"amount": 15000, "paymentMethod": "CARD", "errorCode": None if paid else "CARD_DECLINED"},
    }
    if kind is OrderKind.RENEWAL:
        data["parentSubscription"] = {"id": SUBSCRIPTION}
    return OrderDetail.model_validate(data, context=CONTEXT)


def known_record(state: PaymentState, kind: OrderKind, returned: int = RECORDED_PARTIAL) -> PaymentRecord:
    """Our record in `state`; a partly refunded one holds an earlier, smaller refund."""
    partly = state is PaymentState.PARTIALLY_REFUNDED
    return PaymentRecord(
        order_code=CODE,
        order_id=501,
        order_type=ORDER_TYPE[kind],
        state=state,
        amount=Decimal(15000),
        paid_amount=Decimal(15000) if partly else None,
        returned_amount=Decimal(returned) if partly else None,
        currency="KRW",
        merchant_ref=REGISTRATION.merchant_ref,
        registration=REGISTRATION,
    )


def flows_for(
    before: PaymentState | None, verdict: Verdict, kind: OrderKind, returned: int = RECORDED_PARTIAL
) -> tuple[PaymentFlows, InMemoryPaymentStore]:
    store = InMemoryPaymentStore()
    if before is not None:
        store.payments[CODE] = known_record(before, kind, returned)
    # A renewal finds its registration through its subscription's checkout.
    store.subscriptions[SUBSCRIPTION] = SubscriptionRecord(
        subscription_id=SUBSCRIPTION,
        status="ACTIVE",
        observed_at=datetime.now(UTC),
        registration=REGISTRATION,
        merchant_ref=REGISTRATION.merchant_ref,
    )
    steppay = InMemoryStepPay(orders={CODE: steppay_order(verdict, kind)})
    return PaymentFlows(steppay, cast(PaymentStore, store), Settings()), store


# A first payment always has its record (the registration's PENDING one): with none, the order
# is not ours and nothing is recorded (test_an_order_without_a_registration_is_never_recorded).
VERDICT_ROWS = [
    (row, kind, before)
    for row in TRANSITIONS
    if row.verdict is not None
    for kind in row.events
    for before in ((None,) if row.from_nothing and kind is OrderKind.RENEWAL else ()) + row.from_states
]


@pytest.mark.parametrize(
    ("row", "kind", "before"),
    VERDICT_ROWS,
    ids=[f"{b.value if b else 'none'}-{r.verdict}-{k.value}" for r, k, b in VERDICT_ROWS],
)
def test_each_allowed_move_is_recorded_once_with_its_event(
    row: Transition, kind: OrderKind, before: PaymentState | None
) -> None:
    assert row.verdict is not None
    flows, store = flows_for(before, row.verdict, kind)
    confirmation = flows.confirm_order(CODE, via=VerifiedVia.WEBHOOK)
    assert confirmation.result.verdict is row.verdict
    assert confirmation.newly_recorded and confirmation.record is not None
    assert confirmation.record.state is row.to
    ((old, new),) = store.changes
    assert [e.detail_type for e in events_for_order_change(old, new)] == [row.events[kind]]
    # The same answer again changes nothing and announces nothing.
    again = flows.confirm_order(CODE, via=VerifiedVia.RECONCILIATION)
    assert not again.newly_recorded and len(store.changes) == 1


DISALLOWED = [
    (verdict, kind, before)
    for verdict in (
        Verdict.PAID,
        Verdict.MISMATCH,
        Verdict.FAILED,
        Verdict.PARTIALLY_REFUNDED,
        Verdict.CANCELED,
        Verdict.NEEDS_REVIEW,
    )
    for kind in OrderKind
    for before in (None, *PaymentState)
    if ((row := transition_for(verdict, kind)) is None or not row.allows(before))
    and not (kind is OrderKind.FIRST and before is None)  # not ours: the test above
]


@pytest.mark.parametrize(
    ("verdict", "kind", "before"),
    DISALLOWED,
    ids=[f"{b.value if b else 'none'}-{v}-{k.value}" for v, k, b in DISALLOWED],
)
def test_a_move_the_table_does_not_allow_records_nothing(
    verdict: Verdict, kind: OrderKind, before: PaymentState | None
) -> None:
    flows, store = flows_for(before, verdict, kind)
    confirmation = flows.confirm_order(CODE, via=VerifiedVia.WEBHOOK)
    assert confirmation.result.verdict is verdict
    assert not confirmation.newly_recorded
    assert store.changes == []
    stored = store.payments.get(CODE)
    assert (stored.state if stored is not None else None) is before


def test_the_disallowed_cases_include_the_ones_that_matter() -> None:
    # A refunded order is never paid again; a failed first payment records nothing.
    assert (Verdict.PAID, OrderKind.FIRST, PaymentState.CANCELED) in DISALLOWED
    assert (Verdict.FAILED, OrderKind.FIRST, PaymentState.PENDING) in DISALLOWED
    assert (Verdict.CANCELED, OrderKind.RENEWAL, None) in DISALLOWED
    assert (Verdict.MISMATCH, OrderKind.FIRST, PaymentState.PAID) in DISALLOWED
    assert (Verdict.PAID, OrderKind.RENEWAL, PaymentState.MISMATCH) in DISALLOWED
    # A mismatch stays a mismatch (a person decides), whatever StepPay adds later.
    assert (Verdict.NEEDS_REVIEW, OrderKind.FIRST, PaymentState.MISMATCH) in DISALLOWED
    # A refund is of a recorded payment: never of a pending order, never after the payment emptied.
    assert (Verdict.PARTIALLY_REFUNDED, OrderKind.FIRST, PaymentState.PENDING) in DISALLOWED
    assert (Verdict.PARTIALLY_REFUNDED, OrderKind.FIRST, PaymentState.CANCELED) in DISALLOWED
    assert (Verdict.PARTIALLY_REFUNDED, OrderKind.RENEWAL, None) in DISALLOWED
    assert (Verdict.PAID, OrderKind.FIRST, PaymentState.PARTIALLY_REFUNDED) in DISALLOWED


def test_partial_and_repeated_refunds_are_rows_of_the_table() -> None:
    partial = transition_for(Verdict.PARTIALLY_REFUNDED, OrderKind.FIRST)
    canceled = transition_for(Verdict.CANCELED, OrderKind.FIRST)
    assert partial is not None and canceled is not None
    assert partial.to is PaymentState.PARTIALLY_REFUNDED
    assert set(partial.from_states) == {
        PaymentState.PAID,
        PaymentState.PARTIALLY_REFUNDED,
        PaymentState.NEEDS_REVIEW,
    }
    assert PaymentState.PARTIALLY_REFUNDED in canceled.from_states
    assert partial.grows_from == canceled.grows_from == (PaymentState.PARTIALLY_REFUNDED,)
    for kind in OrderKind:
        assert partial.events[kind] == PAYMENT_REFUNDED and canceled.events[kind] == PAYMENT_CANCELED
    # A later partial refund announces only when StepPay's running total grew.
    state = PaymentState.PARTIALLY_REFUNDED
    grew = {"returned_before": Decimal(1000), "returned_after": Decimal(4000)}
    same = {"returned_before": Decimal(4000), "returned_after": Decimal(4000)}
    assert event_for(state, state, OrderKind.FIRST, **grew) == PAYMENT_REFUNDED
    assert event_for(state, state, OrderKind.FIRST, **same) is None
    assert event_for(state, state, OrderKind.FIRST) is None
    assert event_for(PaymentState.PAID, state, OrderKind.FIRST, returned_after=Decimal(1)) == PAYMENT_REFUNDED
    assert event_for(state, PaymentState.CANCELED, OrderKind.FIRST, **grew) == PAYMENT_CANCELED
    assert event_for(PaymentState.PAID, PaymentState.PAID, OrderKind.FIRST, **grew) is None


@pytest.mark.parametrize("kind", list(OrderKind))
@pytest.mark.parametrize("recorded", [PARTIAL, PARTIAL + 1000])
def test_a_stale_or_repeated_partial_refund_records_nothing(kind: OrderKind, recorded: int) -> None:
    # Our record already holds StepPay's returnedAmount (or more): the answer is old news.
    flows, store = flows_for(PaymentState.PARTIALLY_REFUNDED, Verdict.PARTIALLY_REFUNDED, kind, recorded)
    confirmation = flows.confirm_order(CODE, via=VerifiedVia.WEBHOOK)
    assert confirmation.result.verdict is Verdict.PARTIALLY_REFUNDED
    assert not confirmation.newly_recorded and store.changes == []
    stored = store.payments[CODE]
    assert stored.state is PaymentState.PARTIALLY_REFUNDED and stored.returned_amount == Decimal(recorded)


def test_the_store_itself_refuses_a_smaller_or_equal_returned_amount() -> None:
    store = InMemoryPaymentStore()
    store.payments[CODE] = known_record(PaymentState.PARTIALLY_REFUNDED, OrderKind.FIRST, PARTIAL)
    for returned in (PARTIAL - 1, PARTIAL):
        write = known_record(PaymentState.PARTIALLY_REFUNDED, OrderKind.FIRST, returned)
        assert store.record_transition(write)[1] is False
    write = known_record(PaymentState.PARTIALLY_REFUNDED, OrderKind.FIRST, PARTIAL + 1)
    stored, newly = store.record_transition(write)
    assert newly and stored.returned_amount == Decimal(PARTIAL + 1)


@pytest.mark.parametrize(
    "verdict",
    [
        Verdict.PAID,
        Verdict.MISMATCH,
        Verdict.FAILED,
        Verdict.PARTIALLY_REFUNDED,
        Verdict.CANCELED,
        Verdict.NEEDS_REVIEW,
    ],
)
def test_an_order_without_a_registration_is_never_recorded(verdict: Verdict) -> None:
    flows, store = flows_for(None, verdict, OrderKind.FIRST)
    confirmation = flows.confirm_order(CODE, via=VerifiedVia.RECONCILIATION)
    assert not confirmation.registered and confirmation.record is None
    assert store.changes == [] and store.writes == 0


def test_registration_announces_nothing() -> None:
    (row,) = [r for r in TRANSITIONS if r.verdict is None]
    assert row.to is PaymentState.PENDING and row.events == {OrderKind.FIRST: None}
    assert event_for(None, PaymentState.PENDING, OrderKind.FIRST) is None
    assert events_for_order_change(None, known_record(PaymentState.PENDING, OrderKind.FIRST)) == []


def test_the_architecture_page_shows_the_table() -> None:
    page = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    assert render_markdown() in page
