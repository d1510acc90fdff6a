"""StepPay's subscription detail (`GET /api/v1/subscriptions/{id}`), read for renewals and status sync.

Kept apart from `steppay.models` so that the shopper's paths (pay link, verification) do not
build these classes at cold start. The rules of `steppay.models` apply.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from steppay.models import (
    _ORDER_TWINS,
    LenientOrderType,
    Money,
    PositiveId,
    PriceInfo,
    StepPayDateTime,
    StepPayModel,
    SubscriptionStatus,
    _merge_twins,
)

# -- subscriptions ------------------------------------------------------------------------


class SubscriptionOrder(StepPayModel):
    """An order seen from a subscription (`parentOrder`, `relatedOrders`): identity only.

    Read leniently: nothing is decided from it; a decision looks the order up itself.
    """

    order_id: PositiveId | None = None
    order_code: str | None = None
    type: LenientOrderType | None = None

    @model_validator(mode="before")
    @classmethod
    def _twins(cls, data: Any) -> Any:
        return _merge_twins(data, _ORDER_TWINS)


class SubscriptionCustomer(StepPayModel):
    id: int | None = None
    uuid: str | None = None
    code: str | None = None
    name: str | None = Field(default=None, repr=False)
    email: str | None = Field(default=None, repr=False)
    phone: str | None = Field(default=None, repr=False)


class SubscriptionItem(StepPayModel):
    id: int | None = None
    code: str | None = None
    product_code: str | None = None
    price_code: str | None = None
    product_name: str | None = None
    price: Money | None = None
    quantity: int | None = None
    type: str | None = None


class Period(StepPayModel):
    start_date_time: StepPayDateTime | None = None
    end_date_time: StepPayDateTime | None = None


class Subscription(StepPayModel):
    """SubscriptionV1DTO."""

    id: PositiveId
    status: SubscriptionStatus
    start_date: StepPayDateTime | None = None
    last_payment_date: StepPayDateTime | None = None
    next_payment_date: StepPayDateTime | None = None
    end_date: StepPayDateTime | None = None
    paused_date_time: StepPayDateTime | None = None
    interval: str | None = None
    interval_count: int | None = None
    recurring_count: int | None = None
    price: PriceInfo | None = None
    items: list[SubscriptionItem] = Field(default_factory=list)
    customer: SubscriptionCustomer | None = None
    parent_order: SubscriptionOrder | None = None
    related_orders: list[SubscriptionOrder] = Field(default_factory=list)
    current_period: Period | None = None
    trial_period: Period | None = None
    canceled_via: str | None = None


__all__ = [
    "Period",
    "Subscription",
    "SubscriptionCustomer",
    "SubscriptionItem",
    "SubscriptionOrder",
]
