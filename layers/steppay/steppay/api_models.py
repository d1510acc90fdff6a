"""Request and response models of the bundle's HTTP API (camelCase on the wire).

These are what the Powertools event handler validates against and what its generated
OpenAPI document describes. Identifiers are constrained here already, so a value such as
`../customers` is refused at the door with `invalid_request`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic.alias_generators import to_camel

from steppay.verdicts import Verdict

ORDER_CODE_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
CATALOGUE_CODE_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
MAX_ID = 2**63 - 1

OrderCode = Annotated[str, StringConstraints(pattern=ORDER_CODE_PATTERN)]
OrderId = Annotated[int, Field(gt=0, le=MAX_ID, strict=True)]
CatalogueCode = Annotated[str, StringConstraints(pattern=CATALOGUE_CODE_PATTERN)]
RedirectUrl = Annotated[str, StringConstraints(min_length=1, max_length=2048)]
# The merchant's own reference: printable text, no control characters.
MerchantRef = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]


class ApiModel(BaseModel):
    # defer_build: built on first use, so each function's cold start pays only for its own models.
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        str_strip_whitespace=False,
        defer_build=True,
    )


class OrderItemInput(ApiModel):
    product_code: CatalogueCode
    price_code: CatalogueCode
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
    minimum_quantity: Annotated[int, Field(ge=1, le=1000, strict=True)] = 1
    maximum_quantity: Annotated[int, Field(ge=1, le=1000, strict=True)] | None = None


class OrderInput(ApiModel):
    """An order for StepPay to create now; StepPay computes the amount from its catalogue."""

    customer_id: OrderId | None = None
    customer_code: CatalogueCode | None = None
    customer_uuid: uuid.UUID | None = None
    items: Annotated[list[OrderItemInput], Field(min_length=1, max_length=20)]
    purchase_deadline: AwareDatetime | None = None

    @model_validator(mode="after")
    def _one_customer(self) -> OrderInput:
        if self.customer_id is None and self.customer_code is None and self.customer_uuid is None:
            raise ValueError("one of customerId, customerCode or customerUuid is required")
        return self


class PayUrlRequest(ApiModel):
    order_code: OrderCode | None = None
    order: OrderInput | None = None
    success_url: RedirectUrl
    error_url: RedirectUrl
    cancel_url: RedirectUrl | None = None
    lang: Literal["ko", "en"] | None = None
    merchant_ref: MerchantRef | None = None

    @model_validator(mode="after")
    def _order_or_code(self) -> PayUrlRequest:
        if (self.order_code is None) == (self.order is None):
            raise ValueError("give exactly one of orderCode or order")
        return self


class PayUrlResponse(ApiModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    order_code: str
    order_id: int
    pay_url: str
    amount: Decimal | None
    currency: str | None


class VerifyRequest(ApiModel):
    order_code: OrderCode
    order_id: OrderId | None = None
    # What the redirect said. Recorded for diagnostics only: never trusted.
    status: Annotated[str, StringConstraints(max_length=32, pattern=r"^[A-Za-z_]*$")] | None = None


class VerifyResponse(ApiModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    verified: bool
    verdict: Verdict
    order_code: str
    order_id: int | None
    order_type: str | None
    amount: Decimal | None
    currency: str | None
    paid_at: datetime | None
    merchant_ref: str | None
    subscription_ids: list[int]


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    """The error envelope of every refusal: `{"error": {"code", "message"}}`."""

    error: ErrorBody


class WebhookAck(BaseModel):
    """What `POST /webhooks/steppay` answers once a webhook is stored and queued."""

    received: bool
    duplicate: bool
