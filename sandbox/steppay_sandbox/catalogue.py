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


class CatalogueError(ValueError):
    """The catalogue file is not usable."""


@dataclass(frozen=True)
class Recurring:
    id: int
    interval: str
    interval_count: int


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
    return Price(
        id=_int(raw, "id"),
        code=_str(raw, "code"),
        type=price_type,
        amount=amount,
        currency=_str(raw, "currency", "KRW"),
        plan_name=_str(raw, "planName", _str(raw, "code")),
        recurring=recurring,
        product_code=product_code,
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
