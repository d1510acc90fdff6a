"""Rendering the sandbox's records in StepPay's shapes.

API shapes follow StepPay's OpenAPI spec (schema names in the docstrings; every field the spec
lists as required is filled, optional ones are present and ``null`` when unknown, as StepPay's
Jackson serialiser does). Webhook shapes follow the Webhook Order / Subscription / Payment
schemas summarised in the project's StepPay contract. Every date-time is StepPay's zone-less
wall time in the sandbox's configured zone (``Renderer.zone``: UTC by default, or Asia/Seoul).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any

from steppay_sandbox.catalogue import Catalogue, Customer, Price, Product
from steppay_sandbox.models import Order, OrderItem, Payment, Subscription
from steppay_sandbox.timeutil import to_steppay

JSON = dict[str, Any]

COUNTRY_SETTING: JSON = {
    "id": 1,
    "countryCode": "KR",
    "timezoneName": "Asia/Seoul",
    "currencyCode": "KRW",
    "isDefault": True,
    "taxRate": 10,
}


class Renderer:
    """Turns records into response bodies; needs the catalogue and the records it refers to."""

    def __init__(
        self,
        catalogue: Catalogue,
        orders: Mapping[int, Order],
        subscriptions: Mapping[int, Subscription],
    ) -> None:
        self.catalogue = catalogue
        self.orders = orders
        self.subscriptions = subscriptions
        self.zone: tzinfo = UTC  # the zone of every zone-less date-time written (see timeutil)

    def when(self, value: datetime | None) -> str | None:
        """A date-time as StepPay writes it: zone-less wall time in ``self.zone``."""
        return to_steppay(value, self.zone)

    # -- catalogue -------------------------------------------------------------------------

    def _price_and_product(self, product_code: str, price_code: str) -> tuple[Price, Product]:
        product = self.catalogue.product(product_code)
        price = product.price(price_code) if product else None
        if product is None or price is None:  # records only ever name catalogue entries
            raise LookupError(f"{product_code}/{price_code} is not in the catalogue")
        return price, product

    def price(self, price: Price) -> JSON:
        """``PriceV1DTO`` / ``ProductPricedto`` (plus ``currency`` and ``productCode``)."""
        product = self.catalogue.product(price.product_code)
        created = self.when(product.created_at) if product else None
        recurring = None
        if price.recurring is not None:
            recurring = {
                "id": price.recurring.id,
                "interval": price.recurring.interval,
                "intervalCount": price.recurring.interval_count,
                "usageType": "LICENSED",
                "aggregateUsageType": "SUM",
            }
        return {
            "id": price.id,
            "code": price.code,
            "productCode": price.product_code,
            "price": price.amount,
            "currency": price.currency,
            "unit": price.currency,
            "planName": price.plan_name,
            "planDescription": "",
            "type": price.type,
            "enabledFirstSalePrice": price.first_sale_price is not None,
            "firstSalePrice": price.first_sale_price or 0,
            "claimMethodType": "PRE",
            "whenToClaimType": "FIRST_PAYMENT",
            "billingDate": 0,
            "maximumPurchaseQuantity": 0,
            "membershipExpirationDate": 0,
            "membershipExpirationDateType": None,
            "setupOption": None,
            "options": [],
            "volumes": [],
            "additionalBilling": None,
            "recurring": recurring,
            "createdAt": created,
            "modifiedAt": created,
            "plan": {
                "name": price.plan_name,
                "description": "",
                "detailDescription": "",
                "isHiddenFromShop": False,
                "adminName": price.plan_name,
            },
            "firstSale": {
                "enabled": price.first_sale_price is not None,
                "price": price.first_sale_price or 0,
            },
            "claim": {
                "methodType": "PRE",
                "whenToClaimType": "FIRST_PAYMENT",
                "billingDate": 0,
                "provideStartDay": 0,
            },
            "basicServing": 0,
            "bundlePrices": [],
            "onetimeBundlePrice": 0,
            "order": 0,
        }

    def product(self, product: Product) -> JSON:
        """``ProductV1DTO`` / ``ProductProductdto``."""
        created = self.when(product.created_at)
        return {
            "id": product.id,
            "code": product.code,
            "type": product.type,
            "status": product.status,
            "name": product.name,
            "subTitle": "",
            "featuredImageUrl": "",
            "imageUrls": [],
            "description": product.description,
            "summary": "",
            "reasonOfReject": None,
            "sku": None,
            "quantity": 0,
            "combinedProducts": [],
            "optionGroups": [],
            "useCombination": False,
            "optionCombinations": [],
            "prices": [self.price(p) for p in product.prices],
            "createdAt": created,
            "modifiedAt": created,
            "enabledDemo": product.demo_period is not None,
            "demoPeriod": product.demo_period or 0,
            "demoPeriodUnit": product.demo_period_unit,
            "categories": [],
            "vendorUuid": self.catalogue.vendor_uuid,
            "productOrder": 0,
            "isOnetimePurchasable": all(not p.is_recurring for p in product.prices),
            "eventBadge": [],
            "notice": None,
            "useWidget": {
                "useDemo": False,
                "useEventBadge": False,
                "useOnetimePurchasable": False,
                "useNotice": False,
            },
            "groupId": None,
            "countrySetting": dict(COUNTRY_SETTING),
        }

    def product_list_item(self, product: Product) -> JSON:
        """``ProductListDTO``."""
        created = self.when(product.created_at)
        return {
            "id": product.id,
            "code": product.code,
            "type": product.type,
            "status": product.status,
            "name": product.name,
            "quantity": 0,
            "featuredImageUrl": "",
            "prices": [self.price(p) for p in product.prices],
            "createdAt": created,
            "modifiedAt": created,
            "description": product.description,
            "categories": [],
            "vendorUuid": self.catalogue.vendor_uuid,
            "enabledDemo": product.demo_period is not None,
            "isOnetimePurchasable": all(not p.is_recurring for p in product.prices),
            "productOrder": 0,
            "countrySetting": dict(COUNTRY_SETTING),
        }

    def customer_list_item(self, customer: Customer) -> JSON:
        """``CustomerListDTO`` (plus ``uuid``)."""
        orders = [o for o in self.orders.values() if o.customer_id == customer.id]
        active = [
            s for s in self.subscriptions.values() if s.customer_id == customer.id and s.status == "ACTIVE"
        ]
        return {
            "id": customer.id,
            "code": customer.code,
            "uuid": customer.uuid,
            "status": "NORMAL",
            "username": customer.username,
            "name": customer.name,
            "email": customer.email,
            "phone": customer.phone,
            "orderCount": len(orders),
            "activeSubscriptionCount": len(active),
            "paymentMethods": [],
            "marketingSms": False,
            "marketingEmail": False,
            "marketingKakao": False,
            "createdAt": self.when(customer.created_at),
            "dormantAt": None,
            "customFields": {},
            "countryCode": "KR",
        }

    def _customer(self, customer_id: int) -> Customer:
        customer = self.catalogue.customer_by_id(customer_id)
        if customer is None:
            raise LookupError(f"customer {customer_id} is not in the catalogue")
        return customer

    def order_customer(self, customer_id: int) -> JSON:
        """``OrderCustomerDTO`` (also fits ``SubscriptionCustomerV1DTO``)."""
        customer = self._customer(customer_id)
        return {
            "id": customer.id,
            "uuid": customer.uuid,
            "status": "NORMAL",
            "name": customer.name,
            "email": customer.email,
            "phone": customer.phone,
            "shipping": None,
            "username": customer.username,
            "code": customer.code,
            "marketingSms": False,
            "marketingEmail": False,
            "marketingKakao": False,
            "attributes": {},
            "createdAt": self.when(customer.created_at),
        }

    # -- orders ----------------------------------------------------------------------------

    def order_item(self, item: OrderItem) -> JSON:
        """``OrderItemV1DTO`` / ``ProductOrderitemdto``.

        ``quantity`` is 0 until the item is paid (as StepPay reports it), then the chosen
        quantity. A TAX / SHIPPING / FEE / DISCOUNT line has no price or product of its own
        (``null``); it is named by ``orderedProductName`` (and ``discountName`` for a DISCOUNT)
        and points at its SKU item with ``relatedOrderItemId``.
        """
        price, product = self._price_and_product(item.product_code, item.price_code)
        demo = None
        if item.trial_period is not None:
            demo = {"num": item.trial_period, "type": item.trial_unit or "DAY"}
        return {
            "id": item.id,
            "code": item.code,
            "orderItemCode": item.code,
            "paidAmount": item.paid_amount,
            "returnedAmount": item.returned_amount,
            "currency": item.currency,
            "quantity": item.reported_quantity,
            "price": None if item.is_line else self.price(price),
            "product": None if item.is_line else self.product(product),
            "type": item.type,
            "status": item.status,
            "featuredImageUrl": "",
            "selectedProductOptionLabel": None,
            "selectedProductOptionIds": [],
            "createdAt": self.when(item.created_at),
            "canceledDateTime": self.when(item.canceled_at),
            "modifiedAt": self.when(item.modified_at),
            "orderedProductType": product.type,
            "orderedProductName": item.name if item.is_line and item.name else product.name,
            "orderedPlanName": price.plan_name,
            "discountName": item.name if item.type == "DISCOUNT" else None,
            "relatedOrderItemId": item.parent_item_id,
            "priceSetupType": None,
            "demoCycle": demo,
            "usedCount": None,
            "usageFormula": None,
            "deliveryCode": None,
            "histories": [],
            "unitChangeHistory": [],
            "unitCount": None,
            "minimumQuantity": item.minimum_quantity,
            "maximumQuantity": item.maximum_quantity,
            "parentOrderItemCode": None,
        }

    def item_name(self, item: OrderItem) -> str:
        """``<product name> · <plan name>`` (the pay page's label for one item)."""
        product = self.catalogue.product(item.product_code)
        price = product.price(item.price_code) if product else None
        name = product.name if product else item.product_code
        if item.is_line and item.name:
            return item.name
        return f"{name} · {price.plan_name}" if price is not None else name

    def product_name(self, order: Order) -> str:
        products = [item for item in order.items if not item.is_line]
        product = self.catalogue.product(products[0].product_code)
        name = product.name if product else products[0].product_code
        return name if len(products) == 1 else f"{name} 외 {len(products) - 1}건"

    def payment(self, payment: Payment | None) -> JSON | None:
        """``OrderPaymentV1DTO``."""
        if payment is None:
            return None
        return {
            "paymentMethod": payment.method,
            "paymentDate": self.when(payment.paid_at),
            "amount": payment.amount,
            "discount": 0,
            "paymentReturn": None,
            "paymentReceiptUrl": None,
            "paymentGateway": payment.gateway,
            "cardNumber": payment.card_number,
            "vbankDTO": self.vbank(payment),
            "niceCmsDTO": None,
            "customerDTO": None,
            "errorCode": payment.error_code,
            "errorMessage": payment.error_message,
        }

    def vbank(self, payment: Payment) -> JSON | None:
        """``VBankV1DTO`` (the webhook Payment's ``vBank``): the issued virtual account."""
        if payment.vbank_account is None:
            return None
        return {
            "bankCode": payment.vbank_code,
            "bankName": payment.vbank_name,
            "accountNumber": payment.vbank_account,
            "accountName": payment.vbank_holder,
            "bankDate": self.when(payment.vbank_due),
        }

    def related_order(self, order: Order) -> JSON:
        """``RelatedOrder``."""
        items = []
        for item in order.items:
            price, product = self._price_and_product(item.product_code, item.price_code)
            items.append(
                {
                    "orderItemId": item.id,
                    "code": item.code,
                    "productName": product.name,
                    "plan": self.price(price)["plan"],
                    "status": item.status,
                    "amount": item.amount,
                    "priceType": price.type,
                    "parentOrderItemCode": None,
                }
            )
        return {
            "id": order.id,
            "code": order.code,
            "orderType": order.type,
            "productName": self.product_name(order),
            "paidAmount": order.paid_amount,
            "items": items,
            "createdAt": self.when(order.created_at),
        }

    def _related_orders(self, order: Order) -> list[JSON]:
        """The other orders of the same subscription chain."""
        sub_id = order.parent_subscription_id or (
            order.subscription_ids[0] if order.subscription_ids else None
        )
        sub = self.subscriptions.get(sub_id) if sub_id is not None else None
        if sub is None:
            return []
        ids = [sub.parent_order_id, *sub.order_ids]
        return [self.related_order(self.orders[i]) for i in ids if i != order.id and i in self.orders]

    def order_logs(self, order: Order) -> list[JSON]:
        return [
            {"id": log.id, "type": log.type, "content": log.content, "createdAt": self.when(log.created_at)}
            for log in order.logs
        ]

    def order(self, order: Order) -> JSON:
        """``OrderV1DTO``; also the create response (``ProductOrderdto`` has the same fields)."""
        parent = None
        if order.parent_subscription_id is not None and order.parent_subscription_id in self.subscriptions:
            parent = self.order_subscription(self.subscriptions[order.parent_subscription_id])
        return {
            "id": order.id,
            "orderId": order.id,
            "orderCode": order.code,
            "code": order.code,
            "idKey": order.id_key,
            "type": order.type,
            "paidAmount": order.paid_amount,
            "leftAmount": order.left_amount,
            "returnedAmount": order.returned_amount,
            "discountedAmount": order.discounted_amount,
            "amount": order.amount,
            "currency": order.currency,
            "productName": self.product_name(order),
            "items": [self.order_item(item) for item in order.items],
            "customer": self.order_customer(order.customer_id),
            "paymentDate": self.when(order.payment_date),
            "paymentDueDate": None,
            "purchaseDeadline": self.when(order.purchase_deadline),
            "shipping": None,
            "createdAt": self.when(order.created_at),
            "modifiedAt": self.when(order.modified_at),
            "payment": self.payment(order.payment),
            "orderLogs": self.order_logs(order),
            "subscriptions": [
                self.order_subscription(self.subscriptions[i])
                for i in order.subscription_ids
                if i in self.subscriptions
            ],
            "parentSubscription": parent,
            "invoiceId": None,
            "relatedOrders": self._related_orders(order),
            "calculateStartDate": None,
            "calculateEndDate": None,
            "childOrders": [],
        }

    def order_list_item(self, order: Order) -> JSON:
        """``OrderListV1DTO`` (plus ``orderId``, ``orderCode``, ``code``, ``idKey``, ``currency``)."""
        customer = self.catalogue.customer_by_id(order.customer_id)
        return {
            "id": order.id,
            "orderId": order.id,
            "orderCode": order.code,
            "code": order.code,
            "idKey": order.id_key,
            "customerName": customer.name if customer else None,
            "type": order.type,
            "productName": self.product_name(order),
            "items": [self.order_item(item) for item in order.items],
            "price": order.amount,
            "currency": order.currency,
            "paymentDate": self.when(order.payment_date),
            "purchaseDeadline": self.when(order.purchase_deadline),
            "createdAt": self.when(order.created_at),
            "modifiedAt": self.when(order.modified_at),
            "claimMethodType": "PRE",
            "paidAmount": order.paid_amount,
            "returnedAmount": order.returned_amount,
            "leftAmount": order.left_amount,
        }

    # -- subscriptions ---------------------------------------------------------------------

    def subscription_items(self, sub: Subscription) -> list[JSON]:
        """``SubscriptionItemV1DTO`` list."""
        rendered = []
        for item in sub.items:
            price, product = self._price_and_product(item.product_code, item.price_code)
            rendered.append(
                {
                    "id": item.id,
                    "code": item.code,
                    "productName": product.name,
                    "productType": product.type,
                    "isOnetimePurchasable": False,
                    "featuredImageUrl": "",
                    "selectedProductOptionLabel": None,
                    "selectedProductOptionIds": [],
                    "selectedProductOptionPrice": 0,
                    "plan": self.price(price)["plan"],
                    "price": item.unit_price,
                    "quantity": item.quantity,
                    "isAdditional": False,
                    "keepWhenRenew": True,
                    "hasOptions": False,
                    "maximumPurchaseQuantity": 0,
                    "productCode": item.product_code,
                    "priceCode": item.price_code,
                    "type": "SKU",
                    "claimMethodType": "PRE",
                    "priceType": price.type,
                    "selectedOptions": [],
                    "parentSubscriptionItemCode": None,
                }
            )
        return rendered

    def _sub_price(self, sub: Subscription) -> JSON:
        price, _ = self._price_and_product(sub.product_code, sub.price_code)
        return self.price(price)

    def order_subscription(self, sub: Subscription) -> JSON:
        """``OrderSubscriptionV1DTO``."""
        return {
            "id": sub.id,
            "status": sub.status,
            "items": self.subscription_items(sub),
            "price": self._sub_price(sub),
            "startDate": self.when(sub.start_date),
            "lastPaymentDate": self.when(sub.last_payment_date),
            "nextPaymentDate": self.when(sub.next_payment_date),
            "endDate": self.when(sub.end_date),
            "interval": sub.interval,
            "intervalCount": sub.interval_count,
            "trialEndDate": self.when(sub.trial_end),
        }

    def _current_period(self, sub: Subscription) -> JSON:
        return {
            "startDateTime": self.when(sub.last_payment_date or sub.start_date),
            "endDateTime": self.when(sub.next_payment_date or sub.end_date or sub.start_date),
        }

    def _trial_period(self, sub: Subscription) -> JSON | None:
        if sub.trial_end is None:
            return None
        return {"startDateTime": self.when(sub.start_date), "endDateTime": self.when(sub.trial_end)}

    def _payment_method(self, sub: Subscription) -> JSON:
        return {"paymentGateway": sub.gateway, "paymentInfo": sub.card_number}

    def subscription(self, sub: Subscription) -> JSON:
        """``SubscriptionV1DTO``."""
        parent = self.orders.get(sub.parent_order_id)
        customer = self.order_customer(sub.customer_id)
        customer.pop("createdAt")
        return {
            "id": sub.id,
            "status": sub.status,
            "price": self._sub_price(sub),
            "startDate": self.when(sub.start_date),
            "trialPeriod": self._trial_period(sub),
            "lastPaymentDate": self.when(sub.last_payment_date),
            "nextPaymentDate": self.when(sub.next_payment_date),
            "endDate": self.when(sub.end_date),
            "parentOrder": self.order(parent) if parent else None,
            "items": self.subscription_items(sub),
            "customer": customer,
            "relatedOrders": [self.order(self.orders[i]) for i in sub.order_ids if i in self.orders],
            "pausedDateTime": self.when(sub.paused_at),
            "interval": sub.interval,
            "intervalCount": sub.interval_count,
            "paymentMethod": self._payment_method(sub),
            "originNextPaymentDate": self.when(sub.next_payment_date),
            "shipping": None,
            "canceledVia": None,
            "recurringCount": sub.recurring_count,
            "currentPeriod": self._current_period(sub),
        }

    # -- receipt (not in StepPay's public spec) ---------------------------------------------

    def receipt(self, order: Order) -> JSON:
        """``GET /api/payment/receipt/{idKey}``.

        StepPay's guide shows this call but its public OpenAPI spec has no schema for it. The
        sandbox answers an object modelled on the order detail's payment fields; treat its
        shape as the sandbox's own assumption, not StepPay's documented contract.
        """
        payment = order.payment
        status = payment.status if payment else "STANDBY"
        if payment is None and order.is_cancelled:
            status = "CANCELED"
        return {
            "idKey": order.id_key,
            "orderId": order.id,
            "orderCode": order.code,
            "amount": payment.amount if payment else order.amount,
            "currency": order.currency,
            "paymentDate": self.when(order.payment_date),
            "paymentMethod": payment.method if payment else None,
            "paymentGateway": payment.gateway if payment else order.payment_gateway,
            "cardNumber": payment.card_number if payment else None,
            "status": status,
            "errorCode": payment.error_code if payment else None,
            "errorMessage": payment.error_message if payment else None,
        }

    # -- webhook data (CONTRACT.md's Webhook Order / Subscription / Payment) ----------------

    def webhook_order(self, order: Order) -> JSON:
        items = []
        for item in order.items:
            price, product = self._price_and_product(item.product_code, item.price_code)
            items.append(
                {
                    "id": item.id,
                    "code": item.code,
                    "productCode": item.product_code,
                    "priceCode": item.price_code,
                    "productName": product.name,
                    "planName": price.plan_name,
                    "type": item.type,
                    "quantity": item.reported_quantity,
                    "currency": item.currency,
                    "price": item.unit_price,
                    "paidAmount": item.paid_amount,
                    "status": item.status,
                }
            )
        return {
            "id": order.id,
            "code": order.code,
            "type": order.type,
            "paidAmount": order.paid_amount,
            "returnedAmount": order.returned_amount,
            "leftAmount": order.left_amount,
            "discountedAmount": order.discounted_amount,
            "productName": self.product_name(order),
            "paymentDate": self.when(order.payment_date),
            "paymentDueDate": None,
            "createdAt": self.when(order.created_at),
            "modifiedAt": self.when(order.modified_at),
            "purchaseDeadline": self.when(order.purchase_deadline),
            "idKey": order.id_key,
            "customerId": order.customer_id,
            "shipping": None,
            "items": items,
            "subscriptions": list(order.subscription_ids),
            "invoiceId": None,
        }

    def webhook_subscription(self, sub: Subscription) -> JSON:
        parent = self.orders.get(sub.parent_order_id)
        return {
            "subscriptionId": sub.id,
            "status": sub.status,
            "createdAt": self.when(sub.created_at),
            "lastPaymentDate": self.when(sub.last_payment_date),
            "nextPaymentDate": self.when(sub.next_payment_date),
            "endDate": self.when(sub.end_date),
            "orderId": sub.parent_order_id,
            "orderCode": parent.code if parent else None,
            "customerId": sub.customer_id,
            "intervalUnit": sub.interval,
            "intervalCount": sub.interval_count,
            "items": [
                {
                    "id": item.id,
                    "code": item.code,
                    "productCode": item.product_code,
                    "priceCode": item.price_code,
                    "quantity": item.quantity,
                    "price": item.unit_price,
                    "currency": item.currency,
                }
                for item in sub.items
            ],
            "paymentMethod": self._payment_method(sub),
            "currentPeriod": self._current_period(sub),
            "trialPeriod": self._trial_period(sub),
        }

    def webhook_payment(self, order: Order) -> JSON:
        payment = order.payment
        if payment is None:
            raise LookupError("order has no payment")
        return {
            "paymentId": payment.id,
            "idKey": order.id_key,
            "orderId": order.id,
            "customerId": order.customer_id,
            "paidAmount": order.paid_amount,
            "paidAt": self.when(payment.paid_at),
            "status": payment.status,
            "paymentGateway": payment.gateway,
            "paymentMethod": payment.method,
            "errorMessage": payment.error_message,
            "cancel": (
                {"canceledAmount": order.returned_amount, "lastCanceledDate": self.when(payment.canceled_at)}
                if order.returned_amount
                else None
            ),
            "vBank": self.vbank(payment),
        }


def page(content: list[JSON], *, page: int, size: int, total: int, sorted_: bool = True) -> JSON:
    """A Spring ``Page`` (``*ListPage*DTO``)."""
    total_pages = (total + size - 1) // size if size else 0
    sort = {"empty": not sorted_, "sorted": sorted_, "unsorted": not sorted_}
    return {
        "content": content,
        "pageable": {
            "sort": dict(sort),
            "offset": page * size,
            "pageNumber": page,
            "pageSize": size,
            "paged": True,
            "unpaged": False,
        },
        "totalPages": total_pages,
        "totalElements": total,
        "last": page >= total_pages - 1,
        "first": page == 0,
        "number": page,
        "size": size,
        "numberOfElements": len(content),
        "sort": sort,
        "empty": not content,
    }
