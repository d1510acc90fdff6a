"""The payment flows: register a checkout, verify a payment, confirm what a webhook names.

Only the merchant's authenticated backend decides what is sold (`register_checkout`); only
StepPay's answers decide what was paid. The shopper's browser names an order code and nothing
else: its redirect `status` is kept for the log only, and an order this bundle never registered
is not looked up for it at all.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

from aws_lambda_powertools import Logger

from steppay.api_models import (
    CheckoutRequest,
    CheckoutResponse,
    CheckoutView,
    CustomerView,
    RegisteredItemView,
    VerifyResponse,
)
from steppay.errors import (
    StepPayAuthFailed,
    StepPayError,
    StepPayNotFound,
    StepPayRejected,
    StepPayUnavailable,
)
from steppay.models import OrderCreateItem, OrderCreateRequest, OrderDetail, OrderType
from steppay.persistence import (
    ChargedItem,
    CheckoutRecord,
    CheckoutState,
    PaymentRecord,
    PaymentState,
    PaymentStore,
    RegisteredItem,
    Registration,
    SubscriptionRecord,
    VerifiedVia,
)
from steppay.problems import (
    CheckoutInProgress,
    CustomerMismatch,
    ExpectedAmountMismatch,
    IdempotencyKeyReused,
    InvalidRequest,
    MerchantRefConflict,
    OrderNotFound,
    OrderRejected,
    Problem,
    StepPayUnavailableProblem,
)
from steppay.redirects import check_redirect_url
from steppay.settings import Settings
from steppay.transitions import REFUNDED_STATES, order_kind, transition_for
from steppay.verification import (
    PaymentClaim,
    Verdict,
    VerificationResult,
    line_amount,
    registered_total,
    verify_payment,
)
from steppay.zone import ZoneDisagreement, check_created_at

if TYPE_CHECKING:
    from steppay.subscription_models import Subscription

logger = Logger(child=True)
_zone_reported: list[ZoneDisagreement] = []  # one log line per container, the metric each time


def report_zone_evidence(disagreement: ZoneDisagreement | None) -> None:
    """A created order whose `createdAt` says STEPPAY_TIMEZONE is wrong (steppay.zone)."""
    if disagreement is None:
        return
    from aws_lambda_powertools import Metrics  # deferred: only when there is something to count
    from aws_lambda_powertools.metrics import MetricUnit

    Metrics().add_metric(name="StepPayZoneDisagreement", unit=MetricUnit.Count, value=1)
    if disagreement not in _zone_reported:
        _zone_reported.append(disagreement)
        logger.warning(
            "STEPPAY_TIMEZONE disagrees with StepPay's clock",
            extra={
                "configured_zone": disagreement.configured,
                "skew_minutes": int(disagreement.skew.total_seconds() // 60),
                "observed_utc_offset_minutes": int(disagreement.observed_utc_offset.total_seconds() // 60),
                "detail": disagreement.describe(),
            },
        )

DEFAULT_CHECKOUT_LIFETIME = timedelta(hours=24)
MAX_CHECKOUT_LIFETIME = timedelta(days=30)
MIN_CHECKOUT_LIFETIME = timedelta(minutes=5)
# An unpaid registration is kept this long after it expires (a late webhook still finds it),
# then DynamoDB's TTL removes it.
EXPIRED_CHECKOUT_GRACE = timedelta(days=7)
IDEMPOTENCY_KEY_LIFETIME = timedelta(hours=24)
# A claim older than this whose request never created the order (it died) may be taken over.
STALE_CLAIM = timedelta(seconds=30)


class OrderGateway(Protocol):
    """The part of StepPayClient the flows use (a Protocol so tests can see the seam)."""

    def create_order(self, request: OrderCreateRequest) -> OrderDetail: ...

    def get_order(self, order_id_or_code: str | int) -> OrderDetail: ...

    def get_subscription(self, subscription_id: int) -> Subscription: ...

    def cancel_order(
        self, order_id_or_code: int | str, *, request_price: Decimal | int, reason: str | None = None
    ) -> object: ...

    def build_pay_url(
        self,
        order_code: str,
        *,
        success_url: str | None = None,
        error_url: str | None = None,
        cancel_url: str | None = None,
        lang: str | None = None,
    ) -> str: ...


def checkout_id_for(merchant_ref: str) -> str:
    """One checkout per merchantRef: its id follows from the ref (so either finds it)."""
    return "chk_" + hashlib.sha256(f"checkout:{merchant_ref}".encode()).hexdigest()[:32]


def content_hash(request: CheckoutRequest) -> str:
    """The registration's content, whatever order its JSON keys came in."""
    canonical = json.dumps(
        request.model_dump(mode="json", by_alias=True, exclude_none=True),
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def order_currency(order: OrderDetail) -> str | None:
    currencies = {item.currency for item in order.items if item.currency}
    return currencies.pop() if len(currencies) == 1 else None


def charged_items(order: OrderDetail) -> list[ChargedItem]:
    """The order line by line as StepPay charged it, its own tax, shipping, fee and discount lines too.

    `amount` is StepPay's figure for the line (a discount negative), so a subscriber can add the
    lines up to the charge; `name` is StepPay's name of the line when it gives one.
    """
    return [
        ChargedItem(
            type=item.type,
            name=item.discount_name or item.ordered_product_name,
            product_code=item.product.code if item.product else None,
            price_code=item.price.code if item.price else None,
            quantity=item.quantity,
            unit_price=item.price.price if item.price else None,
            amount=line_amount(item),
        )
        for item in order.items
    ]


def checkout_view(checkout: CheckoutRecord, record: PaymentRecord | None) -> CheckoutView:
    """The merchant backend's full view of a checkout (never answered to a shopper's page)."""
    registration = record.registration if record is not None else None
    assert checkout.order_code is not None
    return CheckoutView(
        checkout_id=checkout.checkout_id,
        merchant_ref=checkout.merchant_ref,
        order_code=checkout.order_code,
        order_id=checkout.order_id,
        state=record.state.value if record is not None else PaymentState.PENDING.value,
        pay_url=checkout.pay_url,
        customer=CustomerView(
            id=registration.customer_id if registration else None,
            code=registration.customer_code if registration else None,
            uuid=registration.customer_uuid if registration else None,
        ),
        items=[RegisteredItemView(**i.model_dump()) for i in (registration.items if registration else [])],
        amount=checkout.amount,
        expected_amount=registration.expected_amount if registration else None,
        currency=checkout.currency,
        created_at=checkout.claimed_at,
        expires_at=checkout.expires_at,
        paid_at=record.paid_at if record is not None else None,
        paid_amount=record.paid_amount if record is not None else None,
        payment_method=record.payment_method if record is not None else None,
        subscription_ids=list(record.subscription_ids) if record is not None else [],
        mismatches=list(record.mismatches) if record is not None else [],
        unknown_values=list(record.unknown_values) if record is not None else [],
        returned_amount=record.returned_amount if record is not None else None,
        canceled_at=record.canceled_at if record is not None else None,
    )


def _steppay_problem(exc: StepPayError) -> Problem:
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


@dataclass(frozen=True)
class Confirmation:
    """What a webhook or reconciliation learnt of one order."""

    result: VerificationResult
    record: PaymentRecord | None
    newly_recorded: bool
    registered: bool  # False: the bundle never registered this order; nothing was recorded


class PaymentFlows:
    def __init__(self, gateway: OrderGateway, store: PaymentStore, settings: Settings) -> None:
        self._gateway = gateway
        self._store = store
        self._settings = settings

    # -- checkout registration ------------------------------------------------------------

    def register_checkout(
        self, request: CheckoutRequest, *, idempotency_key: str | None = None
    ) -> tuple[CheckoutResponse, bool]:
        """Create the StepPay order for what the merchant's backend sells, once per merchantRef.

        Returns the checkout and whether this call created it (False: a retry of the same
        registration, answered as the first time).
        """
        self._check_redirects(request)
        now = datetime.now(UTC)
        expires_at = self._expiry(request, now)
        digest = content_hash(request)
        if idempotency_key is None:
            return self._register(request, digest, now, expires_at)
        bound, new_key = self._store.claim_idempotency_key(
            idempotency_key, request.merchant_ref, digest, ttl=now + IDEMPOTENCY_KEY_LIFETIME
        )
        if bound != digest:
            raise IdempotencyKeyReused("This Idempotency-Key was used for another request body.")
        try:
            return self._register(request, digest, now, expires_at)
        except Exception:
            if new_key:  # a refused request leaves nothing behind, its key included
                self._store.release_idempotency_key(idempotency_key, digest)
            raise

    def _register(
        self, request: CheckoutRequest, digest: str, now: datetime, expires_at: datetime
    ) -> tuple[CheckoutResponse, bool]:
        claim = CheckoutRecord(
            checkout_id=checkout_id_for(request.merchant_ref),
            merchant_ref=request.merchant_ref,
            content_hash=digest,
            claimed_at=now,
            expires_at=expires_at,
        )
        ttl = expires_at + EXPIRED_CHECKOUT_GRACE
        stored, new = self._store.claim_checkout(claim, ttl=ttl)
        if not new:
            if stored.content_hash != digest:
                raise MerchantRefConflict("This merchantRef is registered already, with other content.")
            if stored.state is CheckoutState.OPEN:
                return self._checkout_response(stored), False
            if not self._store.retake_stale_claim(claim, now - STALE_CLAIM):
                raise CheckoutInProgress("This checkout is being registered by another request; retry.")
        try:
            order = self._create_order(request, claim)
        except Exception:
            # Nothing was created or handed out: a corrected (or plain) retry may register this ref.
            self._store.release_checkout(claim.checkout_id)
            raise
        try:
            return self._register_order(request, claim, ttl, order), True
        except Exception:
            # StepPay has an order nobody will be told of: void it, so that it cannot be paid for
            # a registration that does not exist, then let a corrected retry register the ref.
            self._void_order(order.order_code)
            self._store.release_checkout(claim.checkout_id)
            raise

    def _void_order(self, order_code: str) -> None:
        try:
            self._gateway.cancel_order(order_code, request_price=0, reason="checkout registration refused")
        except StepPayError as exc:
            # Still unpayable after its purchase deadline (the registration's expiresAt).
            logger.error(
                "Could not cancel the StepPay order of a refused registration",
                extra={"order_code": order_code, "error": type(exc).__name__},
            )

    def _check_redirects(self, request: CheckoutRequest) -> None:
        hosts, stage = self._settings.allowed_redirect_hosts, self._settings.stage
        check_redirect_url(request.success_url, allowed_hosts=hosts, stage=stage, field="successUrl")
        check_redirect_url(request.error_url, allowed_hosts=hosts, stage=stage, field="errorUrl")
        if request.cancel_url is not None:
            check_redirect_url(request.cancel_url, allowed_hosts=hosts, stage=stage, field="cancelUrl")

    @staticmethod
    def _expiry(request: CheckoutRequest, now: datetime) -> datetime:
        expires_at = (
            request.expires_at.astimezone(UTC) if request.expires_at else now + DEFAULT_CHECKOUT_LIFETIME
        )
        if not now + MIN_CHECKOUT_LIFETIME <= expires_at <= now + MAX_CHECKOUT_LIFETIME:
            raise InvalidRequest("expiresAt must be between 5 minutes and 30 days from now.")
        return expires_at

    def _create_order(self, request: CheckoutRequest, claim: CheckoutRecord) -> OrderDetail:
        requested_at = datetime.now(UTC)
        try:
            order = self._gateway.create_order(
                OrderCreateRequest(
                    customer_id=request.customer_id,
                    customer_code=request.customer_code,
                    customer_uuid=request.customer_uuid,
                    purchase_deadline=claim.expires_at,
                    items=[
                        OrderCreateItem(
                            product_code=item.product_code,
                            price_code=item.price_code,
                            currency=item.currency,
                            minimum_quantity=item.quantity,
                            maximum_quantity=item.max_quantity,
                        )
                        for item in request.items
                    ],
                )
            )
        except StepPayError as exc:
            logger.warning("StepPay could not create a checkout's order", extra={"error": type(exc).__name__})
            raise _steppay_problem(exc) from exc
        report_zone_evidence(check_created_at(order.created_at, requested_at, self._settings.zone))
        return order

    def _register_order(
        self, request: CheckoutRequest, claim: CheckoutRecord, ttl: datetime, order: OrderDetail
    ) -> CheckoutResponse:
        customer = order.customer
        if customer is None or not (
            (request.customer_id is not None and customer.id == request.customer_id)
            or (request.customer_code is not None and customer.code == request.customer_code)
            or (request.customer_uuid is not None and customer.uuid == str(request.customer_uuid))
        ):
            raise CustomerMismatch("StepPay created the order for another customer than the one registered.")
        registration = Registration(
            checkout_id=claim.checkout_id,
            merchant_ref=request.merchant_ref,
            customer_id=customer.id,
            customer_code=customer.code,
            customer_uuid=customer.uuid,
            items=[RegisteredItem(**item.model_dump()) for item in request.items],  # the same fields
            expected_amount=request.expected_amount,
            expires_at=claim.expires_at,
        )
        amount = registered_total(order, registration)
        currency = order_currency(order)
        if amount is None or currency is None:
            raise OrderRejected("StepPay's order does not price just the registered lines in one currency.")
        if request.expected_amount is not None and amount != request.expected_amount:
            raise ExpectedAmountMismatch(
                f"StepPay prices these items at {amount} {currency}, "
                f"not the expected {request.expected_amount}."
            )
        self._store.save_pending_order(
            PaymentRecord(
                order_code=order.order_code,
                order_id=order.order_id,
                order_type=str(order.type),
                amount=amount,
                currency=currency,
                customer_id=customer.id,
                merchant_ref=request.merchant_ref,
                created_at=claim.claimed_at,
                registration=registration,
            ),
            ttl=ttl,
        )
        pay_url = self._gateway.build_pay_url(
            order.order_code,
            success_url=request.success_url,
            error_url=request.error_url,
            cancel_url=request.cancel_url,
            lang=request.lang,
        )
        opened = self._store.open_checkout(
            claim.model_copy(
                update={
                    "state": CheckoutState.OPEN,
                    "order_code": order.order_code,
                    "order_id": order.order_id,
                    "pay_url": pay_url,
                    "amount": amount,
                    "currency": currency,
                }
            ),
            ttl=ttl,
        )
        logger.info(
            "Checkout registered",
            extra={
                "checkout_id": claim.checkout_id,
                "order_code": order.order_code,
                "order_id": order.order_id,
            },
        )
        return self._checkout_response(opened)

    @staticmethod
    def _checkout_response(checkout: CheckoutRecord) -> CheckoutResponse:
        assert checkout.order_code and checkout.order_id and checkout.pay_url and checkout.currency
        assert checkout.amount is not None and checkout.expires_at is not None
        return CheckoutResponse(
            checkout_id=checkout.checkout_id,
            merchant_ref=checkout.merchant_ref,
            order_code=checkout.order_code,
            order_id=checkout.order_id,
            pay_url=checkout.pay_url,
            amount=checkout.amount,
            currency=checkout.currency,
            expires_at=checkout.expires_at,
        )

    def find_checkout(self, checkout_id: str) -> tuple[CheckoutRecord, PaymentRecord | None] | None:
        """A registered checkout and its order's record (merchant backend only)."""
        checkout = self._store.get_checkout(checkout_id)
        if checkout is None or checkout.state is not CheckoutState.OPEN or checkout.order_code is None:
            return None
        return checkout, self._store.get_payment(checkout.order_code)

    # -- verification (the shopper's page) ------------------------------------------------

    def verify_and_record(
        self,
        order_code: str,
        *,
        order_id: int | None,
        claimed_status: str | None,
        via: VerifiedVia,
    ) -> VerifyOutcome:
        known = self._store.get_payment(order_code)
        if known is None or known.registration is None:
            # Not ours: StepPay is not asked, and nothing tells whether such an order exists.
            raise OrderNotFound("No checkout is registered for this order code.")
        try:
            order = self._gateway.get_order(order_code)
        except StepPayError as exc:
            logger.warning("StepPay order lookup failed", extra={"error": type(exc).__name__})
            if isinstance(exc, StepPayUnavailable | StepPayAuthFailed | StepPayNotFound):
                raise _steppay_problem(exc) from exc
            raise StepPayUnavailableProblem("StepPay could not answer this lookup.") from exc
        result = verify_payment(self._claim(order_code, order_id, known, known.registration, False), order)
        logger.info(
            "Payment verified with StepPay",
            extra={
                "order_code": order_code,
                "verdict": result.verdict.value,
                "claimed_status": claimed_status,
                "via": via.value,
            },
        )
        record, newly = self.apply_verdict(order, result, known, known.registration, via)
        return VerifyOutcome(result, record, newly, self._verify_response(result, order, record))

    @staticmethod
    def _claim(
        order_code: str,
        order_id: int | None,
        known: PaymentRecord | None,
        registration: Registration,
        renewal: bool,
    ) -> PaymentClaim:
        return PaymentClaim(
            order_code=order_code,
            order_id=order_id,
            expected_currency=known.currency if known is not None else None,
            registration=registration,
            renewal=renewal,
        )

    # -- confirmation (webhooks, reconciliation) ------------------------------------------

    def confirm_order(self, order_ref: str, *, via: VerifiedVia) -> Confirmation:
        """Look an order up at StepPay (by id or code) and record what StepPay says.

        Used by webhook processing and reconciliation: the webhook only names the order.
        Raises StepPayError subclasses as they are, so that the caller can retry or give up.
        """
        order = self._gateway.get_order(order_ref)
        known = self._store.get_payment(order.order_code)
        registration = self._registration_for(order, known)
        renewal = order.type is OrderType.RECURRING
        if registration is None:
            result = verify_payment(PaymentClaim(order_code=order.order_code), order)
            logger.warning(
                "StepPay order not registered by this bundle; not recorded",
                extra={
                    "order_code": order.order_code,
                    "order_id": order.order_id,
                    "verdict": result.verdict.value,
                },
            )
            return Confirmation(result, None, False, registered=False)
        result = verify_payment(
            self._claim(order.order_code, order.order_id, known, registration, renewal), order
        )
        record, newly = self.apply_verdict(order, result, known, registration, via)
        logger.info(
            "Order confirmed with StepPay",
            extra={
                "order_code": order.order_code,
                "verdict": result.verdict.value,
                "via": via.value,
                "recorded": newly,
            },
        )
        return Confirmation(result, record, newly, registered=True)

    def _registration_for(self, order: OrderDetail, known: PaymentRecord | None) -> Registration | None:
        """The registration an order is bound to: its own, or (a renewal) its subscription's checkout's."""
        if known is not None and known.registration is not None:
            return known.registration
        if order.type is not OrderType.RECURRING or order.parent_subscription is None:
            return None
        subscription_id = order.parent_subscription.id
        stored = self._store.get_subscription(subscription_id)
        if stored is not None and stored.registration is not None:
            return stored.registration
        initial_code = stored.order_code if stored is not None else None
        if initial_code is None:
            parent = self._gateway.get_subscription(subscription_id).parent_order
            initial_code = parent.order_code if parent is not None else None
        initial = self._store.get_payment(initial_code) if initial_code else None
        return initial.registration if initial is not None else None

    def apply_verdict(
        self,
        order: OrderDetail,
        result: VerificationResult,
        known: PaymentRecord | None,
        registration: Registration,
        via: VerifiedVia,
    ) -> tuple[PaymentRecord | None, bool]:
        """Record the state change a verdict stands for, once; returns (stored record, newly)."""
        record, newly = self._record_verdict(order, result, known, registration, via)
        settled = (PaymentState.PAID, PaymentState.MISMATCH, PaymentState.NEEDS_REVIEW)
        if newly and record is not None and record.state in settled:
            if order.type is not OrderType.RECURRING:
                self._store.keep_checkout(registration.checkout_id)  # settled: no longer expires
        if newly and record is not None and record.state in REFUNDED_STATES:
            self._sync_refunded_subscriptions(order, record)
        return record, newly

    def _sync_refunded_subscriptions(self, order: OrderDetail, record: PaymentRecord) -> None:
        """A refund of a subscription's initial order may cancel it at StepPay: store what it says now.

        A failed lookup is logged, not raised: the refund is recorded already (a retry would find
        nothing new to do), and reconciliation looks every live subscription up on its next run.
        """
        if order.type is not OrderType.RECURRING_INITIAL:
            return
        for subscription_id in record.subscription_ids:
            try:
                self.sync_subscription(subscription_id)
            except StepPayError as exc:
                logger.warning(
                    "Could not sync a refunded order's subscription; reconciliation will",
                    extra={
                        "order_code": record.order_code,
                        "subscription_id": subscription_id,
                        "error": type(exc).__name__,
                    },
                )

    def _record_verdict(
        self,
        order: OrderDetail,
        result: VerificationResult,
        known: PaymentRecord | None,
        registration: Registration,
        via: VerifiedVia,
    ) -> tuple[PaymentRecord | None, bool]:
        """Record the change the transition table gives this verdict, when it gives one."""
        row = transition_for(result.verdict, order_kind(str(order.type)))
        if row is None or not row.permits(
            known.state if known is not None else None,
            known.returned_amount if known is not None else None,
            order.returned_amount,
        ):
            return known, False
        if row.to is PaymentState.MISMATCH and not result.evidence.registration_mismatches:
            # The order is not the one claimed (code or id): the caller was wrong, not StepPay.
            return known, False
        record = self._record_for(row.to, order, result, known, registration, via)
        return self._store.record_transition(record)

    def _record_for(
        self,
        state: PaymentState,
        order: OrderDetail,
        result: VerificationResult,
        known: PaymentRecord | None,
        registration: Registration,
        via: VerifiedVia,
    ) -> PaymentRecord:
        """The record a move into `state` writes (what StepPay showed, with what was registered)."""
        if state in REFUNDED_STATES and known is not None:
            # The record follows StepPay's running total; the store writes it only when it grows.
            now = datetime.now(UTC)
            refunded: dict[str, object] = {"returned_amount": order.returned_amount, "refunded_at": now}
            if known.paid_amount is None:
                refunded["paid_amount"] = order.paid_amount
            if state is PaymentState.CANCELED:
                refunded["canceled_at"] = now
            return known.model_copy(update={"state": state, **refunded})
        record = self._paid_record(order, known, registration, via)
        if state is PaymentState.MISMATCH:
            mismatches = list(result.evidence.registration_mismatches)
            logger.error(
                "StepPay took a payment for something else than was registered",
                extra={"order_code": order.order_code, "mismatches": mismatches},
            )
            return record.model_copy(update={"state": state, "mismatches": mismatches})
        if state is PaymentState.NEEDS_REVIEW:
            unknown = list(result.evidence.unknown_values)
            logger.error(
                "StepPay answered with values this bundle does not know; the order needs review",
                extra={"order_code": order.order_code, "unknown_values": unknown},
            )
            # A partly refunded order keeps what was returned (the store's write leaves it too):
            # its next refund event counts from there.
            refunds = (
                {"returned_amount": known.returned_amount, "refunded_at": known.refunded_at} if known else {}
            )
            return record.model_copy(update={"state": state, "unknown_values": unknown, **refunds})
        if state is PaymentState.FAILED:
            return record.model_copy(
                update={
                    "state": state,
                    "paid_at": None,
                    "paid_amount": None,
                    "amount": known.amount if known is not None and known.amount else order.paid_amount,
                    "error_code": order.payment.error_code if order.payment is not None else None,
                    "error_message": order.payment.error_message if order.payment is not None else None,
                    "failed_at": datetime.now(UTC),
                }
            )
        return record

    def sync_subscription(self, subscription_id: int) -> tuple[SubscriptionRecord, bool]:
        """Store the status StepPay reports now; the stream announces a real change."""
        # Observations are ordered by when the lookup started: StepPay's subscription answer
        # carries no modification time of its own (docs/STEPPAY.md), so a lookup that started
        # later knows at least as much, and a slow, stale one cannot move the status back.
        observed_at = datetime.now(UTC)
        subscription = self._gateway.get_subscription(subscription_id)
        parent = subscription.parent_order
        order_code = parent.order_code if parent is not None else None
        known = self._store.get_payment(order_code) if order_code else None
        registration = known.registration if known is not None else None
        record = SubscriptionRecord(
            subscription_id=subscription.id,
            status=str(subscription.status),
            observed_at=observed_at,
            next_payment_date=subscription.next_payment_date,
            last_payment_date=subscription.last_payment_date,
            customer_id=subscription.customer.id if subscription.customer is not None else None,
            order_code=order_code,
            order_id=parent.order_id if parent is not None else None,
            merchant_ref=registration.merchant_ref if registration is not None else None,
            registration=registration,
        )
        stored, written = self._store.save_subscription_status(record)
        logger.info(
            "Subscription synced with StepPay",
            extra={"subscription_id": subscription.id, "status": record.status, "written": written},
        )
        return stored, written

    @staticmethod
    def _paid_record(
        order: OrderDetail, known: PaymentRecord | None, registration: Registration, via: VerifiedVia
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
            merchant_ref=registration.merchant_ref,
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
            registration=registration,
            charged_items=charged_items(order),
        )

    @staticmethod
    def _verify_response(
        result: VerificationResult, order: OrderDetail, record: PaymentRecord | None
    ) -> VerifyResponse:
        paid = result.verdict is Verdict.PAID
        return VerifyResponse(
            verified=paid,
            verdict=result.verdict,
            order_code=order.order_code,
            amount=order.paid_amount if paid else (record.amount if record is not None else None),
            currency=(record.currency if record is not None else None) or order_currency(order),
            paid_at=order.payment_date if paid else None,
        )
