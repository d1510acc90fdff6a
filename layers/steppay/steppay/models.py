"""Pydantic models of the StepPay shapes this project reads and writes.

Rules the models follow:

* Tolerant of what StepPay adds: unknown fields are kept (`extra="allow"`), optional fields may
  be missing, and enum-like fields we do not decide with (payment gateway, payment method, ...)
  are plain `str` so that a new value never breaks parsing. The item type is plain `str` too:
  the rules only ask whether it is one of StepPay's own line kinds (TAX, SHIPPING, FEE,
  DISCOUNT); any other value is an ordered item, held against the registration like a SKU.
* Strict on what we decide with: order id (int, never a string or bool), order code (str),
  currency (ISO 4217 letters), money and `paymentDate`. Order type (`OrderType`) and item status
  (`OrderItemStatus`) are decided with too, but StepPay may add values: a value we do not know is
  kept as text (never guessed at) and `OrderDetail.unknown_values` names it, so that the rules
  judge the order NEEDS_REVIEW instead of failing the parse (a lookup would answer 503 and a
  webhook would loop until the dead-letter queue).
* Money is `Decimal` and never passes through `float`: a float input is refused, so JSON must be
  parsed with `parse_json` (`json.loads(..., parse_float=Decimal)`), as the client does.
  (pydantic's own `model_validate_json` reads JSON numbers as floats and would be refused.)
  Plain decimal text such as `"9900.10"` is exact and accepted, so `model_dump(mode="json")`
  output reads back.
* StepPay's date-times are zone-less local times. `StepPayDateTime` reads them in the zone given
  by the validation context key `steppay_timezone`, else `Settings.steppay_timezone`
  (default UTC, unverified: docs/STEPPAY.md), and is always timezone-aware; a string with an
  offset keeps its offset.
  Models that carry a `paymentDate` also keep the original string (`payment_date_raw`), because
  records store StepPay's value exactly as it came.
* Python names are snake_case; StepPay's camelCase names are the aliases. Both are accepted.
"""

from __future__ import annotations

import functools
import json
import re
import uuid
from collections.abc import Mapping
from datetime import datetime, tzinfo
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, ClassVar
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    FieldSerializationInfo,
    StringConstraints,
    ValidationInfo,
    field_serializer,
    model_validator,
)
from pydantic.alias_generators import to_camel

from steppay.identifiers import MAX_ID

TIMEZONE_CONTEXT_KEY = "steppay_timezone"

# -- JSON ---------------------------------------------------------------------------------


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"JSON constant {name} is not allowed")


def parse_json(data: str | bytes | bytearray) -> Any:
    """Parse StepPay JSON with every non-integer number as an exact `Decimal`.

    `9900.10` stays `Decimal("9900.10")`; NaN/Infinity are refused.
    """
    return json.loads(data, parse_float=Decimal, parse_constant=_refuse_constant)


def dumps_json(value: Any) -> str:
    """Serialise a request body, writing `Decimal` as an exact JSON number (never via float)."""

    def encode(item: Any) -> str:
        if isinstance(item, Decimal):
            if not item.is_finite():
                raise ValueError("money must be finite")
            return format(item, "f")
        if isinstance(item, Mapping):
            return "{" + ",".join(f"{json.dumps(str(k))}:{encode(v)}" for k, v in item.items()) + "}"
        if isinstance(item, list | tuple):
            return "[" + ",".join(encode(v) for v in item) + "]"
        if isinstance(item, float):
            raise TypeError("floats are not written to StepPay; use Decimal")
        return json.dumps(item, ensure_ascii=False)

    return encode(value)


# -- field types --------------------------------------------------------------------------


_DECIMAL_TEXT = re.compile(r"-?[0-9]{1,30}(\.[0-9]{1,30})?", re.ASCII)


def _exact_number(value: Any) -> Any:
    # bool is an int subclass and float is inexact: neither is money. Plain decimal text
    # ("9900.10", as our own JSON dumps write it) is exact and accepted.
    if isinstance(value, bool) or isinstance(value, float):
        raise ValueError("must be an exact number (int, Decimal or decimal text), never a float")
    if isinstance(value, int | Decimal):
        return value
    if isinstance(value, str) and _DECIMAL_TEXT.fullmatch(value):
        return Decimal(value)
    raise ValueError("must be an exact number (int, Decimal or decimal text)")


Money = Annotated[Decimal, BeforeValidator(_exact_number), Field(allow_inf_nan=False)]
"""An amount in the order's currency, exact."""

PositiveId = Annotated[int, Field(strict=True, gt=0, le=MAX_ID)]
Currency = Annotated[str, StringConstraints(strict=True, pattern=r"^[A-Z]{3}$")]
NonEmptyStr = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=256)]


def zone_for(context: Any) -> tzinfo:
    """The zone for StepPay's zone-less date-times: the validation context's, else the settings'."""
    if isinstance(context, Mapping):
        zone = context.get(TIMEZONE_CONTEXT_KEY)
        if isinstance(zone, tzinfo):
            return zone
        if isinstance(zone, str):
            return ZoneInfo(zone)
    from steppay.settings import get_settings  # late: settings are read on first use only

    return get_settings().zone


def _date_time_input(value: Any) -> Any:
    # StepPay sends ISO 8601 strings; a number here would be read as epoch seconds in UTC,
    # which is never what StepPay means.
    if isinstance(value, str | datetime):
        return value
    raise ValueError("must be an ISO 8601 date-time string")


def _localise(value: datetime, info: ValidationInfo) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        return value.replace(tzinfo=zone_for(info.context))
    return value


StepPayDateTime = Annotated[datetime, BeforeValidator(_date_time_input), AfterValidator(_localise)]
"""A StepPay date-time, timezone-aware (zone-less input read in StepPay's zone)."""


# -- enums --------------------------------------------------------------------------------


class OrderType(StrEnum):
    ONE_TIME = "ONE_TIME"
    RECURRING_INITIAL = "RECURRING_INITIAL"
    RECURRING = "RECURRING"
    PAYMENT_METHOD = "PAYMENT_METHOD"
    ADD_USAGE = "ADD_USAGE"


class OrderItemStatus(StrEnum):
    CREATED = "CREATED"
    DEPOSIT_WAITING = "DEPOSIT_WAITING"
    CANCELLED = "CANCELLED"
    PAID = "PAID"
    CANCELLATION_REQUEST = "CANCELLATION_REQUEST"
    CANCELLATION_REQUEST_CANCELLED = "CANCELLATION_REQUEST_CANCELLED"
    CANCELLATION_REQUEST_DENIED = "CANCELLATION_REQUEST_DENIED"
    CANCELLATION_REFUNDING = "CANCELLATION_REFUNDING"
    CANCELLATION_REFUNDED = "CANCELLATION_REFUNDED"
    CANCELLATION_REFUNDED_PARTIALLY = "CANCELLATION_REFUNDED_PARTIALLY"
    ORDER_DELIVERY_PREPARING = "ORDER_DELIVERY_PREPARING"
    ORDER_DELIVERY_SUSPENDED = "ORDER_DELIVERY_SUSPENDED"
    ORDER_DELIVERY_ON_THE_WAY = "ORDER_DELIVERY_ON_THE_WAY"
    ORDER_DELIVERY_COMPLETED = "ORDER_DELIVERY_COMPLETED"
    EXCHANGE_REQUEST = "EXCHANGE_REQUEST"
    EXCHANGE_REQUEST_CANCELLED = "EXCHANGE_REQUEST_CANCELLED"
    EXCHANGE_REQUEST_REJECTED = "EXCHANGE_REQUEST_REJECTED"
    EXCHANGE_COLLECTION_PREPARING = "EXCHANGE_COLLECTION_PREPARING"
    EXCHANGE_COLLECTION_ON_THE_WAY = "EXCHANGE_COLLECTION_ON_THE_WAY"
    EXCHANGE_COLLECTION_COMPLETED = "EXCHANGE_COLLECTION_COMPLETED"
    EXCHANGE_DELIVERY_PREPARING = "EXCHANGE_DELIVERY_PREPARING"
    EXCHANGE_DELIVERY_ON_THE_WAY = "EXCHANGE_DELIVERY_ON_THE_WAY"
    EXCHANGE_DELIVERY_COMPLETED = "EXCHANGE_DELIVERY_COMPLETED"
    EXCHANGE_REJECT_DELIVERY_PREPARING = "EXCHANGE_REJECT_DELIVERY_PREPARING"
    EXCHANGE_REJECT_DELIVERY_ON_THE_WAY = "EXCHANGE_REJECT_DELIVERY_ON_THE_WAY"
    EXCHANGE_REJECT_DELIVERY_COMPLETED = "EXCHANGE_REJECT_DELIVERY_COMPLETED"
    EXCHANGE_PENDING = "EXCHANGE_PENDING"
    EXCHANGE_REJECTED = "EXCHANGE_REJECTED"
    RETURN_REQUEST = "RETURN_REQUEST"
    RETURN_REQUEST_CANCELLED = "RETURN_REQUEST_CANCELLED"
    RETURN_REQUEST_REJECTED = "RETURN_REQUEST_REJECTED"
    RETURN_COLLECTION_PREPARING = "RETURN_COLLECTION_PREPARING"
    RETURN_COLLECTION_ON_THE_WAY = "RETURN_COLLECTION_ON_THE_WAY"
    RETURN_COLLECTION_COMPLETED = "RETURN_COLLECTION_COMPLETED"
    RETURN_REJECT_DELIVERY_PREPARING = "RETURN_REJECT_DELIVERY_PREPARING"
    RETURN_REJECT_DELIVERY_ON_THE_WAY = "RETURN_REJECT_DELIVERY_ON_THE_WAY"
    RETURN_REJECT_DELIVERY_COMPLETED = "RETURN_REJECT_DELIVERY_COMPLETED"
    RETURN_PENDING = "RETURN_PENDING"
    RETURN_REJECTED = "RETURN_REJECTED"
    RETURN_REFUNDING = "RETURN_REFUNDING"
    RETURN_REFUNDED = "RETURN_REFUNDED"
    RETURN_REFUNDED_PARTIALLY = "RETURN_REFUNDED_PARTIALLY"
    PAYMENT_FAILURE = "PAYMENT_FAILURE"
    FINISHED_EXCHANGE_AVAILABLE = "FINISHED_EXCHANGE_AVAILABLE"
    FINISHED_RETURN_AVAILABLE = "FINISHED_RETURN_AVAILABLE"
    FINISHED_SUCCESSFULLY = "FINISHED_SUCCESSFULLY"


class SubscriptionStatus(StrEnum):
    ACTIVE = "ACTIVE"
    INCOMPLETE = "INCOMPLETE"
    UNPAID = "UNPAID"
    PENDING_PAUSE = "PENDING_PAUSE"
    PAUSE = "PAUSE"
    PENDING_CANCEL = "PENDING_CANCEL"
    EXPIRED = "EXPIRED"
    CANCELED = "CANCELED"
    QUEUEING = "QUEUEING"


class WebhookPaymentStatus(StrEnum):
    STANDBY = "STANDBY"
    COMPLETE = "COMPLETE"
    CANCELED = "CANCELED"
    PARTIAL_CANCELED = "PARTIAL_CANCELED"
    USER_CANCELED = "USER_CANCELED"
    CANCELED_FAIL = "CANCELED_FAIL"
    FAILED = "FAILED"
    VIRTUAL_BANK_STANDBY = "VIRTUAL_BANK_STANDBY"
    CMS_STANDBY = "CMS_STANDBY"


# Where a status only informs (a webhook hint, a subscription seen from an order), a value
# StepPay adds later is kept as a plain string instead of failing the whole parse.
LenientSubscriptionStatus = Annotated[SubscriptionStatus | str, Field(union_mode="left_to_right")]
LenientPaymentStatus = Annotated[WebhookPaymentStatus | str, Field(union_mode="left_to_right")]
LenientOrderType = Annotated[OrderType | str, Field(union_mode="left_to_right")]
# Decided with, but open to values StepPay adds later (see the module docstring): known values
# become the enum, others stay non-empty text that `OrderDetail.unknown_values` reports.
DecidedOrderType = Annotated[OrderType | NonEmptyStr, Field(union_mode="left_to_right")]
DecidedItemStatus = Annotated[OrderItemStatus | NonEmptyStr, Field(union_mode="left_to_right")]


# -- base ---------------------------------------------------------------------------------


class StepPayModel(BaseModel):
    """Base of every shape StepPay sends us."""

    # defer_build: a model's validator is built on its first use, so a function's cold start
    # pays only for the shapes its path reads (see README "Performance and cost").
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="allow", defer_build=True
    )

    # (date field, raw field) pairs: the raw field keeps StepPay's string as it came.
    _raw_dates: ClassVar[tuple[tuple[str, str], ...]] = ()

    @model_validator(mode="before")
    @classmethod
    def _keep_raw_dates(cls, data: Any) -> Any:
        if not cls._raw_dates or not isinstance(data, Mapping):
            return data
        updates: dict[str, Any] = {}
        for field, field_alias, raw_field, raw_alias in _raw_date_names(cls._raw_dates):
            if raw_alias in data or raw_field in data:
                continue
            value = data.get(field_alias, data.get(field))
            if isinstance(value, str):
                updates[raw_alias] = value
        return {**data, **updates} if updates else data


@functools.cache
def _raw_date_names(pairs: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str, str, str], ...]:
    # (field, its alias, raw field, its alias), worked out once per model rather than per order.
    return tuple((field, to_camel(field), raw, to_camel(raw)) for field, raw in pairs)


def _merge_twins(data: Any, pairs: tuple[tuple[str, str, str], ...]) -> Any:
    """Fold StepPay's twin names (`orderId`/`id`, `orderCode`/`code`) into one field.

    Both may be present; if they disagree the answer is contradictory and is refused.
    """
    if not isinstance(data, Mapping):
        return data
    merged = dict(data)
    for alias, name, twin in pairs:
        values = [merged.pop(key) for key in (alias, name, twin) if key in merged]
        present = [v for v in values if v is not None]
        if any((type(v), v) != (type(present[0]), present[0]) for v in present[1:]):
            raise ValueError(f"{alias} and {twin} disagree")
        if present:
            merged[alias] = present[0]
    return merged


_ORDER_TWINS = (("orderId", "order_id", "id"), ("orderCode", "order_code", "code"))


# -- orders -------------------------------------------------------------------------------


class PriceInfo(StepPayModel):
    """A price plan (PriceV1DTO), as far as we read it."""

    id: int | None = None
    code: str | None = None
    price: Money | None = None
    type: str | None = None
    unit: str | None = None
    plan_name: str | None = None


class ProductInfo(StepPayModel):
    id: int | None = None
    code: str | None = None
    name: str | None = None
    type: str | None = None


class DemoCycle(StepPayModel):
    """DemoCycleDTO: an item's free trial (`num` periods of `type`: DAY, WEEK, MONTH, YEAR)."""

    num: int | None = None
    type: str | None = None


class OrderItem(StepPayModel):
    """OrderItemV1DTO."""

    id: int | None = None
    code: str | None = None
    order_item_code: str | None = None
    status: DecidedItemStatus
    currency: Currency
    paid_amount: Money | None = None
    quantity: int | None = None
    minimum_quantity: int | None = None
    maximum_quantity: int | None = None
    # SKU, TAX, SHIPPING, FEE, DISCOUNT, ...: plain text; steppay.verification tells StepPay's
    # own lines (TAX, SHIPPING, FEE, DISCOUNT) from what was ordered.
    type: str | None = None
    price: PriceInfo | None = None
    product: ProductInfo | None = None
    ordered_product_name: str | None = None
    ordered_plan_name: str | None = None
    discount_name: str | None = None  # a DISCOUNT line's name
    related_order_item_id: int | None = None  # the item a DISCOUNT line belongs to
    demo_cycle: DemoCycle | None = None  # a free trial: its first payment is 0
    canceled_date_time: StepPayDateTime | None = None
    created_at: StepPayDateTime | None = None
    modified_at: StepPayDateTime | None = None


class OrderPayment(StepPayModel):
    """OrderPaymentV1DTO: how the order was paid, or why it failed."""

    _raw_dates = (("payment_date", "payment_date_raw"),)

    amount: Money | None = None
    discount: Money | None = None
    payment_date: StepPayDateTime | None = None
    payment_date_raw: str | None = None
    payment_method: str | None = None  # CARD, VBANK, ...: informative, new ones must not break us
    payment_gateway: str | None = None  # NICE, TOSS, ...: idem
    card_number: str | None = Field(default=None, repr=False)  # masked by StepPay, still kept out of reprs
    payment_receipt_url: str | None = None
    error_code: str | None = None
    error_message: str | None = None


class OrderSubscription(StepPayModel):
    """OrderSubscriptionV1DTO: a subscription seen from an order."""

    id: PositiveId
    status: LenientSubscriptionStatus | None = None
    start_date: StepPayDateTime | None = None
    last_payment_date: StepPayDateTime | None = None
    next_payment_date: StepPayDateTime | None = None
    end_date: StepPayDateTime | None = None
    trial_end_date: StepPayDateTime | None = None
    interval: str | None = None
    interval_count: int | None = None


class OrderCustomer(StepPayModel):
    """OrderCustomerDTO. Personal data stays out of reprs (and so out of logged models)."""

    id: int | None = None
    uuid: str | None = None
    code: str | None = None
    status: str | None = None
    name: str | None = Field(default=None, repr=False)
    email: str | None = Field(default=None, repr=False)
    phone: str | None = Field(default=None, repr=False)
    username: str | None = Field(default=None, repr=False)


class OrderDetail(StepPayModel):
    """OrderV1DTO (detail) and ProductOrderdto (create response): one model for both.

    StepPay names the id `orderId` and `id`, the code `orderCode` and `code`; either is accepted
    and exposed as `order_id` / `order_code` (contradicting twins are refused).
    """

    _raw_dates = (("payment_date", "payment_date_raw"),)

    order_id: PositiveId
    order_code: NonEmptyStr
    type: DecidedOrderType
    paid_amount: Money
    returned_amount: Money | None = None
    left_amount: Money | None = None
    discounted_amount: Money | None = None
    payment_date: StepPayDateTime | None = None
    payment_date_raw: str | None = None
    items: list[OrderItem] = Field(default_factory=list)
    payment: OrderPayment | None = None
    customer: OrderCustomer | None = None
    subscriptions: list[OrderSubscription] = Field(default_factory=list)
    parent_subscription: OrderSubscription | None = None
    id_key: str | None = None
    product_name: str | None = None
    invoice_id: int | None = None
    purchase_deadline: StepPayDateTime | None = None
    payment_due_date: StepPayDateTime | None = None
    calculate_start_date: StepPayDateTime | None = None
    calculate_end_date: StepPayDateTime | None = None
    created_at: StepPayDateTime | None = None
    modified_at: StepPayDateTime | None = None

    @model_validator(mode="before")
    @classmethod
    def _twins(cls, data: Any) -> Any:
        return _merge_twins(data, _ORDER_TWINS)

    @property
    def currencies(self) -> frozenset[str]:
        return frozenset(item.currency for item in self.items)

    @property
    def currency(self) -> str | None:
        """The order's currency when all its items agree on one, else None."""
        found = self.currencies
        return next(iter(found)) if len(found) == 1 else None

    @property
    def item_statuses(self) -> tuple[OrderItemStatus | str, ...]:
        return tuple(item.status for item in self.items)

    @property
    def unknown_values(self) -> tuple[str, ...]:
        """The values we decide with that this bundle does not know (StepPay added them later)."""
        found = [] if isinstance(self.type, OrderType) else [f"order type {self.type!r}"]
        found += [f"item status {s!r}" for s in self.item_statuses if not isinstance(s, OrderItemStatus)]
        return tuple(found)


class CancelResult(StepPayModel):
    """ProductApiresponse, StepPay's answer to a cancel: `{message, body}`."""

    message: str | None = None
    body: Any = None


# -- payment receipt ----------------------------------------------------------------------


class PaymentReceipt(StepPayModel):
    """The answer of `GET /api/payment/receipt/{idKey}` (StepPay's guide sample).

    Its shape is NOT in StepPay's public spec: it is modelled on the order detail's payment
    fields. Every field is optional because the real shape is unpublished; the ones we would
    decide with (`order_id`, `order_code`, `amount`, `payment_date`) are typed strictly when
    present. A receipt alone never makes a payment count: `verify_payment` works on the order
    detail, and the client refuses a receipt whose `idKey` differs from the one asked for.
    """

    _raw_dates = (("payment_date", "payment_date_raw"),)

    id_key: str | None = None
    order_id: PositiveId | None = None
    order_code: str | None = None
    amount: Money | None = None
    payment_date: StepPayDateTime | None = None
    payment_date_raw: str | None = None
    payment_method: str | None = None
    payment_gateway: str | None = None
    card_number: str | None = Field(default=None, repr=False)
    status: str | None = None
    error_code: str | None = None
    error_message: str | None = None


# -- order creation -----------------------------------------------------------------------


class _Request(BaseModel):
    """Base of what we send: unknown fields are our typos, so they are refused."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", defer_build=True
    )


CatalogueCode = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=128)]


class OrderCreateItem(_Request):
    """OrderItemCreateV1DTO."""

    product_code: CatalogueCode
    price_code: CatalogueCode
    currency: Currency = "KRW"
    minimum_quantity: Annotated[int, Field(strict=True, ge=0)] = 1
    maximum_quantity: Annotated[int, Field(strict=True, ge=1)] | None = None
    product_option: list[int] | None = None


class OrderCreateRequest(_Request):
    """OrderCreateV1DTO. Serialise with `to_steppay()` (camelCase, `None`s left out)."""

    customer_id: PositiveId | None = None
    customer_code: CatalogueCode | None = None
    customer_uuid: uuid.UUID | None = None
    items: Annotated[list[OrderCreateItem], Field(min_length=1)]
    purchase_deadline: AwareDatetime | None = None
    payment_gateway: str | None = None

    @model_validator(mode="after")
    def _one_customer(self) -> OrderCreateRequest:
        if self.customer_id is None and self.customer_code is None and self.customer_uuid is None:
            raise ValueError("one of customerId, customerCode or customerUuid is required")
        return self

    @field_serializer("purchase_deadline")
    def _deadline(self, value: datetime | None, info: FieldSerializationInfo) -> str | None:
        # StepPay writes zone-less local date-times; send ours the same way, in its zone.
        if value is None:
            return None
        return value.astimezone(zone_for(info.context)).replace(tzinfo=None).isoformat()

    def to_steppay(self, *, zone: tzinfo | None = None) -> dict[str, Any]:
        context = {TIMEZONE_CONTEXT_KEY: zone} if zone is not None else None
        body: dict[str, Any] = self.model_dump(mode="json", by_alias=True, exclude_none=True, context=context)
        return body


__all__ = [
    "TIMEZONE_CONTEXT_KEY",
    "CancelResult",
    "Currency",
    "DemoCycle",
    "Money",
    "OrderCreateItem",
    "OrderCreateRequest",
    "OrderCustomer",
    "OrderDetail",
    "OrderItem",
    "OrderItemStatus",
    "OrderPayment",
    "OrderSubscription",
    "OrderType",
    "PaymentReceipt",
    "PositiveId",
    "PriceInfo",
    "ProductInfo",
    "StepPayDateTime",
    "StepPayModel",
    "SubscriptionStatus",
    "WebhookPaymentStatus",
    "dumps_json",
    "parse_json",
    "zone_for",
]
