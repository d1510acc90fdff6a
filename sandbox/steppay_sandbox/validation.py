"""Checking request bodies the way StepPay's API does, before anything is stored.

The sandbox is strict where the spec is: a body it accepts always validates against
``OrderCreateV1DTO`` (fields the spec marks as required must be present), and amounts always
come from the catalogue, never from the request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, tzinfo
from decimal import Decimal
from typing import Any

from steppay_sandbox.catalogue import Catalogue, Customer, Price, Product
from steppay_sandbox.errors import ApiError, bad_request
from steppay_sandbox.timeutil import SEOUL, parse_request_datetime

PAYMENT_GATEWAYS = frozenset(
    {
        "NAVER",
        "DANAL",
        "KAKAO",
        "KG",
        "KCP",
        "NICE",
        "JT",
        "GOOGLE",
        "BANKPAY",
        "BLUEWALNUT",
        "KSNET",
        "TOSS",
        "EXIMBAY",
        "SETTLE",
        "DAOUDATA",
        "WELCOME",
        "NICE_V2",
        "STRIPE",
        "PAYPLE",
        "PAYPLE_GLOBAL",
        "KICC",
        "UNKNOWN",
    }
)
MAX_ITEMS = 50
MAX_QUANTITY = 9_999
_CURRENCY_RE = re.compile(r"[A-Z]{3}")
_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
INT64_MAX = 2**63 - 1
INT32_MAX = 2**31 - 1


@dataclass(frozen=True)
class NewItem:
    product: Product
    price: Price
    quantity: int
    minimum_quantity: int
    maximum_quantity: int | None
    currency: str


@dataclass(frozen=True)
class NewOrder:
    customer: Customer
    items: tuple[NewItem, ...]
    purchase_deadline: datetime | None
    payment_gateway: str | None


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _customer(body: dict[str, Any], catalogue: Catalogue) -> Customer:
    found: list[Customer] = []
    if body.get("customerId") is not None:
        value = body["customerId"]
        if not is_int(value) or not 0 <= value <= INT64_MAX:
            raise bad_request("'customerId' must be a non-negative integer.", field="customerId")
        customer = catalogue.customer_by_id(value)
        if customer is None:
            raise bad_request("The customer does not exist.", "CUSTOMER_NOT_FOUND", field="customerId")
        found.append(customer)
    if body.get("customerCode") is not None:
        value = body["customerCode"]
        if not isinstance(value, str) or not value:
            raise bad_request("'customerCode' must be a string.", field="customerCode")
        customer = catalogue.customer_by_code(value)
        if customer is None:
            raise bad_request("The customer does not exist.", "CUSTOMER_NOT_FOUND", field="customerCode")
        found.append(customer)
    if body.get("customerUuid") is not None:
        value = body["customerUuid"]
        if not isinstance(value, str) or not _UUID_RE.fullmatch(value):
            raise bad_request("'customerUuid' must be a UUID.", field="customerUuid")
        customer = catalogue.customer_by_uuid(value)
        if customer is None:
            raise bad_request("The customer does not exist.", "CUSTOMER_NOT_FOUND", field="customerUuid")
        found.append(customer)
    if not found:
        raise bad_request(
            "A customer is required: give customerId, customerCode or customerUuid.", "CUSTOMER_REQUIRED"
        )
    if len({c.id for c in found}) != 1:
        raise bad_request("customerId, customerCode and customerUuid name different customers.")
    return found[0]


def _quantity(raw: dict[str, Any], key: str, index: int) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if not is_int(value) or not 1 <= value <= MAX_QUANTITY:
        raise bad_request(
            f"items[{index}].{key} must be an integer between 1 and {MAX_QUANTITY}.",
            "INVALID_QUANTITY",
            field=f"items[{index}].{key}",
        )
    return int(value)


def _item(raw: Any, index: int, catalogue: Catalogue) -> NewItem:
    if not isinstance(raw, dict):
        raise bad_request(f"items[{index}] must be an object.", field=f"items[{index}]")
    for key in ("productCode", "priceCode", "currency"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise bad_request(f"items[{index}].{key} is required.", field=f"items[{index}].{key}")
    if "minimumQuantity" not in raw or raw["minimumQuantity"] is None:
        raise bad_request(
            f"items[{index}].minimumQuantity is required.",
            "INVALID_QUANTITY",
            field=f"items[{index}].minimumQuantity",
        )
    minimum = _quantity(raw, "minimumQuantity", index)
    maximum = _quantity(raw, "maximumQuantity", index)
    assert minimum is not None
    if maximum is not None and maximum < minimum:
        raise bad_request(
            f"items[{index}].maximumQuantity is below minimumQuantity.",
            "INVALID_QUANTITY",
            field=f"items[{index}].maximumQuantity",
        )
    options = raw.get("productOption")
    if options is not None and (not isinstance(options, list) or not all(is_int(o) for o in options)):
        raise bad_request(f"items[{index}].productOption must be a list of option ids.")
    if options:
        raise bad_request(
            f"items[{index}].productOption names an unknown option.", "PRODUCT_OPTION_NOT_FOUND"
        )
    product = catalogue.product(raw["productCode"])
    if product is None:
        raise bad_request(
            f"Product {raw['productCode']!r} does not exist.",
            "PRODUCT_NOT_FOUND",
            field=f"items[{index}].productCode",
        )
    price = product.price(raw["priceCode"])
    if price is None:
        raise bad_request(
            f"Price {raw['priceCode']!r} does not exist for this product.",
            "PRICE_NOT_FOUND",
            field=f"items[{index}].priceCode",
        )
    currency = raw["currency"]
    if not _CURRENCY_RE.fullmatch(currency) or currency != price.currency:
        raise bad_request(
            f"items[{index}].currency must be {price.currency}.",
            "INVALID_CURRENCY",
            field=f"items[{index}].currency",
        )
    return NewItem(product, price, minimum, minimum, maximum, currency)


def parse_order_create(body: Any, catalogue: Catalogue, zone: tzinfo = SEOUL) -> NewOrder:
    """Validate an ``OrderCreateV1DTO`` body; raises ``ApiError`` (400) when invalid.

    A zone-less ``purchaseDeadline`` is read in ``zone`` (the zone the sandbox writes in).
    """
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    raw_items = body.get("items")
    if not isinstance(raw_items, list) or not raw_items:
        raise bad_request("'items' must be a non-empty list.", "ITEMS_REQUIRED", field="items")
    if len(raw_items) > MAX_ITEMS:
        raise bad_request(f"At most {MAX_ITEMS} items per order.", field="items")
    customer = _customer(body, catalogue)
    items = tuple(_item(raw, index, catalogue) for index, raw in enumerate(raw_items))
    if len({item.currency for item in items}) != 1:
        raise bad_request("All items of an order must use the same currency.", "INVALID_CURRENCY")
    recurring = {
        (i.price.recurring.interval, i.price.recurring.interval_count) for i in items if i.price.recurring
    }
    if len(recurring) > 1:
        raise bad_request("All recurring items of an order must renew on the same interval.")
    total = sum(item.price.amount * item.quantity for item in items)
    if total > INT32_MAX:
        raise bad_request("The order amount is too large.", "INVALID_QUANTITY")
    deadline = None
    if body.get("purchaseDeadline") is not None:
        try:
            deadline = parse_request_datetime(body["purchaseDeadline"], zone)
        except (TypeError, ValueError) as exc:
            raise bad_request(
                "'purchaseDeadline' must be an ISO 8601 date-time.", field="purchaseDeadline"
            ) from exc
    gateway = body.get("paymentGateway")
    if gateway is not None and (not isinstance(gateway, str) or gateway not in PAYMENT_GATEWAYS):
        raise bad_request("'paymentGateway' is not a known payment gateway.", field="paymentGateway")
    return NewOrder(customer, items, deadline, gateway)


def parse_amount(value: Any, field: str) -> int:
    """A non-negative whole amount (JSON numbers are parsed as Decimal, never float)."""
    if is_int(value):
        amount = int(value)
    elif isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        amount = int(value)
    else:
        raise bad_request(f"'{field}' must be a whole amount.", field=field)
    if not 0 <= amount <= INT64_MAX:
        raise bad_request(f"'{field}' must not be negative.", field=field)
    return amount


def parse_outcome(body: Any, *, standby: bool = False) -> str:
    """``success`` / ``failure`` (and ``standby``, a virtual account, where ``standby`` allows it)."""
    outcome = body.get("outcome", "success") if isinstance(body, dict) else None
    allowed = ("success", "failure", "standby") if standby else ("success", "failure")
    if outcome not in allowed:
        raise ApiError(400, "INVALID_REQUEST", f"'outcome' must be {' or '.join(repr(a) for a in allowed)}.")
    return str(outcome)


# -- the shopper's quantity and the tamper control (control API, not StepPay's API) ------------

QuantityChoice = int | dict[str, int]


def _quantity_value(value: Any, field: str) -> int:
    if not is_int(value) or not 1 <= value <= MAX_QUANTITY:
        raise bad_request(
            f"'{field}' must be an integer between 1 and {MAX_QUANTITY}.", "INVALID_QUANTITY", field=field
        )
    return int(value)


def parse_quantity_choice(value: Any) -> QuantityChoice | None:
    """``complete``'s optional ``quantity``: an int for every item, or ``{priceCode: n}``.

    Only the shape is checked here; whether each value is within its item's
    ``[minimumQuantity, maximumQuantity]`` is checked against the order (``SandboxState``).
    """
    if value is None:
        return None
    if isinstance(value, dict):
        if not value:
            raise bad_request("'quantity' must not be an empty object.", "INVALID_QUANTITY", field="quantity")
        choice: dict[str, int] = {}
        for key, raw in value.items():
            if not isinstance(key, str) or not key:
                raise bad_request("'quantity' keys are price codes.", "INVALID_QUANTITY", field="quantity")
            choice[key] = _quantity_value(raw, f"quantity.{key}")
        return choice
    return _quantity_value(value, "quantity")


@dataclass(frozen=True)
class ItemTamper:
    """What one ``tamper`` entry changes on one order item (None: unchanged)."""

    minimum_quantity: int | None
    maximum_quantity: int | None
    clear_maximum: bool
    price: Price | None


@dataclass(frozen=True)
class Tamper:
    customer: Customer | None
    items: tuple[ItemTamper, ...]


_TAMPER_KEYS = frozenset({"customerId", "items"})
_TAMPER_ITEM_KEYS = frozenset({"minimumQuantity", "maximumQuantity", "priceCode", "productCode"})


def _tamper_price(raw: dict[str, Any], field: str, current: tuple[str, str], catalogue: Catalogue) -> Price:
    """The catalogue price a tamper entry names (``priceCode`` and/or ``productCode``)."""
    for key in ("priceCode", "productCode"):
        if key in raw and (not isinstance(raw[key], str) or not raw[key]):
            raise bad_request(f"'{field}.{key}' must be a non-empty string.", field=f"{field}.{key}")
    _, current_price = current
    product_code = raw.get("productCode")
    price_code = raw.get("priceCode")
    if price_code is not None:
        owner = next((p for p in catalogue.products if p.price(price_code) is not None), None)
        if owner is None:
            raise bad_request(
                f"Price {price_code!r} is not in the catalogue.",
                "PRICE_NOT_FOUND",
                field=f"{field}.priceCode",
            )
        if product_code is not None and product_code != owner.code:
            raise bad_request(
                f"Price {price_code!r} does not belong to product {product_code!r}.",
                "PRICE_NOT_FOUND",
                field=f"{field}.productCode",
            )
        found = owner.price(price_code)
        assert found is not None
        return found
    product = catalogue.product(str(product_code))
    if product is None:
        raise bad_request(
            f"Product {product_code!r} is not in the catalogue.",
            "PRODUCT_NOT_FOUND",
            field=f"{field}.productCode",
        )
    found = product.price(current_price)
    if found is None:
        if len(product.prices) != 1:
            raise bad_request(
                f"Give '{field}.priceCode' too: product {product_code!r} has no price {current_price!r}.",
                "PRICE_NOT_FOUND",
                field=f"{field}.priceCode",
            )
        found = product.prices[0]
    return found


def parse_tamper(body: Any, current_items: list[tuple[str, str]], catalogue: Catalogue) -> Tamper:
    """The ``tamper`` control's body, checked against the catalogue.

    ``current_items`` are the order's items as ``(productCode, priceCode)``, in order: entry ``i``
    of ``items`` changes item ``i`` (``{}`` or a shorter list leaves the others as they are).
    """
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    unknown = set(body) - _TAMPER_KEYS
    if unknown:
        raise bad_request(f"Unknown tamper fields: {', '.join(sorted(map(str, unknown)))}.")
    if not body:
        raise bad_request("Nothing to tamper with: give 'customerId' and/or 'items'.")
    customer = None
    if "customerId" in body:
        value = body["customerId"]
        if not is_int(value):
            raise bad_request("'customerId' must be an integer.", field="customerId")
        customer = catalogue.customer_by_id(int(value))
        if customer is None:
            raise bad_request(
                "The customer is not in the catalogue.", "CUSTOMER_NOT_FOUND", field="customerId"
            )
    items: list[ItemTamper] = []
    raw_items = body.get("items", [])
    if not isinstance(raw_items, list) or len(raw_items) > len(current_items):
        raise bad_request(
            f"'items' must be a list of at most {len(current_items)} entries (one per order item, in order).",
            field="items",
        )
    for index, raw in enumerate(raw_items):
        field = f"items[{index}]"
        if not isinstance(raw, dict):
            raise bad_request(f"'{field}' must be an object.", field=field)
        unknown = set(raw) - _TAMPER_ITEM_KEYS
        if unknown:
            raise bad_request(f"Unknown fields in '{field}': {', '.join(sorted(map(str, unknown)))}.")
        minimum = (
            _quantity_value(raw["minimumQuantity"], f"{field}.minimumQuantity")
            if raw.get("minimumQuantity") is not None
            else None
        )
        maximum = (
            _quantity_value(raw["maximumQuantity"], f"{field}.maximumQuantity")
            if raw.get("maximumQuantity") is not None
            else None
        )
        clear_maximum = "maximumQuantity" in raw and raw["maximumQuantity"] is None
        price = None
        if "priceCode" in raw or "productCode" in raw:
            price = _tamper_price(raw, field, current_items[index], catalogue)
        items.append(ItemTamper(minimum, maximum, clear_maximum, price))
    return Tamper(customer, tuple(items))
