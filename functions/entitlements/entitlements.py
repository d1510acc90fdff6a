"""Example subscriber: keeps "active until" per subscription from the bundle's events.

This is the pattern a merchant copies. It subscribes (EventBridge rule) to `Renewal Payment
Verified` and `Subscription Status Changed`, and is idempotent on the events' `eventId`
(Powertools Idempotency, stored in the same table), so a redelivered event changes nothing.

It cannot be cross-wired:

* An entitlement is keyed by what the merchant's server bound at checkout registration
  (`merchantRef`) plus the subscription id: `ENTITLEMENT#<merchantRef>#<subscriptionId>`. An
  event without a bound `merchantRef` or without an integer `subscriptionId` grants nothing, and
  an event only ever writes its own subscription's item, so a status change of one subscription
  never changes another's entitlement, even for the same `merchantRef`.
* It grants only the plans it is configured for (`ENTITLED_PRICE_CODES`, comma-separated price
  codes): an event with no item of one of those price codes changes nothing; none configured
  grants nothing.

Events may arrive in any order: a renewal only ever extends `active_until`, and a status is kept
only when it was observed later than the one stored (times are compared in UTC).

Layers: `lambda_handler` (Powertools, idempotency) -> `handle_event` (the rules, on plain dicts)
-> an `EntitlementStore` (`DynamoDBEntitlementStore` here; tests use an in-memory one).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

logger = Logger()

Handler = TypeVar("Handler", bound=Callable[..., Any])


def _traced(handler: Handler) -> Handler:
    """Powertools' Tracer only when STEPPAY_POWERTOOLS_TRACER is `enabled` (the template's
    `PowertoolsTracer`): it imports the AWS X-Ray SDK, a fifth of this function's cold start,
    while Lambda's `Tracing: Active` traces every invocation without it. Copy the switch, or
    keep your own Tracer."""
    if os.environ.get("STEPPAY_POWERTOOLS_TRACER", "disabled").strip().lower() != "enabled":
        return handler
    from aws_lambda_powertools import Tracer

    return cast(Handler, Tracer().capture_lambda_handler(handler))


RENEWAL = "Renewal Payment Verified"
STATUS_CHANGED = "Subscription Status Changed"


class SettingsError(RuntimeError):
    """The function's environment is incomplete: raised at init, so no event is ever half-handled."""


@dataclass(frozen=True)
class Settings:
    """What the function reads from its environment, once per container."""

    table_name: str
    entitled_price_codes: frozenset[str]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        table_name = env.get("ENTITLEMENTS_TABLE_NAME", "").strip()
        if not table_name:
            raise SettingsError("ENTITLEMENTS_TABLE_NAME must name the entitlements table")
        codes = frozenset(c.strip() for c in env.get("ENTITLED_PRICE_CODES", "").split(",") if c.strip())
        if not codes:
            logger.warning("ENTITLED_PRICE_CODES is empty: this subscriber grants nothing")
        return cls(table_name=table_name, entitled_price_codes=codes)


# --- Data access -------------------------------------------------------------------------------


class EntitlementStore(Protocol):
    """Conditional writes on one entitlement item; each returns whether it changed the item."""

    def extend_until(self, key: str, until: str, attributes: Mapping[str, Any]) -> bool:
        """Set `active_until` = until (and attributes) only if none is stored or it is earlier."""
        ...

    def record_status(self, key: str, observed_at: str, attributes: Mapping[str, Any]) -> bool:
        """Set `status_observed_at` = observed_at (and attributes) only if none stored or earlier."""
        ...


class DynamoDBEntitlementStore:
    """The entitlements table (pk only): one conditional UpdateItem per write."""

    def __init__(self, table: Table) -> None:
        self._table = table

    def extend_until(self, key: str, until: str, attributes: Mapping[str, Any]) -> bool:
        return self._set_if_later(key, "active_until", until, attributes)

    def record_status(self, key: str, observed_at: str, attributes: Mapping[str, Any]) -> bool:
        return self._set_if_later(key, "status_observed_at", observed_at, attributes)

    def _set_if_later(self, key: str, guard: str, value: str, attributes: Mapping[str, Any]) -> bool:
        sets = {guard: value, **{k: v for k, v in attributes.items() if k != guard}}
        names = {f"#n{i}": name for i, name in enumerate(sets)}
        values: dict[str, Any] = {f":v{i}": v for i, v in enumerate(sets.values())}
        try:
            self._table.update_item(
                Key={"pk": key},
                UpdateExpression="SET " + ", ".join(f"#n{i} = :v{i}" for i in range(len(sets))),
                # #n0 / :v0 are the guard attribute and its new value.
                ConditionExpression="attribute_not_exists(#n0) OR #n0 < :v0",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False  # what is stored is already later
            raise
        return True


# --- Rules ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Binding:
    """Whose entitlement an event is about, as the merchant's server bound it, and the plan granted."""

    merchant_ref: str
    subscription_id: int
    price_code: str

    @property
    def key(self) -> str:
        return entitlement_key(self.merchant_ref, self.subscription_id)


def entitlement_key(merchant_ref: str, subscription_id: int) -> str:
    """`ENTITLEMENT#<merchantRef>#<subscriptionId>`: the id is the last segment and all digits, so
    the key is unambiguous even if the merchant's reference contains "#"."""
    return f"ENTITLEMENT#{merchant_ref}#{subscription_id}"


def _skip(detail: Mapping[str, Any], reason: str) -> bool:
    logger.warning(
        "Entitlement event skipped: it grants nothing",
        extra={
            "eventId": detail.get("eventId"),
            "subscriptionId": detail.get("subscriptionId"),
            "reason": reason,
        },
    )
    return False


def _granted_price_code(detail: Mapping[str, Any], settings: Settings) -> str | None:
    items = detail.get("items")
    if not isinstance(items, list):
        return None
    for item in items:
        if isinstance(item, Mapping):
            code = item.get("priceCode")
            if isinstance(code, str) and code in settings.entitled_price_codes:
                return code
    return None


def _binding(detail: Mapping[str, Any], settings: Settings) -> Binding | str:
    """The event's binding, or why it has none."""
    merchant_ref = detail.get("merchantRef")
    if not isinstance(merchant_ref, str) or not merchant_ref.strip():
        return "no merchantRef bound by the merchant's server"
    subscription_id = detail.get("subscriptionId")
    if type(subscription_id) is not int or subscription_id <= 0:
        return "no integer subscriptionId"
    price_code = _granted_price_code(detail, settings)
    if price_code is None:
        return "no item of a price code this subscriber grants"
    return Binding(merchant_ref, subscription_id, price_code)


def _utc(value: object) -> str | None:
    """An ISO 8601 time with an offset as fixed-width UTC text (so text order is time order)."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None  # a time without an offset is ambiguous
    return parsed.astimezone(UTC).isoformat(timespec="microseconds")


def _present(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """No nulls written: a status change without a checkoutId keeps the one a renewal stored."""
    return {k: v for k, v in attributes.items() if v is not None}


def apply_renewal(detail: Mapping[str, Any], store: EntitlementStore, settings: Settings) -> bool:
    binding = _binding(detail, settings)
    if isinstance(binding, str):
        return _skip(detail, binding)
    until = _utc(detail.get("nextPaymentDate") or detail.get("periodEnd"))
    if until is None:
        return _skip(detail, "no end date (nextPaymentDate or periodEnd with an offset)")
    attributes: dict[str, Any] = {
        "merchant_ref": binding.merchant_ref,
        "subscription_id": binding.subscription_id,
        "price_code": binding.price_code,
        "last_order": detail.get("orderCode"),
        "checkout_id": detail.get("checkoutId"),
    }
    return store.extend_until(binding.key, until, _present(attributes))


def apply_status(detail: Mapping[str, Any], store: EntitlementStore, settings: Settings) -> bool:
    binding = _binding(detail, settings)
    if isinstance(binding, str):
        return _skip(detail, binding)
    status = detail.get("status")
    if not isinstance(status, str) or not status:
        return _skip(detail, "no status")
    observed_at = _utc(detail.get("observedAt"))
    if observed_at is None:
        return _skip(detail, "no observedAt with an offset")
    attributes: dict[str, Any] = {
        "status": status,
        "previous_status": detail.get("previousStatus"),
        "merchant_ref": binding.merchant_ref,
        "subscription_id": binding.subscription_id,
    }
    # The price code is not written here: the items are the checkout's, the plan now is the
    # last renewal's.
    return store.record_status(binding.key, observed_at, _present(attributes))


def handle_event(event: Mapping[str, Any], store: EntitlementStore, settings: Settings) -> dict[str, Any]:
    detail_type = event.get("detail-type")
    detail = event.get("detail")
    if not isinstance(detail, Mapping):
        detail = {}
    if detail_type == RENEWAL:
        changed = apply_renewal(detail, store, settings)
    elif detail_type == STATUS_CHANGED:
        changed = apply_status(detail, store, settings)
    else:
        changed = False
    logger.info("Entitlement event applied", extra={"eventId": detail.get("eventId"), "changed": changed})
    return {"eventId": detail.get("eventId"), "changed": changed}


# --- Lambda ---------------------------------------------------------------------------------------

SETTINGS = Settings.from_env()
persistence = DynamoDBPersistenceLayer(table_name=SETTINGS.table_name, key_attr="pk")
config = IdempotencyConfig(event_key_jmespath="detail.eventId", expires_after_seconds=60 * 60 * 24 * 30)


@functools.cache
def _store() -> DynamoDBEntitlementStore:
    return DynamoDBEntitlementStore(boto3.resource("dynamodb").Table(SETTINGS.table_name))


@logger.inject_lambda_context
@_traced
@idempotent(config=config, persistence_store=persistence)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle_event(event, _store(), SETTINGS)
