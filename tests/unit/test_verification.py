"""The payment verification rules: every verdict, the precedence, and properties."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from pydantic import ValidationError

from steppay.models import OrderDetail, OrderItemStatus
from steppay.verification import (
    CANCELED_ITEM_STATES,
    PaymentClaim,
    Verdict,
    verify_payment,
)

SEOUL = ZoneInfo("Asia/Seoul")
CODE = "order_Xb3kR9pQ2mZt"
CONTEXT = {"steppay_timezone": "Asia/Seoul"}


def order(
    *,
    paid: bool = True,
    amount: Decimal | int = 15000,
    statuses: tuple[str, ...] = ("PAID",),
    currency: str = "KRW",
    returned: Decimal | int = 0,
    error_code: str | None = None,
    error_message: str | None = None,
    order_id: int = 1001,
    code: str = CODE,
    order_type: str = "ONE_TIME",
) -> OrderDetail:
    data: dict[str, Any] = {
        "orderId": order_id,
        "orderCode": code,
        "type": order_type,
        "paidAmount": amount if paid else 0,
        "returnedAmount": returned,
        "paymentDate": "2023-06-19T06:19:55.403711" if paid else None,
        "items": [{"status": s, "currency": currency, "paidAmount": amount} for s in statuses],
        "payment": {
            "amount": amount,
            "paymentMethod": "CARD",
            "paymentGateway": "NICE",
            "paymentDate": "2023-06-19T06:19:55.403711" if paid else None,
            "errorCode": error_code,
            "errorMessage": error_message,
        },
    }
    return OrderDetail.model_validate(data, context=CONTEXT)


def claim(
    *,
    code: str = CODE,
    order_id: int | None = 1001,
    amount: Decimal | None = Decimal(15000),
    currency: str | None = "KRW",
) -> PaymentClaim:
    return PaymentClaim(
        order_code=code, order_id=order_id, expected_amount=amount, expected_currency=currency
    )


# -- every verdict ---------------------------------------------------------------------------


def test_paid() -> None:
    result = verify_payment(claim(), order())
    assert result.verdict is Verdict.PAID and result.verified
    ev = result.evidence
    assert (ev.order_code, ev.order_id, ev.order_type) == (CODE, 1001, "ONE_TIME")
    assert ev.paid_amount == Decimal(15000) and ev.returned_amount == Decimal(0)
    assert ev.currency == "KRW" and ev.expected_currency == "KRW" and ev.expected_amount == Decimal(15000)
    assert ev.payment_date == datetime(2023, 6, 19, 6, 19, 55, 403711, tzinfo=SEOUL)
    assert ev.payment_date is not None and ev.payment_date.utcoffset() == timedelta(hours=9)
    assert ev.payment_date_raw == "2023-06-19T06:19:55.403711"
    assert (ev.payment_method, ev.payment_gateway) == ("CARD", "NICE")
    assert ev.item_statuses == ("PAID",)
    assert ev.reasons


def test_paid_without_known_amount_currency_or_id() -> None:
    result = verify_payment(claim(order_id=None, amount=None, currency=None), order(amount=99))
    assert result.verdict is Verdict.PAID


def test_paid_amounts_compare_as_numbers() -> None:
    assert verify_payment(claim(amount=Decimal("9900.10")), order(amount=Decimal("9900.1"))).verified


@pytest.mark.parametrize(
    "statuses",
    [
        ("ORDER_DELIVERY_PREPARING",),
        ("ORDER_DELIVERY_ON_THE_WAY", "ORDER_DELIVERY_COMPLETED"),
        ("FINISHED_SUCCESSFULLY",),
        ("PAID", "ORDER_DELIVERY_SUSPENDED"),
        ("CANCELLATION_REQUEST",),  # asked for, not done: still paid
    ],
)
def test_delivery_and_later_states_are_still_paid(statuses: tuple[str, ...]) -> None:
    assert verify_payment(claim(), order(statuses=statuses)).verdict is Verdict.PAID


def test_an_order_without_items_is_paid_when_no_currency_is_expected() -> None:
    assert verify_payment(claim(currency=None), order(statuses=())).verdict is Verdict.PAID


def test_a_stale_error_code_does_not_undo_a_completed_payment() -> None:
    result = verify_payment(claim(), order(error_code="E001", error_message="card declined"))
    assert result.verdict is Verdict.PAID
    assert result.evidence.error_code == "E001"


def test_not_paid() -> None:
    result = verify_payment(claim(), order(paid=False, statuses=("CREATED",)))
    assert result.verdict is Verdict.NOT_PAID and not result.verified
    assert result.evidence.payment_date is None and result.evidence.paid_amount == 0


def test_unpaid_order_is_not_a_mismatch_because_paid_amount_is_zero() -> None:
    assert verify_payment(claim(amount=Decimal(15000)), order(paid=False)).verdict is Verdict.NOT_PAID


def test_deposit_waiting_is_not_paid_even_with_a_payment_date() -> None:
    assert verify_payment(claim(), order(statuses=("DEPOSIT_WAITING",))).verdict is Verdict.NOT_PAID


def test_payment_date_contradicted_by_a_failed_item_is_not_paid() -> None:
    result = verify_payment(claim(), order(statuses=("PAID", "PAYMENT_FAILURE")))
    assert result.verdict is Verdict.NOT_PAID
    assert any("PAYMENT_FAILURE" in r for r in result.reasons)


def test_failed_by_item_status() -> None:
    result = verify_payment(claim(), order(paid=False, statuses=("PAYMENT_FAILURE",)))
    assert result.verdict is Verdict.FAILED


@pytest.mark.parametrize(("code", "message"), [("CARD_DECLINED", None), (None, "한도 초과"), ("E", "x")])
def test_failed_by_payment_error(code: str | None, message: str | None) -> None:
    result = verify_payment(
        claim(), order(paid=False, statuses=("CREATED",), error_code=code, error_message=message)
    )
    assert result.verdict is Verdict.FAILED
    assert (result.evidence.error_code, result.evidence.error_message) == (code, message)


def test_canceled_by_refund() -> None:
    result = verify_payment(claim(), order(returned=15000))
    assert result.verdict is Verdict.CANCELED and not result.verified
    assert result.evidence.returned_amount == Decimal(15000)


# Issue 16: a partial refund used to be judged CANCELED (this test was `test_partial_refund_is_
# canceled`); money is still held, so it is PARTIALLY_REFUNDED, and the refund that empties the
# payment is CANCELED.
@pytest.mark.parametrize("returned", [Decimal("0.01"), 1000, 14999])
@pytest.mark.parametrize(
    "statuses", [("CANCELLATION_REFUNDED_PARTIALLY",), ("RETURN_REFUNDED_PARTIALLY",), ("PAID",)]
)
def test_partial_refund_is_partially_refunded(returned: Decimal | int, statuses: tuple[str, ...]) -> None:
    result = verify_payment(claim(), order(returned=returned, statuses=statuses))
    assert result.verdict is Verdict.PARTIALLY_REFUNDED and not result.verified
    assert result.evidence.returned_amount == Decimal(returned)


@pytest.mark.parametrize("returned", [15000, 15001])
def test_the_refund_that_empties_the_payment_is_canceled(returned: int) -> None:
    result = verify_payment(claim(), order(returned=returned, statuses=("CANCELLATION_REFUNDED",)))
    assert result.verdict is Verdict.CANCELED


def test_a_partial_refund_is_decided_by_the_amounts_not_the_item_states() -> None:
    # One item of two fully refunded: the order still holds the other's money.
    detail = order(returned=5000, statuses=("CANCELLATION_REFUNDED", "PAID"))
    assert verify_payment(claim(), detail).verdict is Verdict.PARTIALLY_REFUNDED


def test_a_partially_refunded_mismatch_or_unknown_value_keeps_its_verdict() -> None:
    assert verify_payment(claim(order_id=2), order(returned=1000)).verdict is Verdict.MISMATCH
    unknown = order(returned=1000, statuses=("A_STATUS_STEPPAY_ADDS_LATER",))
    assert verify_payment(claim(), unknown).verdict is Verdict.NEEDS_REVIEW


@pytest.mark.parametrize("status", sorted(CANCELED_ITEM_STATES))
def test_canceled_by_item_state(status: str) -> None:
    assert verify_payment(claim(), order(statuses=("PAID", status))).verdict is Verdict.CANCELED


def test_order_cancelled_before_payment_is_canceled() -> None:
    assert verify_payment(claim(), order(paid=False, statuses=("CANCELLED",))).verdict is Verdict.CANCELED


def test_mismatch_by_code() -> None:
    result = verify_payment(claim(code="order_other"), order())
    assert result.verdict is Verdict.MISMATCH and not result.verified
    assert result.evidence.claimed_order_code == "order_other" and result.evidence.order_code == CODE


def test_mismatch_by_id() -> None:
    result = verify_payment(claim(order_id=999), order())
    assert result.verdict is Verdict.MISMATCH
    assert result.evidence.claimed_order_id == 999


def test_mismatch_by_amount() -> None:
    result = verify_payment(claim(amount=Decimal(15000)), order(amount=100))
    assert result.verdict is Verdict.MISMATCH
    assert any("amount" in r for r in result.reasons)


@pytest.mark.parametrize(("currencies", "expected"), [(("USD",), "KRW"), (("KRW", "USD"), "KRW")])
def test_mismatch_by_currency(currencies: tuple[str, ...], expected: str) -> None:
    data = order().model_dump(by_alias=True)
    data["items"] = [{"status": "PAID", "currency": c} for c in currencies]
    result = verify_payment(claim(currency=expected), OrderDetail.model_validate(data))
    assert result.verdict is Verdict.MISMATCH


def test_expected_currency_without_any_item_currency_is_a_mismatch() -> None:
    assert verify_payment(claim(currency="KRW"), order(statuses=())).verdict is Verdict.MISMATCH


def test_currency_comparison_ignores_case_of_the_claim() -> None:
    assert verify_payment(claim(currency="krw"), order()).verdict is Verdict.PAID


# -- precedence --------------------------------------------------------------------------------


def test_mismatch_comes_before_canceled_and_paid() -> None:
    assert verify_payment(claim(order_id=2), order(returned=15000)).verdict is Verdict.MISMATCH
    assert verify_payment(claim(order_id=2), order(paid=False, statuses=("PAYMENT_FAILURE",))).verdict is (
        Verdict.MISMATCH
    )


def test_canceled_comes_before_paid_and_failed() -> None:
    assert (
        verify_payment(claim(), order(statuses=("PAID", "CANCELLATION_REFUNDED"))).verdict is Verdict.CANCELED
    )
    assert verify_payment(claim(), order(paid=False, statuses=("CANCELLED", "PAYMENT_FAILURE"))).verdict is (
        Verdict.CANCELED
    )


def test_paid_comes_before_failed() -> None:
    assert verify_payment(claim(), order(error_code="OLD")).verdict is Verdict.PAID


# -- claim ------------------------------------------------------------------------------------


def test_claim_refuses_float_amounts() -> None:
    with pytest.raises(ValidationError):
        PaymentClaim.model_validate({"order_code": CODE, "expected_amount": 15000.0})
    claim_from_int = PaymentClaim.model_validate({"order_code": CODE, "expected_amount": 15000})
    assert claim_from_int.expected_amount == Decimal(15000)


# -- properties ---------------------------------------------------------------------------------

ALL_STATUSES = [s.value for s in OrderItemStatus]
PAID_LIKE = [
    s
    for s in ALL_STATUSES
    if s not in CANCELED_ITEM_STATES and s not in ("PAYMENT_FAILURE", "DEPOSIT_WAITING")
]
amounts = st.decimals(min_value=0, max_value=10**9, places=2, allow_nan=False, allow_infinity=False)
status_lists = st.lists(st.sampled_from(ALL_STATUSES), max_size=4).map(tuple)


@given(amount=amounts, statuses=status_lists, returned=amounts, error=st.none() | st.text(max_size=5))
def test_no_payment_date_is_never_paid(
    amount: Decimal, statuses: tuple[str, ...], returned: Decimal, error: str | None
) -> None:
    result = verify_payment(
        claim(amount=None),
        order(paid=False, amount=amount, statuses=statuses, returned=returned, error_code=error),
    )
    assert result.verdict is not Verdict.PAID and not result.verified


@given(expected=amounts, paid=amounts, statuses=st.lists(st.sampled_from(PAID_LIKE), max_size=3).map(tuple))
def test_a_different_paid_amount_is_a_mismatch_never_paid(
    expected: Decimal, paid: Decimal, statuses: tuple[str, ...]
) -> None:
    assume(expected != paid)
    result = verify_payment(claim(amount=expected), order(amount=paid, statuses=statuses))
    assert result.verdict is Verdict.MISMATCH


@given(returned=amounts.filter(lambda d: d > 0), statuses=status_lists, paid=st.booleans())
def test_any_refund_is_never_paid(returned: Decimal, statuses: tuple[str, ...], paid: bool) -> None:
    detail = order(paid=paid, returned=returned, statuses=statuses)
    result = verify_payment(claim(amount=None), detail)
    assert result.verdict in (Verdict.PARTIALLY_REFUNDED, Verdict.CANCELED, Verdict.MISMATCH)
    assert not result.verified
    if result.verdict is not Verdict.MISMATCH:
        # Partial exactly when money is left of the payment.
        partial = returned < detail.paid_amount
        assert (result.verdict is Verdict.PARTIALLY_REFUNDED) is partial


@given(
    amount=amounts,
    statuses=st.lists(st.sampled_from(PAID_LIKE), max_size=4).map(tuple),
    order_id=st.integers(min_value=1, max_value=2**63 - 1),
    code=st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True),
    know_amount=st.booleans(),
    know_id=st.booleans(),
    stale_error=st.none() | st.text(min_size=1, max_size=5),
    order_type=st.sampled_from(["ONE_TIME", "RECURRING_INITIAL", "RECURRING", "PAYMENT_METHOD", "ADD_USAGE"]),
)
def test_consistent_paid_orders_are_always_paid(
    amount: Decimal,
    statuses: tuple[str, ...],
    order_id: int,
    code: str,
    know_amount: bool,
    know_id: bool,
    stale_error: str | None,
    order_type: str,
) -> None:
    the_order = order(
        amount=amount,
        statuses=statuses or ("PAID",),
        order_id=order_id,
        code=code,
        error_code=stale_error,
        order_type=order_type,
    )
    the_claim = claim(
        code=code,
        order_id=order_id if know_id else None,
        amount=amount if know_amount else None,
        currency="KRW",
    )
    result = verify_payment(the_claim, the_order)
    assert result.verdict is Verdict.PAID and result.verified


@given(
    claimed=st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True),
    statuses=status_lists,
    paid=st.booleans(),
)
def test_another_order_code_is_always_a_mismatch(claimed: str, statuses: tuple[str, ...], paid: bool) -> None:
    assume(claimed != CODE)
    assert (
        verify_payment(claim(code=claimed), order(paid=paid, statuses=statuses)).verdict is Verdict.MISMATCH
    )
