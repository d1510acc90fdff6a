"""The initial-payment flows: issue a pay link, and verify a payment after the redirect.

Both flows ask StepPay and never trust what the browser says. The redirect's `status`
is kept for the log only: a `success` that StepPay does not confirm is not paid, and an
`error` that StepPay confirms as paid is paid.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

from aws_lambda_powertools import Logger

from steppay.api_models import PayUrlRequest, PayUrlResponse, VerifyResponse
from steppay.errors import (
    StepPayAuthFailed,
    StepPayError,
    StepPayNotFound,
    StepPayRejected,
    StepPayUnavailable,
)
from steppay.models import OrderCreateItem, OrderCreateRequest, OrderDetail
from steppay.persistence import (
    PaymentRecord,
    PaymentState,
    PaymentStore,
    SubscriptionRecord,
    VerifiedVia,
)
from steppay.problems import (
    OrderAlreadyPaid,
    OrderNotFound,
    OrderNotPayable,
    OrderRejected,
    Problem,
    StepPayUnavailableProblem,
)
from steppay.redirects import check_redirect_url
from steppay.settings import Settings
from steppay.verification import PaymentClaim, Verdict, VerificationResult, verify_payment

if TYPE_CHECKING:
    from steppay.subscription_models import Subscription

logger = Logger(child=True)

UNPAYABLE_ITEM_STATES = frozenset({"CANCELLED", "PAYMENT_FAILURE"})


class OrderGateway(Protocol):
    """The part of StepPayClient the flows use (a Protocol so tests can see the seam)."""

    def create_order(self, request: OrderCreateRequest) -> OrderDetail: ...

    def get_order(self, order_id_or_code: str | int) -> OrderDetail: ...

    def get_subscription(self, subscription_id: int) -> Subscription: ...

    def build_pay_url(
        self,
        order_code: str,
        *,
        success_url: str | None = None,
        error_url: str | None = None,
        cancel_url: str | None = None,
        lang: str | None = None,
    ) -> str: ...


def amount_due(order: OrderDetail) -> Decimal:
    """What the shopper is asked to pay: the items' prices times quantities, less discounts."""
    total = Decimal(0)
    for item in order.items:
        if item.price is not None and item.price.price is not None:
            total += item.price.price * Decimal(item.quantity or 1)
        elif item.paid_amount is not None:
            total += item.paid_amount
    return total - (order.discounted_amount or Decimal(0))


def order_currency(order: OrderDetail) -> str | None:
    currencies = {item.currency for item in order.items if item.currency}
    return currencies.pop() if len(currencies) == 1 else None


def _stepay_problem(exc: StepPayError) -> Problem:
    """Map a StepPay failure to what our caller may know of it (no upstream detail leaks)."""
    if isinstance(exc, StepPayNotFound):
        return OrderNotFound("StepPay knows no such order.")
    if isinstance(exc, StepPayRejected):
        return OrderRejected("StepPay rejected the order; check the product, price and customer codes.")
    if isinstance(exc, StepPayAuthFailed):
        return Problem(
            "StepPay refused this deployment's credentials; check the Secret-Token configuration.",
            code="steppay_auth_failed",
            status=502,
        )
    return StepPayUnavailableProblem("StepPay is not answering; try again shortly.")


@dataclass(frozen=True)
class VerifyOutcome:
    result: VerificationResult
    record: PaymentRecord | None
    newly_recorded: bool
    response: VerifyResponse


class PaymentFlows:
    def __init__(self, gateway: OrderGateway, store: PaymentStore, settings: Settings) -> None:
        self._gateway = gateway
        self._store = store
        self._settings = settings

    # -- pay link -------------------------------------------------------------------------

    def create_pay_url(self, request: PayUrlRequest) -> PayUrlResponse:
        hosts = self._settings.allowed_redirect_hosts
        stage = self._settings.stage
        check_redirect_url(request.success_url, allowed_hosts=hosts, stage=stage, field="successUrl")
        check_redirect_url(request.error_url, allowed_hosts=hosts, stage=stage, field="errorUrl")
        if request.cancel_url is not None:
            check_redirect_url(request.cancel_url, allowed_hosts=hosts, stage=stage, field="cancelUrl")

        try:
            if request.order is not None:
                order = self._gateway.create_order(
                    OrderCreateRequest(
                        customer_id=request.order.customer_id,
                        customer_code=request.order.customer_code,
                        customer_uuid=request.order.customer_uuid,
                        purchase_deadline=request.order.purchase_deadline,
                        items=[
                            OrderCreateItem(
                                product_code=item.product_code,
                                price_code=item.price_code,
                                currency=item.currency,
                                minimum_quantity=item.minimum_quantity,
                                maximum_quantity=item.maximum_quantity,
                            )
                            for item in request.order.items
                        ],
                    )
                )
            else:
                assert request.order_code is not None
                order = self._gateway.get_order(request.order_code)
        except StepPayError as exc:
            logger.warning(
                "StepPay call failed while issuing a pay link", extra={"error": type(exc).__name__}
            )
            raise _stepay_problem(exc) from exc

        if order.payment_date is not None:
            raise OrderAlreadyPaid("This order is already paid.")
        if any(item.status in UNPAYABLE_ITEM_STATES for item in order.items):
            raise OrderNotPayable("This order was cancelled or its payment failed; create a new order.")

        record = self._store.save_pending_order(
            PaymentRecord(
                order_code=order.order_code,
                order_id=order.order_id,
                order_type=str(order.type),
                amount=amount_due(order),
                currency=order_currency(order),
                customer_id=order.customer.id if order.customer is not None else None,
                merchant_ref=request.merchant_ref,
                created_at=datetime.now(UTC),
            )
        )
        pay_url = self._gateway.build_pay_url(
            order.order_code,
            success_url=request.success_url,
            error_url=request.error_url,
            cancel_url=request.cancel_url,
            lang=request.lang,
        )
        logger.info("Pay link issued", extra={"order_code": order.order_code, "order_id": order.order_id})
        return PayUrlResponse(
            order_code=order.order_code,
            order_id=order.order_id,
            pay_url=pay_url,
            amount=record.amount,
            currency=record.currency,
        )

    # -- verification ---------------------------------------------------------------------

    def verify_and_record(
        self,
        order_code: str,
        *,
        order_id: int | None,
        claimed_status: str | None,
        via: VerifiedVia,
    ) -> VerifyOutcome:
        known = self._store.get_payment(order_code)
        try:
            order = self._gateway.get_order(order_code)
        except StepPayError as exc:
            logger.warning("StepPay order lookup failed", extra={"error": type(exc).__name__})
            if isinstance(exc, StepPayUnavailable | StepPayAuthFailed | StepPayNotFound):
                raise _stepay_problem(exc) from exc
            raise StepPayUnavailableProblem("StepPay could not answer this lookup.") from exc

        claim = PaymentClaim(
            order_code=order_code,
            order_id=order_id,
            expected_amount=known.amount if known is not None else None,
            expected_currency=known.currency if known is not None else None,
        )
        result = verify_payment(claim, order)
        logger.info(
            "Payment verified with StepPay",
            extra={
                "order_code": order_code,
                "verdict": result.verdict.value,
                "claimed_status": claimed_status,
                "via": via.value,
            },
        )

        record, newly = self.apply_verdict(order, result, known, via)
        return VerifyOutcome(result, record, newly, self._verify_response(result, order, record))

    def confirm_order(
        self, order_ref: str, *, via: VerifiedVia
    ) -> tuple[VerificationResult, PaymentRecord | None, bool]:
        """Look an order up at StepPay (by id or code) and record what StepPay says.

        Used by webhook processing and reconciliation: the webhook only names the order.
        Raises StepPayError subclasses as they are, so that the caller can retry or give up.
        """
        order = self._gateway.get_order(order_ref)
        known = self._store.get_payment(order.order_code)
        claim = PaymentClaim(
            order_code=order.order_code,
            order_id=order.order_id,
            expected_amount=known.amount if known is not None else None,
            expected_currency=known.currency if known is not None else None,
        )
        result = verify_payment(claim, order)
        record, newly = self.apply_verdict(order, result, known, via)
        logger.info(
            "Order confirmed with StepPay",
            extra={
                "order_code": order.order_code,
                "verdict": result.verdict.value,
                "via": via.value,
                "recorded": newly,
            },
        )
        return result, record, newly

    def apply_verdict(
        self, order: OrderDetail, result: VerificationResult, known: PaymentRecord | None, via: VerifiedVia
    ) -> tuple[PaymentRecord | None, bool]:
        """Record the state change a verdict stands for, once; returns (stored record, newly)."""
        if result.verdict is Verdict.PAID:
            return self._store.record_verified_payment(self._paid_record(order, known, via))
        if result.verdict is Verdict.CANCELED and known is not None and known.is_paid:
            return self._store.record_cancellation(
                known.model_copy(
                    update={
                        "state": PaymentState.CANCELED,
                        "returned_amount": order.returned_amount,
                        "canceled_at": datetime.now(UTC),
                    }
                )
            )
        if result.verdict is Verdict.FAILED and str(order.type) == "RECURRING":
            failed = self._paid_record(order, known, via).model_copy(
                update={
                    "state": PaymentState.FAILED,
                    "paid_at": None,
                    "paid_amount": None,
                    "amount": known.amount if known is not None and known.amount else amount_due(order),
                    "error_code": order.payment.error_code if order.payment is not None else None,
                    "error_message": order.payment.error_message if order.payment is not None else None,
                    "failed_at": datetime.now(UTC),
                }
            )
            return self._store.record_payment_failure(failed)
        return known, False

    def sync_subscription(self, subscription_id: int) -> tuple[SubscriptionRecord, bool]:
        """Store the status StepPay reports now; the stream announces a real change."""
        observed_at = datetime.now(UTC)
        subscription = self._gateway.get_subscription(subscription_id)
        parent = subscription.parent_order
        order_code = parent.order_code if parent is not None else None
        known = self._store.get_payment(order_code) if order_code else None
        record = SubscriptionRecord(
            subscription_id=subscription.id,
            status=str(subscription.status),
            observed_at=observed_at,
            next_payment_date=subscription.next_payment_date,
            last_payment_date=subscription.last_payment_date,
            customer_id=subscription.customer.id if subscription.customer is not None else None,
            order_code=order_code,
            order_id=parent.order_id if parent is not None else None,
            merchant_ref=known.merchant_ref if known is not None else None,
        )
        stored, written = self._store.save_subscription_status(record)
        logger.info(
            "Subscription synced with StepPay",
            extra={"subscription_id": subscription.id, "status": record.status, "written": written},
        )
        return stored, written

    def _paid_record(
        self, order: OrderDetail, known: PaymentRecord | None, via: VerifiedVia
    ) -> PaymentRecord:
        payment = order.payment
        return PaymentRecord(
            order_code=order.order_code,
            order_id=order.order_id,
            order_type=str(order.type),
            state=PaymentState.PAID,
            amount=known.amount if known is not None and known.amount is not None else order.paid_amount,
            currency=(known.currency if known is not None else None) or order_currency(order),
            customer_id=order.customer.id if order.customer is not None else None,
            merchant_ref=known.merchant_ref if known is not None else self._subscription_merchant_ref(order),
            created_at=known.created_at if known is not None else None,
            paid_at=order.payment_date,
            payment_date_raw=order.payment_date_raw,
            paid_amount=order.paid_amount,
            payment_method=payment.payment_method if payment is not None else None,
            payment_gateway=payment.payment_gateway if payment is not None else None,
            card_number=payment.card_number if payment is not None else None,
            verified_at=datetime.now(UTC),
            verified_via=via,
            subscription_ids=[s.id for s in order.subscriptions],
            subscription_id=order.parent_subscription.id if order.parent_subscription is not None else None,
            period_start=order.calculate_start_date,
            period_end=order.calculate_end_date,
            next_payment_date=(
                order.parent_subscription.next_payment_date if order.parent_subscription is not None else None
            ),
        )

    def _subscription_merchant_ref(self, order: OrderDetail) -> str | None:
        """A renewal carries the merchantRef given when its subscription was first paid for."""
        if order.parent_subscription is None:
            return None
        subscription = self._store.get_subscription(order.parent_subscription.id)
        return subscription.merchant_ref if subscription is not None else None

    @staticmethod
    def _verify_response(
        result: VerificationResult, order: OrderDetail, record: PaymentRecord | None
    ) -> VerifyResponse:
        paid = result.verdict is Verdict.PAID
        return VerifyResponse(
            verified=paid,
            verdict=result.verdict,
            order_code=order.order_code,
            order_id=order.order_id,
            order_type=str(order.type),
            amount=(record.paid_amount if paid and record is not None else None)
            or (record.amount if record is not None else amount_due(order)),
            currency=(record.currency if record is not None else None) or order_currency(order),
            paid_at=order.payment_date if paid else None,
            merchant_ref=record.merchant_ref if record is not None else None,
            subscription_ids=[s.id for s in order.subscriptions] if paid else [],
        )
