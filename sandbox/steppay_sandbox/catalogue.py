"""The seed catalogue: customers, products and their prices (``catalogue.json``).

The file format is the sandbox's own (small and readable); the API renders it in StepPay's
shapes. Amounts must be integers (no floats anywhere near money).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from steppay_sandbox.timeutil import parse_datetime

DEFAULT_CATALOGUE = Path(__file__).with_name("catalogue.json")

PRICE_TYPES = frozenset({"ONE_TIME", "FLAT", "UNIT_BASED", "USAGE_BASED", "VOLUME_BASED", "BUNDLE"})
INTERVALS = frozenset({"DAY", "WEEK", "MONTH", "YEAR"})
PRODUCT_TYPES = frozenset({"BOX", "SOFTWARE", "BUNDLE", "INVOICE", "DRAFT"})
LINE_TYPES = frozenset({"TAX", "SHIPPING", "FEE", "DISCOUNT"})


class CatalogueError(ValueError):
    """The catalogue file is not usable."""


@dataclass(frozen=True)
class Recurring:
    id: int
    interval: str
    interval_count: int


@dataclass(frozen=True)
class PriceLine:
    """A line StepPay adds to an order of this price (order item type TAX/SHIPPING/FEE/DISCOUNT).

    ``rate_percent`` (TAX): that share of the SKU item's amount; otherwise ``amount`` once per
    order. A DISCOUNT's amount is given positive and charged negative.
    """

    type: str
    name: str
    amount: int
    rate_percent: int | None


@dataclass(frozen=True)
class Price:
    id: int
    code: str
    type: str
    amount: int
    currency: str
    plan_name: str
    recurring: Recurring | None
    product_code: str
    # The spec's ``firstSalePrice``, read as its description says: the discount per unit on the
    # first payment (a DISCOUNT line), renewals paying the full price. None: no first-sale price.
    first_sale_price: int | None = None
    lines: tuple[PriceLine, ...] = ()

    @property
    def is_recurring(self) -> bool:
        return self.recurring is not None


@dataclass(frozen=True)
class Product:
    id: int
    code: str
    name: str
    type: str
    status: str
    description: str
    created_at: datetime
    prices: tuple[Price, ...]
    # A free trial (``enabledDemo``, ``demoPeriod``, ``demoPeriodUnit``): a subscription's first
    # payment is 0 won and the first renewal falls at the trial's end.
    demo_period: int | None = None
    demo_period_unit: str = "DAY"

    def price(self, code: str) -> Price | None:
        return next((p for p in self.prices if p.code == code), None)


@dataclass(frozen=True)
class Customer:
    id: int
    code: str
    uuid: str
    name: str
    email: str
    phone: str
    username: str
    created_at: datetime


@dataclass(frozen=True)
class Catalogue:
    vendor_uuid: str
    customers: tuple[Customer, ...]
    products: tuple[Product, ...]

    def customer_by_id(self, value: int) -> Customer | None:
        return next((c for c in self.customers if c.id == value), None)

    def customer_by_code(self, value: str) -> Customer | None:
        return next((c for c in self.customers if c.code == value), None)

    def customer_by_uuid(self, value: str) -> Customer | None:
        return next((c for c in self.customers if c.uuid.lower() == value.lower()), None)

    def product(self, code: str) -> Product | None:
        return next((p for p in self.products if p.code == code), None)

    def price(self, product_code: str, price_code: str) -> Price | None:
        product = self.product(product_code)
        return product.price(price_code) if product else None


def _int(raw: Mapping[str, Any], key: str) -> int:
    value = raw.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise CatalogueError(f"{key!r} must be an integer in {dict(raw)!r}")
    return value


def _str(raw: Mapping[str, Any], key: str, default: str | None = None) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str) or not value:
        raise CatalogueError(f"{key!r} must be a non-empty string in {dict(raw)!r}")
    return value


def _price(raw: Mapping[str, Any], product_code: str) -> Price:
    recurring_raw = raw.get("recurring")
    recurring = None
    if recurring_raw is not None:
        interval = _str(recurring_raw, "interval")
        if interval not in INTERVALS:
            raise CatalogueError(f"unknown interval {interval!r}")
        recurring = Recurring(_int(recurring_raw, "id"), interval, _int(recurring_raw, "intervalCount"))
    price_type = _str(raw, "type")
    if price_type not in PRICE_TYPES:
        raise CatalogueError(f"unknown price type {price_type!r}")
    if (price_type == "ONE_TIME") != (recurring is None):
        raise CatalogueError("ONE_TIME prices have no recurring block; every other price has one")
    amount = _int(raw, "price")
    if amount < 0:
        raise CatalogueError("prices are not negative")
    first_sale = None
    if raw.get("firstSalePrice") is not None:
        first_sale = _int(raw, "firstSalePrice")
        if not 0 < first_sale <= amount:
            raise CatalogueError("firstSalePrice is a discount between 1 and the price")
    lines = []
    for line in raw.get("lines", []):
        line_type = _str(line, "type")
        if line_type not in LINE_TYPES:
            raise CatalogueError(f"unknown line type {line_type!r}")
        rate = _int(line, "ratePercent") if line.get("ratePercent") is not None else None
        line_amount = _int(line, "amount") if rate is None else 0
        if (rate is not None and not 0 < rate <= 100) or line_amount < 0:
            raise CatalogueError("line amounts are not negative and rates are 1-100 percent")
        lines.append(PriceLine(line_type, _str(line, "name", line_type), line_amount, rate))
    return Price(
        id=_int(raw, "id"),
        code=_str(raw, "code"),
        type=price_type,
        amount=amount,
        currency=_str(raw, "currency", "KRW"),
        plan_name=_str(raw, "planName", _str(raw, "code")),
        recurring=recurring,
        product_code=product_code,
        first_sale_price=first_sale,
        lines=tuple(lines),
    )


def parse_catalogue(raw: Mapping[str, Any]) -> Catalogue:
    try:
        customers = tuple(
            Customer(
                id=_int(c, "id"),
                code=_str(c, "code"),
                uuid=_str(c, "uuid"),
                name=_str(c, "name"),
                email=_str(c, "email"),
                phone=_str(c, "phone"),
                username=_str(c, "username", _str(c, "code")),
                created_at=parse_datetime(_str(c, "createdAt")),
            )
            for c in raw.get("customers", [])
        )
        products = []
        for p in raw.get("products", []):
            code = _str(p, "code")
            product_type = _str(p, "type", "SOFTWARE")
            if product_type not in PRODUCT_TYPES:
                raise CatalogueError(f"unknown product type {product_type!r}")
            demo = _int(p, "demoPeriod") if p.get("demoPeriod") is not None else None
            demo_unit = _str(p, "demoPeriodUnit", "DAY")
            if (demo is not None and demo < 1) or demo_unit not in INTERVALS:
                raise CatalogueError("demoPeriod is a positive count of DAY/WEEK/MONTH/YEAR")
            products.append(
                Product(
                    id=_int(p, "id"),
                    code=code,
                    name=_str(p, "name"),
                    type=product_type,
                    status=_str(p, "status", "SALE"),
                    description=str(p.get("description", "")),
                    created_at=parse_datetime(_str(p, "createdAt")),
                    prices=tuple(_price(price, code) for price in p.get("prices", [])),
                    demo_period=demo,
                    demo_period_unit=demo_unit,
                )
            )
        catalogue = Catalogue(_str(raw, "vendorUuid"), customers, tuple(products))
    except (TypeError, AttributeError, ValueError) as exc:
        if isinstance(exc, CatalogueError):
            raise
        raise CatalogueError(f"invalid catalogue: {exc}") from exc
    if not catalogue.customers or not catalogue.products:
        raise CatalogueError("the catalogue needs at least one customer and one product")
    price_codes = [price.code for product in catalogue.products for price in product.prices]
    if len(set(price_codes)) != len(price_codes):
        raise CatalogueError("price codes must be unique")
    return catalogue


def load_catalogue(path: str | Path | None = None) -> Catalogue:
    """Read the catalogue file (the packaged seed catalogue by default)."""
    source = Path(path) if path is not None else DEFAULT_CATALOGUE
    with source.open(encoding="utf-8") as handle:
        return parse_catalogue(json.load(handle))
