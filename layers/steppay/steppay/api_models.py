"""Request and response models of the bundle's HTTP API (camelCase on the wire).

These are what the Powertools event handler validates against and what its generated
OpenAPI document describes. Identifiers are constrained here already, so a value such as
`../customers` is refused at the door with `invalid_request`.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel

from steppay.identifiers import MAX_ID, ORDER_CODE_MAX_LENGTH, ORDER_CODE_NOT_ID_PATTERN
from steppay.verdicts import Verdict

CATALOGUE_CODE_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
CHECKOUT_ID_PATTERN = r"^chk_[0-9a-f]{32}$"
MERCHANT_REF_PATTERN = r"^[^\x00-\x1f\x7f]+$"
# Printable ASCII, as Stripe's Idempotency-Key (a UUID fits).
IDEMPOTENCY_KEY_PATTERN = re.compile(r"[\x21-\x7e]{1,255}", re.ASCII)

OrderCode = Annotated[
    str, StringConstraints(max_length=ORDER_CODE_MAX_LENGTH, pattern=ORDER_CODE_NOT_ID_PATTERN)
]
OrderId = Annotated[int, Field(gt=0, le=MAX_ID, strict=True)]
CatalogueCode = Annotated[str, StringConstraints(pattern=CATALOGUE_CODE_PATTERN)]
RedirectUrl = Annotated[str, StringConstraints(min_length=1, max_length=2048)]


def _no_float(value: object) -> object:
    if isinstance(value, float | bool):
        raise ValueError("amounts are integers or decimal strings, never floats")
    return value


AMOUNT_PATTERN = r"^[0-9]{1,13}(\.[0-9]{1,2})?$"
# An integer or a decimal string on the wire (what the JSON schema says too): never a float.
Amount = Annotated[
    Decimal,
    BeforeValidator(_no_float),
    Field(ge=0, max_digits=15, decimal_places=2, allow_inf_nan=False),
    WithJsonSchema(
        {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": AMOUNT_PATTERN}]}
    ),
]
# The merchant's own reference: printable text, no control characters.
MerchantRef = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=MERCHANT_REF_PATTERN)]


class ApiModel(BaseModel):
    # defer_build: built on first use, so each function's cold start pays only for its own models.
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        str_strip_whitespace=False,
        defer_build=True,
    )


class CheckoutItemInput(ApiModel):
    """One line the merchant sells: StepPay prices it from its own catalogue."""

    product_code: CatalogueCode
    price_code: CatalogueCode
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
    quantity: Annotated[int, Field(ge=1, le=1000, strict=True)] = 1
    # When the shopper may raise the quantity on StepPay's pay page (up to this many).
    max_quantity: Annotated[int, Field(ge=1, le=1000, strict=True)] | None = None

    @model_validator(mode="after")
    def _bounds(self) -> CheckoutItemInput:
        if self.max_quantity is not None and self.max_quantity < self.quantity:
            raise ValueError("maxQuantity must not be below quantity")
        return self


class CheckoutRequest(ApiModel):
    """`POST /checkouts`, sent by the merchant's backend: what is sold, to whom, for how much.

    Nothing here comes from a shopper's browser: the route is authenticated (AWS_IAM), and the
    answer's `payUrl` is all the browser gets.
    """

    merchant_ref: MerchantRef
    customer_id: OrderId | None = None
    customer_code: CatalogueCode | None = None
    customer_uuid: uuid.UUID | None = None
    items: Annotated[list[CheckoutItemInput], Field(min_length=1, max_length=20)]
    success_url: RedirectUrl
    error_url: RedirectUrl
    cancel_url: RedirectUrl | None = None
    lang: Literal["ko", "en"] | None = None
    # The total the merchant expects StepPay to charge (checked at registration and at payment).
    expected_amount: Amount | None = None
    expires_at: AwareDatetime | None = None

    @model_validator(mode="after")
    def _one_customer(self) -> CheckoutRequest:
        given = [v for v in (self.customer_id, self.customer_code, self.customer_uuid) if v is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of customerId, customerCode or customerUuid")
        codes = [(i.product_code, i.price_code) for i in self.items]
        if len(set(codes)) != len(codes):
            raise ValueError("each productCode/priceCode pair may appear once in items")
        return self


class CheckoutResponse(ApiModel):
    """`POST /checkouts`: hand only `payUrl` (or `orderCode`) to the shopper's browser."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    checkout_id: str
    merchant_ref: str
    order_code: str
    order_id: int
    pay_url: str
    amount: Decimal
    currency: str
    expires_at: datetime


class RegisteredItemView(ApiModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    product_code: str
    price_code: str
    currency: str
    quantity: int
    max_quantity: int | None


class CustomerView(ApiModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    id: int | None
    code: str | None
    uuid: str | None


class CheckoutView(ApiModel):
    """`GET /checkouts/{checkoutId}` (merchant backend only): the registration and what came of it."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    checkout_id: str
    merchant_ref: str
    order_code: str
    order_id: int | None
    # a steppay.transitions.PaymentState: PENDING, PAID, MISMATCH, FAILED, PARTIALLY_REFUNDED,
    # CANCELED, NEEDS_REVIEW
    state: str
    pay_url: str | None
    customer: CustomerView
    items: list[RegisteredItemView]
    amount: Decimal | None  # what StepPay priced the registered lines at
    expected_amount: Decimal | None
    currency: str | None
    created_at: datetime | None
    expires_at: datetime | None
    paid_at: datetime | None
    paid_amount: Decimal | None
    payment_method: str | None
    subscription_ids: list[int]
    mismatches: list[str]
    unknown_values: list[str] = []  # NEEDS_REVIEW: what StepPay said that the bundle does not know
    returned_amount: Decimal | None
    canceled_at: datetime | None


class VerifyRequest(ApiModel):
    order_code: OrderCode
    order_id: OrderId | None = None
    # What the redirect said. Recorded for diagnostics only: never trusted.
    status: Annotated[str, StringConstraints(max_length=32, pattern=r"^[A-Za-z_]*$")] | None = None


class VerifyResponse(ApiModel):
    """What the shopper's page may know: the verdict on the order it named, nothing more.

    No merchantRef, customer or subscription ids: the page is public, and anyone can call it
    with an order code they saw.
    """

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    verified: bool
    verdict: Verdict
    order_code: str
    amount: Decimal | None
    currency: str | None
    paid_at: datetime | None


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    """The error envelope of every refusal: `{"error": {"code", "message"}}`."""

    error: ErrorBody


class WebhookAck(BaseModel):
    """What `POST /webhooks/steppay` answers once a webhook is queued (or needs no processing)."""

    received: bool
    queued: bool  # False: a type that cannot change anything we record, acknowledged only
