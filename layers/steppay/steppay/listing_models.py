"""StepPay's paged listings: orders (for reconciliation), customers and products.

Kept apart from `steppay.models` so that the shopper's paths (pay link, verification) do not
build these classes, and their generic pages, at cold start. The rules of `steppay.models` apply.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import Field

from steppay.models import (
    LenientOrderType,
    Money,
    PositiveId,
    PriceInfo,
    StepPayDateTime,
    StepPayModel,
)


class OrderSummary(StepPayModel):
    """OrderListV1DTO: one row of the order list (no order code in StepPay's spec)."""

    _raw_dates = (("payment_date", "payment_date_raw"),)

    id: PositiveId
    code: str | None = None
    type: LenientOrderType | None = None
    paid_amount: Money | None = None
    returned_amount: Money | None = None
    left_amount: Money | None = None
    price: Money | None = None
    payment_date: StepPayDateTime | None = None
    payment_date_raw: str | None = None
    product_name: str | None = None
    customer_name: str | None = Field(default=None, repr=False)
    created_at: StepPayDateTime | None = None
    modified_at: StepPayDateTime | None = None

    @property
    def order_id(self) -> int:
        return self.id


T = TypeVar("T")


class Page(StepPayModel, Generic[T]):
    """A Spring page (`content[]`, `totalPages`, `last`, ...)."""

    content: list[T] = Field(default_factory=list)
    total_pages: int | None = None
    total_elements: int | None = None
    number: int | None = None
    size: int | None = None
    number_of_elements: int | None = None
    first: bool | None = None
    last: bool | None = None
    empty: bool | None = None


class OrderPage(Page[OrderSummary]):
    """OrderListPageV1DTO."""


class CustomerSummary(StepPayModel):
    """CustomerListDTO, for discovery (which customer to order for)."""

    id: int | None = None
    code: str | None = None
    uuid: str | None = None
    status: str | None = None
    name: str | None = Field(default=None, repr=False)
    email: str | None = Field(default=None, repr=False)
    phone: str | None = Field(default=None, repr=False)
    username: str | None = Field(default=None, repr=False)
    created_at: StepPayDateTime | None = None


class CustomerPage(Page[CustomerSummary]):
    """CustomerListPageDTO."""


class ProductSummary(StepPayModel):
    """ProductListDTO, for discovery (product and price codes to order)."""

    id: int | None = None
    code: str | None = None
    name: str | None = None
    type: str | None = None
    status: str | None = None
    prices: list[PriceInfo] = Field(default_factory=list)


class ProductPage(Page[ProductSummary]):
    """ProductListPageDTO."""


__all__ = [
    "CustomerPage",
    "CustomerSummary",
    "OrderPage",
    "OrderSummary",
    "Page",
    "ProductPage",
    "ProductSummary",
]
