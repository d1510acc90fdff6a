"""The sandbox's state: orders, payments, subscriptions, and what happens to them.

All reads and writes hold one re-entrant lock, so concurrent requests see and make consistent
changes (one order is paid at most once however many requests race). Every change returns the
webhooks it causes (``Outgoing``), rendered at the moment of the change. With a ``state_file``
the state is written (atomically) after every change and read back at start.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import string
import tempfile
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

from steppay_sandbox import models
from steppay_sandbox.catalogue import Catalogue, Price
from steppay_sandbox.errors import ApiError, bad_request, conflict, not_found
from steppay_sandbox.models import (
    CANCELLED,
    CREATED,
    DEPOSIT_WAITING,
    PAID,
    PAYMENT_FAILURE,
    REFUNDED,
    REFUNDED_PARTIALLY,
    SKU,
    SUBSCRIPTION_STATUSES,
    Order,
    OrderItem,
    OrderLog,
    Payment,
    Subscription,
    SubscriptionItem,
)
from steppay_sandbox.timeutil import add_interval, now, parse_datetime
from steppay_sandbox.validation import (
    INT32_MAX,
    QuantityChoice,
    parse_amount,
    parse_order_create,
    parse_tamper,
)
from steppay_sandbox.views import JSON, Renderer, page
from steppay_sandbox.webhooks import Outgoing

STATE_VERSION = 1
ALNUM = string.ascii_letters + string.digits
ORDER_ITEM_STATUSES = frozenset(
    """CREATED DEPOSIT_WAITING CANCELLED PAID CANCELLATION_REQUEST CANCELLATION_REQUEST_CANCELLED
    CANCELLATION_REQUEST_DENIED CANCELLATION_REFUNDING CANCELLATION_REFUNDED CANCELLATION_REFUNDED_PARTIALLY
    ORDER_DELIVERY_PREPARING ORDER_DELIVERY_SUSPENDED ORDER_DELIVERY_ON_THE_WAY ORDER_DELIVERY_COMPLETED
    EXCHANGE_REQUEST EXCHANGE_REQUEST_CANCELLED EXCHANGE_REQUEST_REJECTED EXCHANGE_COLLECTION_PREPARING
    EXCHANGE_COLLECTION_ON_THE_WAY EXCHANGE_COLLECTION_COMPLETED EXCHANGE_DELIVERY_PREPARING
    EXCHANGE_DELIVERY_ON_THE_WAY EXCHANGE_DELIVERY_COMPLETED EXCHANGE_REJECT_DELIVERY_PREPARING
    EXCHANGE_REJECT_DELIVERY_ON_THE_WAY EXCHANGE_REJECT_DELIVERY_COMPLETED EXCHANGE_PENDING EXCHANGE_REJECTED
    RETURN_REQUEST RETURN_REQUEST_CANCELLED RETURN_REQUEST_REJECTED RETURN_COLLECTION_PREPARING
    RETURN_COLLECTION_ON_THE_WAY RETURN_COLLECTION_COMPLETED RETURN_REJECT_DELIVERY_PREPARING
    RETURN_REJECT_DELIVERY_ON_THE_WAY RETURN_REJECT_DELIVERY_COMPLETED RETURN_PENDING RETURN_REJECTED
    RETURN_REFUNDING RETURN_REFUNDED RETURN_REFUNDED_PARTIALLY PAYMENT_FAILURE FINISHED_EXCHANGE_AVAILABLE
    FINISHED_RETURN_AVAILABLE FINISHED_SUCCESSFULLY""".split()
)
# First ids handed out (StepPay's ids are plain increasing integers).
ID_BASES = {
    "order": 100_001,
    "item": 500_001,
    "subscription": 7_001,
    "subItem": 800_001,
    "payment": 900_001,
    "log": 1,
}
DEFAULT_GATEWAY = "NICE"
MAX_PAGE_SIZE = 1000
# The virtual account a VBANK payment issues (sandbox values; the shape is the spec's VBankV1DTO).
VBANK_CODE, VBANK_NAME, VBANK_HOLDER = "088", "신한은행", "(주)스텝페이샌드박스"
VBANK_DUE = timedelta(days=3)  # how long the shopper has to deposit (PG-dependent at StepPay)
FIRST_SALE_LINE = "첫 결제 할인 (First-sale discount)"

Result = tuple[JSON, list[Outgoing]]


def random_alnum(length: int) -> str:
    return "".join(secrets.choice(ALNUM) for _ in range(length))


def masked_card() -> str:
    """A card number masked as StepPay shows it: ``1234-****-****-5678``."""
    first = secrets.choice(["4105", "5365", "9410", "4518", "5433"])
    return f"{first}-****-****-{secrets.randbelow(10_000):04d}"


def _order_refs(order: Order) -> dict[str, Any]:
    refs: dict[str, Any] = {"orderId": order.id, "orderCode": order.code}
    sub = order.parent_subscription_id or (order.subscription_ids[0] if order.subscription_ids else None)
    if sub is not None:
        refs["subscriptionId"] = sub
    return refs


class SandboxState:
    """Everything the sandbox knows, behind one lock."""

    def __init__(
        self,
        catalogue: Catalogue,
        *,
        state_file: str | Path | None = None,
        clock: Callable[[], datetime] = now,
        zone: tzinfo = UTC,
    ) -> None:
        self.catalogue = catalogue
        self.lock = threading.RLock()
        # Test-only time travel (`POST /_sandbox/clock`): every moment the sandbox writes is the
        # injected clock plus this offset, so a test can pay or refund an order "a day later".
        self._base_clock = clock
        self.clock_offset = timedelta(0)
        self.clock: Callable[[], datetime] = self._offset_now
        self.state_file = Path(state_file) if state_file is not None else None
        self.orders: dict[int, Order] = {}
        self.order_codes: dict[str, int] = {}
        self.id_keys: dict[str, int] = {}
        self.subscriptions: dict[int, Subscription] = {}
        self.counters: dict[str, int] = dict(ID_BASES)
        self.render = Renderer(catalogue, self.orders, self.subscriptions)
        self.render.zone = zone
        if self.state_file is not None and self.state_file.exists():
            self._load(self.state_file)

    @property
    def zone(self) -> tzinfo:
        """The zone of the zone-less date-times the sandbox writes and reads (UTC or Asia/Seoul)."""
        return self.render.zone

    @zone.setter
    def zone(self, value: tzinfo) -> None:
        with self.lock:
            self.render.zone = value

    def _offset_now(self) -> datetime:
        return self._base_clock() + self.clock_offset

    def advance_clock(self, seconds: int) -> timedelta:
        """Move the sandbox's now forward by `seconds` (never back: stored moments stay ordered)."""
        if seconds < 0:
            raise bad_request("'advanceSeconds' must not be negative.", field="advanceSeconds")
        with self.lock:
            self.clock_offset += timedelta(seconds=seconds)
            return self.clock_offset

    # -- ids and persistence ---------------------------------------------------------------

    def _next(self, kind: str) -> int:
        value = self.counters[kind]
        self.counters[kind] = value + 1
        return value

    def _new_code(self, prefix: str, taken: dict[str, int]) -> str:
        while True:
            code = f"{prefix}{random_alnum(10)}"
            if code not in taken:
                return code

    def _log(self, order: Order, content: str, kind: str = "SYSTEM") -> None:
        order.logs.append(OrderLog(self._next("log"), kind, content, self.clock()))

    def snapshot(self) -> dict[str, Any]:
        """The whole state as JSON-ready data (the state file's content)."""
        with self.lock:
            return {
                "version": STATE_VERSION,
                "counters": dict(self.counters),
                "orders": [models.dump(o) for o in self.orders.values()],
                "subscriptions": [models.dump(s) for s in self.subscriptions.values()],
            }

    def _save(self) -> None:
        if self.state_file is None:
            return
        data = json.dumps(self.snapshot(), ensure_ascii=False, indent=1).encode("utf-8")
        directory = self.state_file.parent
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".sandbox-state-", dir=directory)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, self.state_file)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _load(self, path: Path) -> None:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"{path}: unsupported sandbox state version {data.get('version')!r}")
        for kind, base in ID_BASES.items():
            self.counters[kind] = max(base, int(data.get("counters", {}).get(kind, base)))
        for raw in data.get("orders", []):
            order = models.load(Order, raw)
            self._index(order)
        for raw in data.get("subscriptions", []):
            sub = models.load(Subscription, raw)
            self.subscriptions[sub.id] = sub

    def _index(self, order: Order) -> None:
        self.orders[order.id] = order
        self.order_codes[order.code] = order.id
        self.id_keys[order.id_key] = order.id

    def reset(self) -> None:
        """Forget every order and subscription (ids keep increasing, so none is ever reused)."""
        with self.lock:
            self.orders.clear()
            self.order_codes.clear()
            self.id_keys.clear()
            self.subscriptions.clear()
            self.clock_offset = timedelta(0)
            self._save()

    # -- look-ups --------------------------------------------------------------------------

    def find_order(self, ref: str) -> Order:
        """An order by numeric id or by code; 404 otherwise."""
        with self.lock:
            order_id = self.order_codes.get(ref)
            if order_id is None and ref.isascii() and ref.isdigit() and len(ref) <= 18:
                order_id = int(ref)
            order = self.orders.get(order_id) if order_id is not None else None
            if order is None:
                raise not_found("The order does not exist.", "ORDER_NOT_FOUND")
            return order

    def find_by_id_key(self, id_key: str) -> Order:
        with self.lock:
            order_id = self.id_keys.get(id_key)
            if order_id is None:
                raise not_found("No payment has this idKey.", "PAYMENT_NOT_FOUND")
            return self.orders[order_id]

    def find_subscription(self, ref: str) -> Subscription:
        with self.lock:
            sub = None
            if ref.isascii() and ref.isdigit() and len(ref) <= 18:
                sub = self.subscriptions.get(int(ref))
            if sub is None:
                raise not_found("The subscription does not exist.", "SUBSCRIPTION_NOT_FOUND")
            return sub

    def order_detail(self, ref: str) -> JSON:
        with self.lock:
            return self.render.order(self.find_order(ref))

    def subscription_detail(self, ref: str) -> JSON:
        with self.lock:
            return self.render.subscription(self.find_subscription(ref))

    def receipt(self, id_key: str) -> JSON:
        with self.lock:
            return self.render.receipt(self.find_by_id_key(id_key))

    # -- lists -----------------------------------------------------------------------------

    @staticmethod
    def _paging(query: dict[str, str]) -> tuple[int, int, bool]:
        try:
            number = int(query.get("page", "0"))
            size = int(query.get("size", "20"))
        except ValueError as exc:
            raise bad_request("'page' and 'size' must be integers.") from exc
        if number < 0 or not 1 <= size <= MAX_PAGE_SIZE:
            raise bad_request(f"'page' must be >= 0 and 'size' between 1 and {MAX_PAGE_SIZE}.")
        direction = query.get("sortDir", "DESC").upper()
        if direction not in ("ASC", "DESC"):
            raise bad_request("'sortDir' must be ASC or DESC.")
        return number, size, direction == "DESC"

    def _bound(self, query: dict[str, str], key: str) -> datetime | None:
        if not query.get(key):
            return None
        try:
            return parse_datetime(query[key], self.zone)
        except ValueError as exc:
            raise bad_request(f"'{key}' must be an ISO 8601 date-time.", field=key) from exc

    def list_orders(self, query: dict[str, str]) -> JSON:
        """``GET /api/v1/orders``: filter by createdAt range, item status and keyword; page."""
        number, size, descending = self._paging(query)
        start, end = self._bound(query, "startDate"), self._bound(query, "endDate")
        status = query.get("status")
        if status and status not in ORDER_ITEM_STATUSES:
            raise bad_request("'status' is not an order item status.", field="status")
        sort_key = query.get("sort", "createdAt")
        if sort_key not in ("createdAt", "id", "modifiedAt", "paymentDate"):
            raise bad_request("'sort' must be createdAt, id, modifiedAt or paymentDate.", field="sort")
        keyword = query.get("keyword", "").strip().lower()
        with self.lock:
            selected = []
            for order in self.orders.values():
                if start is not None and order.created_at < start:
                    continue
                if end is not None and order.created_at > end:
                    continue
                if status and all(item.status != status for item in order.items):
                    continue
                if keyword and keyword not in self._search_text(order, query.get("type")):
                    continue
                selected.append(order)

            def key(order: Order) -> tuple[Any, int]:
                value: Any = order.id if sort_key == "id" else getattr(order, _SORT_FIELDS[sort_key])
                return (value.timestamp() if isinstance(value, datetime) else (value or 0), order.id)

            selected.sort(key=key, reverse=descending)
            window = selected[number * size : (number + 1) * size]
            content = [self.render.order_list_item(order) for order in window]
            return page(content, page=number, size=size, total=len(selected))

    def _search_text(self, order: Order, target: str | None) -> str:
        customer = self.catalogue.customer_by_id(order.customer_id)
        fields = {
            "orderCode": order.code,
            "productName": self.render.product_name(order),
            "customerName": customer.name if customer else "",
            "phone": customer.phone if customer else "",
            "email": customer.email if customer else "",
        }
        if target in fields:
            return fields[target].lower()
        return " ".join(fields.values()).lower()

    def list_customers(self, query: dict[str, str]) -> JSON:
        number, size, descending = self._paging(query)
        with self.lock:
            customers = sorted(
                self.catalogue.customers, key=lambda c: (c.created_at, c.id), reverse=descending
            )
            window = customers[number * size : (number + 1) * size]
            return page(
                [self.render.customer_list_item(c) for c in window],
                page=number,
                size=size,
                total=len(customers),
            )

    def list_products(self, query: dict[str, str]) -> JSON:
        number, size, descending = self._paging(query)
        products = sorted(self.catalogue.products, key=lambda p: (p.created_at, p.id), reverse=descending)
        window = products[number * size : (number + 1) * size]
        return page(
            [self.render.product_list_item(p) for p in window], page=number, size=size, total=len(products)
        )

    # -- orders ----------------------------------------------------------------------------

    def create_order(self, body: Any) -> Result:
        """``POST /api/v1/orders``: a new unpaid order priced from the catalogue."""
        spec = parse_order_create(body, self.catalogue, self.zone)
        with self.lock:
            moment = self.clock()
            recurring = any(item.price.is_recurring for item in spec.items)
            trial = recurring and any(item.product.demo_period is not None for item in spec.items)
            order = Order(
                id=self._next("order"),
                code=self._new_code("order_", self.order_codes),
                id_key=secrets.token_hex(16),
                type="RECURRING_INITIAL" if recurring else "ONE_TIME",
                customer_id=spec.customer.id,
                items=[
                    OrderItem(
                        id=self._next("item"),
                        code=self._new_code("order_item_", {}),
                        product_code=item.product.code,
                        price_code=item.price.code,
                        quantity=item.quantity,
                        minimum_quantity=item.minimum_quantity,
                        maximum_quantity=item.maximum_quantity,
                        currency=item.currency,
                        unit_price=0 if trial and item.product.demo_period else item.price.amount,
                        status=CREATED,
                        created_at=moment,
                        modified_at=moment,
                        trial_period=item.product.demo_period if trial else None,
                        trial_unit=(
                            item.product.demo_period_unit if trial and item.product.demo_period else None
                        ),
                    )
                    for item in spec.items
                ],
                created_at=moment,
                modified_at=moment,
                purchase_deadline=spec.purchase_deadline,
                payment_gateway=spec.payment_gateway,
            )
            self._add_lines(order, moment)
            self._log(order, "주문이 생성되었습니다. (order created)")
            self._index(order)
            events = [Outgoing("order.created", "v2", self.render.webhook_order(order), _order_refs(order))]
            self._save()
            return self.render.order(order), events

    def complete_order(
        self,
        ref: str,
        outcome: str,
        *,
        error_code: str | None = None,
        error_message: str | None = None,
        quantity: QuantityChoice | None = None,
    ) -> Result:
        """Settle an order as the pay page would: ``success`` pays it, ``failure`` declines it.

        ``standby`` issues a virtual account instead (VBANK): items ``DEPOSIT_WAITING``,
        ``payment.standby``; ``deposit_order`` pays it later.

        ``quantity`` is what the shopper chose on the pay page (``success`` / ``standby``): an
        int for every item or ``{priceCode: n}`` (items not named keep their
        ``minimumQuantity``). Each must lie within its item's ``[minimumQuantity,
        maximumQuantity or minimumQuantity]``, else 400 ``INVALID_QUANTITY`` and nothing changes.
        """
        if quantity is not None and outcome not in ("success", "standby"):
            raise bad_request(
                "'quantity' is chosen only for a successful payment.", "INVALID_QUANTITY", field="quantity"
            )
        with self.lock:
            order = self.find_order(ref)
            self._check_payable(order)
            chosen = self._chosen_quantities(order, quantity)
            for item, value in zip(_skus(order), chosen, strict=True):
                item.quantity = value
            self._reprice(order)
            if outcome == "standby":
                events = self._issue_virtual_account(order)
            else:
                events = self._settle(order, outcome, error_code=error_code, error_message=error_message)
            self._save()
            return self.render.order(order), events

    @staticmethod
    def _chosen_quantities(order: Order, quantity: QuantityChoice | None) -> list[int]:
        """Each item's quantity for this payment; 400 when one is outside the item's bounds."""
        if isinstance(quantity, dict):
            price_codes = {item.price_code for item in _skus(order)}
            unknown = sorted(set(quantity) - price_codes)
            if unknown:
                raise bad_request(
                    f"'quantity' names prices that are not in this order: {', '.join(unknown)}.",
                    "INVALID_QUANTITY",
                    field="quantity",
                )
        chosen = []
        for item in _skus(order):
            if quantity is None:
                value = item.minimum_quantity
            elif isinstance(quantity, dict):
                value = quantity.get(item.price_code, item.minimum_quantity)
            else:
                value = quantity
            high = item.maximum_quantity if item.maximum_quantity is not None else item.minimum_quantity
            if not item.minimum_quantity <= value <= high:
                field = "quantity" if not isinstance(quantity, dict) else f"quantity.{item.price_code}"
                raise bad_request(
                    f"The quantity of {item.price_code} must be between {item.minimum_quantity} and {high} "
                    f"(the order item's minimumQuantity and maximumQuantity); {value} was chosen.",
                    "INVALID_QUANTITY",
                    field=field,
                )
            chosen.append(value)
        total = sum(item.unit_price * value for item, value in zip(_skus(order), chosen, strict=True))
        if total > INT32_MAX:
            raise bad_request("The order amount is too large.", "INVALID_QUANTITY", field="quantity")
        return chosen

    def tamper_order(self, ref: str, body: Any) -> Result:
        """Test-only: change what an unpaid order will charge, behind the merchant's back.

        Not something StepPay does. It overwrites an item's ``minimumQuantity`` /
        ``maximumQuantity``, its price (``priceCode`` / ``productCode``, to another catalogue
        price) and the order's customer, so that a later ``complete`` pays something other than
        what the merchant registered. No webhook and no order log entry: the order simply says
        something else from now on. 409 once the order is paid, cancelled or past its deadline.
        """
        with self.lock:
            order = self.find_order(ref)
            self._check_payable(order)
            spec = parse_tamper(body, [(i.product_code, i.price_code) for i in _skus(order)], self.catalogue)
            # Work out every new item before changing any, so a refusal changes nothing.
            planned: list[tuple[OrderItem, int, int | None, Price | None]] = []
            for item, change in zip(order.items, spec.items, strict=False):
                minimum = change.minimum_quantity or item.minimum_quantity
                maximum = None if change.clear_maximum else (change.maximum_quantity or item.maximum_quantity)
                if maximum is not None and maximum < minimum:
                    raise bad_request(
                        f"maximumQuantity ({maximum}) would be below minimumQuantity ({minimum}).",
                        "INVALID_QUANTITY",
                    )
                planned.append((item, minimum, maximum, change.price))
            new_prices = [
                (price if price is not None else self.catalogue.price(item.product_code, item.price_code))
                for item, _, _, price in planned
            ] + [self.catalogue.price(i.product_code, i.price_code) for i in order.items[len(planned) :]]
            currencies = {p.currency for p in new_prices if p is not None}
            if len(currencies) > 1:
                raise bad_request("All items of an order must use the same currency.", "INVALID_CURRENCY")
            intervals = {
                (p.recurring.interval, p.recurring.interval_count)
                for p in new_prices
                if p is not None and p.recurring is not None
            }
            if len(intervals) > 1:
                raise bad_request("All recurring items of an order must renew on the same interval.")
            moment = self.clock()
            for item, minimum, maximum, price in planned:
                item.minimum_quantity, item.maximum_quantity = minimum, maximum
                item.quantity = minimum
                if price is not None:
                    item.product_code, item.price_code = price.product_code, price.code
                    item.unit_price, item.currency = price.amount, price.currency
                item.modified_at = moment
            self._reprice(order)
            if spec.customer is not None:
                order.customer_id = spec.customer.id
            if order.type in ("ONE_TIME", "RECURRING_INITIAL"):
                order.type = "RECURRING_INITIAL" if intervals else "ONE_TIME"
            order.modified_at = moment
            self._save()
            return self.render.order(order), []

    def _check_payable(self, order: Order) -> None:
        if order.is_paid:
            raise conflict("The order is already paid.", "ORDER_ALREADY_PAID")
        if order.is_cancelled:
            raise conflict("The order is cancelled.", "ORDER_CANCELLED")
        if order.is_deposit_waiting:
            raise conflict(
                "A virtual account was issued for this order: it is paid by a deposit.",
                "ORDER_DEPOSIT_WAITING",
            )
        if order.purchase_deadline is not None and self.clock() > order.purchase_deadline:
            raise conflict("The order's purchase deadline has passed.", "ORDER_EXPIRED")

    def payable_problem(self, ref: str) -> str | None:
        """Why the order cannot be paid now (for the pay page), or None."""
        with self.lock:
            try:
                self._check_payable(self.find_order(ref))
            except ApiError as exc:
                return exc.error_code
            return None

    def _card_payment(
        self,
        order: Order,
        gateway: str,
        *,
        status: str,
        paid_at: datetime | None,
        error_code: str | None = None,
        error_message: str | None = None,
    ) -> Payment:
        """A card payment of the whole order, as the pay page makes it (approved or declined)."""
        return Payment(
            id=self._next("payment"),
            status=status,
            amount=order.amount,
            method="CARD",
            gateway=gateway,
            card_number=masked_card(),
            paid_at=paid_at,
            error_code=error_code,
            error_message=error_message,
        )

    def _settle(
        self, order: Order, outcome: str, *, error_code: str | None = None, error_message: str | None = None
    ) -> list[Outgoing]:
        moment = self.clock()
        gateway = order.payment_gateway or DEFAULT_GATEWAY
        order.modified_at = moment
        refs = _order_refs(order)
        if outcome != "success":
            order.payment = self._card_payment(
                order,
                gateway,
                status="FAILED",
                paid_at=None,
                error_code=error_code or "SANDBOX_DECLINED",
                error_message=error_message or "카드 승인이 거절되었습니다. (sandbox: card declined)",
            )
            for item in order.items:
                item.status, item.modified_at = PAYMENT_FAILURE, moment
            self._log(order, "결제에 실패했습니다. (payment failed)")
            return [Outgoing("payment.failed", "v2", self.render.webhook_payment(order), refs)]

        standby = order.payment if order.payment is not None and order.payment.method == "VBANK" else None
        if standby is not None:  # the shopper's deposit into the issued virtual account
            order.payment = dataclasses.replace(
                standby, status="COMPLETE", amount=order.amount, paid_at=moment
            )
        else:
            order.payment = self._card_payment(order, gateway, status="COMPLETE", paid_at=moment)
        order.payment_date = moment
        order.paid_amount = order.amount
        for item in order.items:
            item.status, item.paid_amount, item.modified_at = PAID, item.amount, moment
        self._log(order, "결제가 완료되었습니다. (payment completed)")
        new_sub = self._start_subscription(order, moment) if order.type == "RECURRING_INITIAL" else None
        refs = _order_refs(order)
        events = [
            Outgoing("order.payment_completed", "v2", self.render.webhook_order(order), refs),
            Outgoing("payment.completed", "v2", self.render.webhook_payment(order), refs),
        ]
        if new_sub is not None:
            events += self._subscription_events(new_sub, "subscription.created", status_changed=True)
        if order.type == "RECURRING" and order.paid_amount > 0:
            events.append(
                Outgoing("v1.order.PAYMENT", "v1", {"webHookType": "PAYMENT", "orderId": order.id}, refs)
            )
        return events

    def _add_lines(self, order: Order, moment: datetime) -> None:
        """Add the TAX / SHIPPING / FEE / DISCOUNT lines StepPay puts on an order of these prices.

        A first-sale price adds a DISCOUNT line (first payments only: renewals never get one).
        Lines follow every SKU item, so SKU items keep their request order and indices.
        """
        for item in list(order.items):
            price = self.catalogue.price(item.product_code, item.price_code)
            if price is None:
                continue
            lines = [(line.type, line.name, line.amount, line.rate_percent, False) for line in price.lines]
            if price.first_sale_price is not None and order.type != "RECURRING":
                first_sale = ("DISCOUNT", FIRST_SALE_LINE, price.first_sale_price, None, True)
                lines.append(first_sale)
            for line_type, name, amount, rate, per_unit in lines:
                order.items.append(
                    OrderItem(
                        id=self._next("item"),
                        code=self._new_code("order_item_", {}),
                        product_code=item.product_code,
                        price_code=item.price_code,
                        quantity=1,
                        minimum_quantity=1,
                        maximum_quantity=None,
                        currency=item.currency,
                        unit_price=0,
                        status=CREATED,
                        created_at=moment,
                        modified_at=moment,
                        type=line_type,
                        name=name,
                        parent_item_id=item.id,
                        rate_percent=rate,
                        base_amount=-amount if line_type == "DISCOUNT" else amount,
                        per_unit=per_unit,
                    )
                )
        self._reprice(order)

    @staticmethod
    def _reprice(order: Order) -> None:
        """Recompute each line's amount from its SKU item's (chosen) quantity and price."""
        parents = {item.id: item for item in order.items if not item.is_line}
        for line in order.items:
            parent = parents.get(line.parent_item_id or 0) if line.is_line else None
            if parent is None:
                continue
            if line.rate_percent is not None:
                line.unit_price = parent.amount * line.rate_percent // 100
            elif line.per_unit:
                line.unit_price = line.base_amount * parent.quantity
            else:
                line.unit_price = line.base_amount
            if line.type == "DISCOUNT":  # a discount never takes more than its item costs
                line.unit_price = max(line.unit_price, -parent.amount)

    def _issue_virtual_account(self, order: Order) -> list[Outgoing]:
        """``complete`` with ``standby``: a VBANK payment waiting for the shopper's deposit."""
        moment = self.clock()
        order.payment = Payment(
            id=self._next("payment"),
            status="VIRTUAL_BANK_STANDBY",
            amount=order.amount,
            method="VBANK",
            gateway=order.payment_gateway or DEFAULT_GATEWAY,
            card_number=None,
            paid_at=None,
            vbank_code=VBANK_CODE,
            vbank_name=VBANK_NAME,
            vbank_account=f"5620{secrets.randbelow(10**10):010d}",
            vbank_holder=VBANK_HOLDER,
            vbank_due=moment + VBANK_DUE,
        )
        for item in order.items:
            item.status, item.modified_at = DEPOSIT_WAITING, moment
        order.modified_at = moment
        self._log(order, "가상계좌가 발급되었습니다. (virtual account issued)")
        refs = _order_refs(order)
        return [
            Outgoing("payment.standby", "v2", self.render.webhook_payment(order), refs),
            Outgoing("order.updated", "v2", self.render.webhook_order(order), refs),
        ]

    def deposit_order(self, ref: str) -> Result:
        """Control API: the shopper deposits into the order's virtual account; it is paid."""
        with self.lock:
            order = self.find_order(ref)
            if order.is_paid:
                raise conflict("The order is already paid.", "ORDER_ALREADY_PAID")
            if not order.is_deposit_waiting or order.payment is None:
                raise conflict("No virtual account is waiting for a deposit.", "ORDER_NOT_DEPOSIT_WAITING")
            due = order.payment.vbank_due
            if due is not None and self.clock() > due:
                raise conflict("The virtual account's deposit deadline has passed.", "DEPOSIT_EXPIRED")
            events = self._settle(order, "success")
            self._save()
            return self.render.order(order), events

    def _start_subscription(self, order: Order, moment: datetime) -> Subscription:
        recurring_items = []
        for item in _skus(order):
            price = self.catalogue.price(item.product_code, item.price_code)
            if price is not None and price.recurring is not None:
                recurring_items.append((item, price))
        first_item, first_price = recurring_items[0]
        assert first_price.recurring is not None
        interval, count = first_price.recurring.interval, first_price.recurring.interval_count
        trial_end = None
        if first_item.trial_period is not None:  # the first renewal falls at the free trial's end
            trial_end = add_interval(moment, first_item.trial_unit or "DAY", first_item.trial_period)
        sub = Subscription(
            id=self._next("subscription"),
            status="ACTIVE",
            customer_id=order.customer_id,
            price_code=first_item.price_code,
            product_code=first_item.product_code,
            items=[
                SubscriptionItem(
                    id=self._next("subItem"),
                    code=self._new_code("subscription_item_", {}),
                    product_code=item.product_code,
                    price_code=item.price_code,
                    quantity=item.quantity,
                    unit_price=price.amount,  # renewals pay the full price (no trial, no first sale)
                    currency=item.currency,
                )
                for item, price in recurring_items
            ],
            interval=interval,
            interval_count=count,
            start_date=moment,
            created_at=moment,
            modified_at=moment,
            parent_order_id=order.id,
            last_payment_date=moment,
            next_payment_date=trial_end or add_interval(moment, interval, count),
            trial_end=trial_end,
            recurring_count=1,
            card_number=order.payment.card_number if order.payment else None,
            gateway=order.payment.gateway if order.payment else DEFAULT_GATEWAY,
        )
        self.subscriptions[sub.id] = sub
        order.subscription_ids.append(sub.id)
        self._log(order, f"구독 {sub.id}이(가) 시작되었습니다. (subscription started)")
        return sub

    def _subscription_events(self, sub: Subscription, event: str, *, status_changed: bool) -> list[Outgoing]:
        refs: dict[str, Any] = {"subscriptionId": sub.id, "orderId": sub.parent_order_id}
        parent = self.orders.get(sub.parent_order_id)
        if parent is not None:
            refs["orderCode"] = parent.code
        events = [Outgoing(event, "v2", self.render.webhook_subscription(sub), refs)]
        if status_changed:
            events.append(Outgoing("v1.subscription", "v1", {"id": sub.id, "status": sub.status}, refs))
        return events

    def cancel_order(self, ref: str, body: Any) -> Result:
        """``PATCH /api/v1/orders/{idOrCode}/cancel``: refund a paid order, cancel an unpaid one."""
        if not isinstance(body, dict):
            raise bad_request("The request body must be a JSON object.")
        if "requestPrice" not in body or body["requestPrice"] is None:
            raise bad_request("'requestPrice' is required.", field="requestPrice")
        amount = parse_amount(body["requestPrice"], "requestPrice")
        reason = body.get("reason")
        if reason is not None and (not isinstance(reason, str) or len(reason) > 1000):
            raise bad_request("'reason' must be a string.", field="reason")
        with self.lock:
            order = self.find_order(ref)
            if order.is_paid:
                events = self._refund(order, amount, reason, conflict_status=400)
            elif order.is_cancelled:
                raise bad_request("The order is already cancelled.", "ORDER_ALREADY_CANCELLED")
            else:
                moment = self.clock()
                for item in order.items:
                    item.status, item.canceled_at, item.modified_at = CANCELLED, moment, moment
                if order.payment is not None and order.payment.method == "VBANK":
                    # The issued virtual account no longer takes a deposit.
                    order.payment.status, order.payment.canceled_at = "CANCELED", moment
                order.modified_at = moment
                self._log(order, f"주문이 취소되었습니다. (order cancelled){': ' + reason if reason else ''}")
                events = [
                    Outgoing("order.updated", "v2", self.render.webhook_order(order), _order_refs(order))
                ]
            self._save()
            answer = {
                "message": "주문 취소가 완료되었습니다. (order cancelled)",
                "body": {
                    "orderId": order.id,
                    "orderCode": order.code,
                    "paidAmount": order.paid_amount,
                    "returnedAmount": order.returned_amount,
                    "itemStatuses": [item.status for item in order.items],
                },
            }
            return answer, events

    def refund_order(self, ref: str, amount: int | None = None) -> Result:
        """Control API: refund a paid order (fully unless ``amount`` is given)."""
        with self.lock:
            order = self.find_order(ref)
            if not order.is_paid:
                raise conflict("Only a paid order can be refunded.", "ORDER_NOT_PAID")
            refundable = order.paid_amount - order.returned_amount
            events = self._refund(order, refundable if amount is None else amount, None, conflict_status=409)
            self._save()
            return self.render.order(order), events

    def _refund(
        self, order: Order, amount: int, reason: str | None, *, conflict_status: int
    ) -> list[Outgoing]:
        refundable = order.paid_amount - order.returned_amount
        if refundable <= 0:
            raise ApiError(conflict_status, "ORDER_ALREADY_REFUNDED", "The order is already fully refunded.")
        if not 0 < amount <= refundable:
            raise bad_request(
                f"The refund amount must be between 1 and {refundable} (what is left of the payment).",
                "INVALID_REFUND_AMOUNT",
                field="requestPrice",
                refundableAmount=refundable,
            )
        moment = self.clock()
        order.returned_amount += amount
        full = order.returned_amount >= order.paid_amount
        left = amount
        for item in order.items:
            share = max(0, min(left, item.paid_amount - item.returned_amount))  # DISCOUNT lines take none
            item.returned_amount += share
            left -= share
            item.status = REFUNDED if full else REFUNDED_PARTIALLY
            item.modified_at = moment
            if full:
                item.canceled_at = moment
        if order.payment is not None:
            order.payment.status = "CANCELED" if full else "PARTIAL_CANCELED"
            order.payment.canceled_at = moment
        order.modified_at = moment
        self._log(
            order, f"{amount} {order.currency} 환불되었습니다. (refunded){': ' + reason if reason else ''}"
        )
        refs = _order_refs(order)
        return [
            Outgoing("payment.canceled", "v2", self.render.webhook_payment(order), refs),
            Outgoing("order.updated", "v2", self.render.webhook_order(order), refs),
        ]

    # -- subscriptions ---------------------------------------------------------------------

    def renew(self, ref: str, outcome: str) -> Result:
        """Charge a subscription's renewal: a new ``RECURRING`` order, paid or failed."""
        with self.lock:
            sub = self.find_subscription(ref)
            if sub.status not in ("ACTIVE", "UNPAID"):
                raise conflict(f"A {sub.status} subscription is not renewed.", "SUBSCRIPTION_NOT_RENEWABLE")
            moment = self.clock()
            order = Order(
                id=self._next("order"),
                code=self._new_code("order_", self.order_codes),
                id_key=secrets.token_hex(16),
                type="RECURRING",
                customer_id=sub.customer_id,
                items=[
                    OrderItem(
                        id=self._next("item"),
                        code=self._new_code("order_item_", {}),
                        product_code=item.product_code,
                        price_code=item.price_code,
                        quantity=item.quantity,
                        minimum_quantity=item.quantity,
                        maximum_quantity=None,
                        currency=item.currency,
                        unit_price=item.unit_price,
                        status=CREATED,
                        created_at=moment,
                        modified_at=moment,
                    )
                    for item in sub.items
                ],
                created_at=moment,
                modified_at=moment,
                payment_gateway=sub.gateway,
                parent_subscription_id=sub.id,
            )
            self._log(order, f"구독 {sub.id} 정기 결제 주문 (renewal order)", "RENEW")
            self._index(order)
            sub.order_ids.append(order.id)
            events = [Outgoing("order.created", "v2", self.render.webhook_order(order), _order_refs(order))]
            events += self._settle(order, outcome)
            before = sub.status
            if outcome == "success":
                base = (
                    sub.next_payment_date
                    if sub.next_payment_date and sub.next_payment_date > moment
                    else moment
                )
                sub.status = "ACTIVE"
                sub.last_payment_date = order.payment_date or moment
                sub.next_payment_date = add_interval(base, sub.interval, sub.interval_count)
                sub.recurring_count += 1
                if order.payment is not None:
                    sub.card_number = order.payment.card_number
            else:
                sub.status = "UNPAID"
            sub.modified_at = moment
            events += self._subscription_events(
                sub, "subscription.updated", status_changed=sub.status != before
            )
            self._save()
            return self.render.order(order), events

    def set_subscription_status(self, ref: str, status: Any) -> Result:
        if status not in SUBSCRIPTION_STATUSES:
            raise bad_request(f"'status' must be one of {', '.join(SUBSCRIPTION_STATUSES)}.", field="status")
        with self.lock:
            sub = self.find_subscription(ref)
            if sub.status == status:
                return self.render.subscription(sub), []
            moment = self.clock()
            sub.status = str(status)
            sub.modified_at = moment
            if status in ("CANCELED", "EXPIRED"):
                sub.end_date = moment
            elif status == "PAUSE":
                sub.paused_at = moment
            elif status == "ACTIVE":
                sub.end_date = sub.paused_at = None
            events = self._subscription_events(sub, "subscription.updated", status_changed=True)
            self._save()
            return self.render.subscription(sub), events


def _skus(order: Order) -> list[OrderItem]:
    """The items the shopper ordered (type SKU), in request order, without the added lines."""
    return [item for item in order.items if item.type == SKU]


_SORT_FIELDS = {"createdAt": "created_at", "modifiedAt": "modified_at", "paymentDate": "payment_date"}

__all__ = ["SandboxState"]
