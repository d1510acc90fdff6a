"""Pydantic models of StepPay's webhook bodies: v2 `{timestamp, version, event, data}` and v1.

Kept apart from `steppay.models` because no function's request path needs them (the intake
classifies webhooks in `steppay.webhooks` and confirms through the API): every function would
otherwise pay for building these classes at cold start. The rules of `steppay.models` apply.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, ValidationError

from steppay.errors import WebhookShapeError
from steppay.models import (
    LenientOrderType,
    LenientPaymentStatus,
    LenientSubscriptionStatus,
    Money,
    NonEmptyStr,
    PositiveId,
    StepPayDateTime,
    StepPayModel,
)
from steppay.webhook_events import ORDER_EVENTS, PAYMENT_EVENTS, SUBSCRIPTION_EVENTS


class WebhookOrder(StepPayModel):
    """v2 webhook `data` for `order.*` events. A hint: confirm through the order detail API."""

    _raw_dates = (("payment_date", "payment_date_raw"),)

    id: PositiveId
    code: NonEmptyStr
    type: LenientOrderType | None = None
    paid_amount: Money | None = None
    returned_amount: Money | None = None
    left_amount: Money | None = None
    discounted_amount: Money | None = None
    product_name: str | None = None
    payment_date: StepPayDateTime | None = None
    payment_date_raw: str | None = None
    payment_due_date: StepPayDateTime | None = None
    purchase_deadline: StepPayDateTime | None = None
    created_at: StepPayDateTime | None = None
    modified_at: StepPayDateTime | None = None
    id_key: str | None = None
    customer_id: int | None = None
    shipping: Any = None
    items: list[dict[str, Any]] = Field(default_factory=list)
    # Unlike the detail API's objects, the webhook lists subscription ids.
    subscriptions: list[PositiveId] = Field(default_factory=list)
    invoice_id: int | None = None

    @property
    def order_id(self) -> int:
        return self.id

    @property
    def order_code(self) -> str:
        return self.code


class WebhookSubscription(StepPayModel):
    """v2 webhook `data` for `subscription.*` events."""

    subscription_id: PositiveId
    status: LenientSubscriptionStatus
    created_at: StepPayDateTime | None = None
    last_payment_date: StepPayDateTime | None = None
    next_payment_date: StepPayDateTime | None = None
    end_date: StepPayDateTime | None = None
    order_id: PositiveId | None = None
    order_code: str | None = None
    customer_id: int | None = None
    interval_unit: str | None = None
    interval_count: int | None = None
    items: list[dict[str, Any]] = Field(default_factory=list)
    payment_method: Any = None
    current_period: Any = None
    trial_period: Any = None


class WebhookPayment(StepPayModel):
    """v2 webhook `data` for `payment.*` events."""

    _raw_dates = (("paid_at", "paid_at_raw"),)

    payment_id: int | None = None
    id_key: str | None = None
    order_id: PositiveId
    customer_id: int | None = None
    paid_amount: Money | None = None
    paid_at: StepPayDateTime | None = None
    paid_at_raw: str | None = None
    status: LenientPaymentStatus
    payment_gateway: str | None = None
    payment_method: str | None = None
    error_message: str | None = None


WebhookData = WebhookOrder | WebhookSubscription | WebhookPayment


def _shape_error(what: str, exc: ValidationError) -> WebhookShapeError:
    # Field locations only: the values are the sender's and may be hostile.
    fields = sorted({".".join(str(p) for p in err["loc"]) for err in exc.errors()})
    return WebhookShapeError(f"{what}: invalid fields {', '.join(fields[:10]) or '(body)'}")


class WebhookEnvelope(StepPayModel):
    """A v2 webhook body `{timestamp, version, event, data}`."""

    timestamp: Annotated[int, Field(strict=True, ge=0)]
    version: str | None = None
    event: Annotated[str, StringConstraints(strict=True, min_length=1, max_length=100)]
    data: dict[str, Any]

    @property
    def kind(self) -> Literal["order", "subscription", "payment", "other"]:
        if self.event in ORDER_EVENTS:
            return "order"
        if self.event in SUBSCRIPTION_EVENTS:
            return "subscription"
        if self.event in PAYMENT_EVENTS:
            return "payment"
        return "other"

    def typed_data(self) -> WebhookData | None:
        """`data` as the schema its event names, or None for events we do not act on.

        Raises WebhookShapeError when `data` does not fit that schema.
        """
        model: type[WebhookData]
        kind = self.kind
        if kind == "order":
            model = WebhookOrder
        elif kind == "subscription":
            model = WebhookSubscription
        elif kind == "payment":
            model = WebhookPayment
        else:
            return None
        try:
            return model.model_validate(self.data)
        except ValidationError as exc:
            raise _shape_error(f"{self.event} data", exc) from None


class WebhookV1Order(StepPayModel):
    """v1 order webhook `{"webHookType": "PAYMENT", "orderId": 1}` (no signature: confirm via API)."""

    web_hook_type: Annotated[str, StringConstraints(strict=True, min_length=1, max_length=32)]
    order_id: PositiveId


class WebhookV1Subscription(StepPayModel):
    """v1 subscription webhook `{"id": 1, "status": "ACTIVE"}`."""

    id: PositiveId
    status: LenientSubscriptionStatus


ParsedWebhook = WebhookEnvelope | WebhookV1Order | WebhookV1Subscription


def parse_webhook(body: Any) -> ParsedWebhook:
    """Recognise a parsed webhook body (use `parse_json` so amounts stay exact).

    Raises WebhookShapeError for anything that is not one of StepPay's three shapes.
    """
    if not isinstance(body, Mapping):
        raise WebhookShapeError("a webhook body must be a JSON object")
    model: type[ParsedWebhook]
    if {"timestamp", "event", "data"} <= body.keys():
        model = WebhookEnvelope
    elif "webHookType" in body:
        model = WebhookV1Order
    elif {"id", "status"} <= body.keys():
        model = WebhookV1Subscription
    else:
        raise WebhookShapeError("not a StepPay webhook")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise _shape_error(model.__name__, exc) from None


__all__ = [
    "ParsedWebhook",
    "WebhookData",
    "WebhookEnvelope",
    "WebhookOrder",
    "WebhookPayment",
    "WebhookSubscription",
    "WebhookV1Order",
    "WebhookV1Subscription",
    "parse_webhook",
]
