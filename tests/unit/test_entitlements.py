"""The example subscriber's rules, on an in-memory store: it cannot be cross-wired.

Entitlements are keyed by the merchant's bound `merchantRef` plus the subscription id; a status
change of one subscription never changes another's; only the configured price codes are granted;
a late event never undoes a newer one.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

import pytest
from botocore.exceptions import ClientError

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "functions" / "entitlements" / "entitlements.py"
BASE_ENV = {"AWS_DEFAULT_REGION": "ap-northeast-2", "POWERTOOLS_TRACE_DISABLED": "true"}
PLAN = "price_monthly_demo"


def load(env: Mapping[str, str], name: str) -> ModuleType:
    """A fresh copy of the function's module, initialised with exactly `env` (plus a region)."""
    spec = importlib.util.spec_from_file_location(name, MODULE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    with mock.patch.dict(os.environ, {**BASE_ENV, **env}):
        for variable in ("ENTITLEMENTS_TABLE_NAME", "ENTITLED_PRICE_CODES"):
            if variable not in env:
                os.environ.pop(variable, None)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        finally:
            sys.modules.pop(name, None)
    return module


ent = load({"ENTITLEMENTS_TABLE_NAME": "entitlements", "ENTITLED_PRICE_CODES": PLAN}, "entitlements_unit")
SETTINGS = ent.Settings(table_name="entitlements", entitled_price_codes=frozenset({PLAN}))


class FakeStore:
    """The EntitlementStore protocol in memory, with the DynamoDB adapter's conditions."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.writes = 0

    def extend_until(self, key: str, until: str, attributes: Mapping[str, Any]) -> bool:
        return self._set_if_later(key, "active_until", until, attributes)

    def record_status(self, key: str, observed_at: str, attributes: Mapping[str, Any]) -> bool:
        return self._set_if_later(key, "status_observed_at", observed_at, attributes)

    def _set_if_later(self, key: str, guard: str, value: str, attributes: Mapping[str, Any]) -> bool:
        self.writes += 1
        item = self.items.get(key, {})
        if guard in item and not item[guard] < value:
            return False
        self.items[key] = {**item, **attributes, guard: value}
        return True


@pytest.fixture
def store() -> Iterator[FakeStore]:
    yield FakeStore()


def items(price_code: str = PLAN) -> list[dict[str, Any]]:
    return [{"productCode": "product_subscription_demo", "priceCode": price_code, "quantity": 1}]


def customer() -> dict[str, Any]:
    return {"id": 1001, "code": "customer_abc", "uuid": None}


def renewal(
    merchant_ref: str | None, subscription_id: Any, until: str, *, price_code: str = PLAN, event_id: str = "r"
) -> dict[str, Any]:
    return {
        "detail-type": "Renewal Payment Verified",
        "source": "steppay.payments",
        "detail": {
            "eventId": event_id,
            "orderCode": f"order_{subscription_id}_{(until or '')[:10]}",
            "orderId": 5124,
            "orderType": "RECURRING",
            "checkoutId": "checkout_1",
            "merchantRef": merchant_ref,
            "customer": customer(),
            "items": items(price_code),
            "amount": "9900",
            "currency": "KRW",
            "subscriptionId": subscription_id,
            "periodStart": None,
            "periodEnd": None,
            "nextPaymentDate": until,
            "paidAt": "2026-12-26T18:15:05.403711+09:00",
        },
    }


def status(
    merchant_ref: str | None,
    subscription_id: Any,
    new_status: str,
    observed_at: str,
    *,
    price_code: str = PLAN,
    event_id: str = "s",
) -> dict[str, Any]:
    return {
        "detail-type": "Subscription Status Changed",
        "source": "steppay.payments",
        "detail": {
            "eventId": event_id,
            "subscriptionId": subscription_id,
            "status": new_status,
            "previousStatus": "ACTIVE",
            "observedAt": observed_at,
            "nextPaymentDate": None,
            "checkoutId": None,
            "merchantRef": merchant_ref,
            "customer": customer(),
            "items": items(price_code),
            "orderCode": "order_Xb3kR9pQ2mZt",
            "orderId": 5123,
        },
    }


def key(merchant_ref: str, subscription_id: int) -> str:
    return f"ENTITLEMENT#{merchant_ref}#{subscription_id}"


def handle(event: dict[str, Any], store: FakeStore, settings: Any = SETTINGS) -> bool:
    result = ent.handle_event(event, store, settings)
    assert result["eventId"] == event["detail"]["eventId"]
    return bool(result["changed"])


def skip_reasons(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The `reason` of each warning the subscriber logged for a skipped event."""
    return [str(getattr(r, "reason", "")) for r in caplog.records if r.levelname == "WARNING"]


JAN = "2027-01-26T18:15:05.403711+09:00"
FEB = "2027-02-26T18:15:05.403711+09:00"
T1 = "2026-12-26T09:15:08.120001+00:00"
T2 = "2026-12-27T09:15:08.120001+00:00"


# --- Keys: merchantRef + subscription id ---------------------------------------------------------


def test_a_cancellation_of_one_merchant_refs_subscription_leaves_anothers_active(store: FakeStore) -> None:
    for ref, sub in (("member-a", 7003), ("member-b", 7004)):
        assert handle(renewal(ref, sub, JAN), store)
        assert handle(status(ref, sub, "ACTIVE", T1), store)

    assert handle(status("member-a", 7003, "CANCELED", T2), store)

    assert store.items[key("member-a", 7003)]["status"] == "CANCELED"
    other = store.items[key("member-b", 7004)]
    assert other["status"] == "ACTIVE"
    assert other["merchant_ref"] == "member-b" and other["subscription_id"] == 7004
    assert set(store.items) == {key("member-a", 7003), key("member-b", 7004)}


def test_the_same_subscription_id_under_another_merchant_ref_is_another_entitlement(store: FakeStore) -> None:
    assert handle(status("member-a", 7003, "ACTIVE", T1), store)
    assert handle(status("member-b", 7003, "CANCELED", T2), store)
    assert store.items[key("member-a", 7003)]["status"] == "ACTIVE"
    assert store.items[key("member-b", 7003)]["status"] == "CANCELED"


def test_two_subscriptions_of_one_merchant_ref_are_independent(store: FakeStore) -> None:
    assert handle(renewal("member-a", 7003, JAN), store)
    assert handle(renewal("member-a", 7005, FEB), store)
    assert handle(status("member-a", 7005, "ACTIVE", T1), store)
    assert handle(status("member-a", 7003, "CANCELED", T2), store)

    first, second = store.items[key("member-a", 7003)], store.items[key("member-a", 7005)]
    assert first["status"] == "CANCELED"
    assert second["status"] == "ACTIVE"
    assert first["active_until"] == "2027-01-26T09:15:05.403711+00:00"
    assert second["active_until"] == "2027-02-26T09:15:05.403711+00:00"


def test_a_merchant_ref_containing_the_separator_does_not_collide() -> None:
    assert ent.entitlement_key("a#1", 2) == "ENTITLEMENT#a#1#2"
    assert ent.entitlement_key("a#1", 2) != ent.entitlement_key("a", 12)
    assert ent.entitlement_key("a", 12) == "ENTITLEMENT#a#12"


# --- Events the merchant's server never bound, or for plans not granted -------------------------


@pytest.mark.parametrize("merchant_ref", [None, "", "   "])
def test_an_event_without_a_merchant_ref_changes_nothing(
    store: FakeStore, merchant_ref: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    assert not handle(renewal(merchant_ref, 7003, JAN), store)
    assert not handle(status(merchant_ref, 7003, "ACTIVE", T1), store)
    missing = renewal("member-a", 7003, JAN)
    del missing["detail"]["merchantRef"]
    assert not handle(missing, store)
    assert store.items == {} and store.writes == 0
    assert any("no merchantRef" in reason for reason in skip_reasons(caplog))


@pytest.mark.parametrize("subscription_id", [None, "7003", 7003.0, True, 0, -1])
def test_an_event_without_an_integer_subscription_id_changes_nothing(
    store: FakeStore, subscription_id: Any
) -> None:
    assert not handle(renewal("member-a", subscription_id, JAN), store)
    assert not handle(status("member-a", subscription_id, "CANCELED", T1), store)
    assert store.writes == 0


def test_a_renewal_of_a_price_code_not_granted_changes_nothing(
    store: FakeStore, caplog: pytest.LogCaptureFixture
) -> None:
    assert not handle(renewal("member-a", 7003, JAN, price_code="price_yearly_other"), store)
    assert store.items == {} and store.writes == 0
    assert skip_reasons(caplog) == ["no item of a price code this subscriber grants"]


def test_a_status_of_a_subscription_of_a_plan_not_granted_changes_nothing(store: FakeStore) -> None:
    assert handle(status("member-a", 7003, "ACTIVE", T1), store)
    assert not handle(status("member-a", 7003, "CANCELED", T2, price_code="price_other"), store)
    assert store.items[key("member-a", 7003)]["status"] == "ACTIVE"


@pytest.mark.parametrize("bad_items", [None, [], "price_monthly_demo", [None], [{"priceCode": None}]])
def test_an_event_without_usable_items_changes_nothing(store: FakeStore, bad_items: Any) -> None:
    event = renewal("member-a", 7003, JAN)
    event["detail"]["items"] = bad_items
    assert not handle(event, store)
    assert store.writes == 0


def test_a_granted_item_among_others_is_the_plan_recorded(store: FakeStore) -> None:
    event = renewal("member-a", 7003, JAN)
    event["detail"]["items"] = [
        {"productCode": "p_addon", "priceCode": "price_addon", "quantity": 1},
        *items(),
    ]
    assert handle(event, store)
    assert store.items[key("member-a", 7003)]["price_code"] == PLAN


def test_no_price_codes_configured_grants_nothing(store: FakeStore) -> None:
    nothing = ent.Settings(table_name="entitlements", entitled_price_codes=frozenset())
    assert not handle(renewal("member-a", 7003, JAN), store, nothing)
    assert not handle(status("member-a", 7003, "ACTIVE", T1), store, nothing)
    assert store.writes == 0


# --- Order independence -----------------------------------------------------------------------


def test_a_late_status_does_not_overwrite_a_newer_one(store: FakeStore) -> None:
    assert handle(status("member-a", 7003, "CANCELED", T2), store)
    assert not handle(status("member-a", 7003, "ACTIVE", T1), store)
    item = store.items[key("member-a", 7003)]
    assert item["status"] == "CANCELED"
    assert item["status_observed_at"] == T2


def test_observed_times_are_compared_as_times_not_as_text(store: FakeStore) -> None:
    # 18:00+09:00 is 09:00Z: earlier than 10:00Z although its text sorts later.
    assert handle(status("member-a", 7003, "CANCELED", "2026-12-27T10:00:00+00:00"), store)
    assert not handle(status("member-a", 7003, "ACTIVE", "2026-12-27T18:00:00+09:00"), store)
    assert handle(status("member-a", 7003, "ACTIVE", "2026-12-27T19:00:00.5+09:00"), store)
    assert store.items[key("member-a", 7003)]["status"] == "ACTIVE"
    assert store.items[key("member-a", 7003)]["status_observed_at"] == "2026-12-27T10:00:00.500000+00:00"


def test_a_renewal_never_shortens_active_until(store: FakeStore) -> None:
    assert handle(renewal("member-a", 7003, FEB, event_id="feb"), store)
    assert not handle(renewal("member-a", 7003, JAN, event_id="jan"), store)
    item = store.items[key("member-a", 7003)]
    assert item["active_until"] == "2027-02-26T09:15:05.403711+00:00"
    assert item["last_order"].endswith("2027-02-26")


def test_a_renewal_extends_and_records_the_binding(store: FakeStore) -> None:
    assert handle(renewal("member-a", 7003, JAN), store)
    assert handle(renewal("member-a", 7003, FEB), store)
    assert store.items[key("member-a", 7003)] == {
        "active_until": "2027-02-26T09:15:05.403711+00:00",
        "merchant_ref": "member-a",
        "subscription_id": 7003,
        "price_code": PLAN,
        "last_order": "order_7003_2027-02-26",
        "checkout_id": "checkout_1",
    }


def test_a_renewal_without_next_payment_date_uses_period_end(store: FakeStore) -> None:
    event = renewal("member-a", 7003, JAN)
    event["detail"]["nextPaymentDate"] = None
    event["detail"]["periodEnd"] = "2027-03-01T00:00:00+09:00"
    assert handle(event, store)
    assert store.items[key("member-a", 7003)]["active_until"] == "2027-02-28T15:00:00.000000+00:00"


def test_a_status_keeps_what_the_renewal_stored(store: FakeStore) -> None:
    assert handle(renewal("member-a", 7003, JAN), store)
    assert handle(status("member-a", 7003, "PAUSE", T1), store)  # its checkoutId is null
    item = store.items[key("member-a", 7003)]
    assert item["checkout_id"] == "checkout_1"
    assert item["price_code"] == PLAN
    assert item["active_until"] == "2027-01-26T09:15:05.403711+00:00"
    assert item["status"] == "PAUSE" and item["previous_status"] == "ACTIVE"


@pytest.mark.parametrize("when", [None, "", "not a date", "2027-01-26T18:15:05"])
def test_a_time_without_an_offset_changes_nothing(store: FakeStore, when: Any) -> None:
    assert not handle(renewal("member-a", 7003, when), store)
    assert not handle(status("member-a", 7003, "ACTIVE", when), store)
    assert store.writes == 0


def test_other_detail_types_change_nothing(store: FakeStore) -> None:
    event = renewal("member-a", 7003, JAN)
    event["detail-type"] = "Payment Verified"
    assert not handle(event, store)
    assert ent.handle_event({"detail-type": "Renewal Payment Verified"}, store, SETTINGS) == {
        "eventId": None,
        "changed": False,
    }
    assert store.writes == 0


# --- Settings ----------------------------------------------------------------------------------


def test_settings_read_the_price_codes_list() -> None:
    settings = ent.Settings.from_env(
        {"ENTITLEMENTS_TABLE_NAME": "t", "ENTITLED_PRICE_CODES": " price_a, ,price_b ,"}
    )
    assert settings == ent.Settings(table_name="t", entitled_price_codes=frozenset({"price_a", "price_b"}))
    assert ent.Settings.from_env({"ENTITLEMENTS_TABLE_NAME": "t"}).entitled_price_codes == frozenset()


@pytest.mark.parametrize("env", [{}, {"ENTITLEMENTS_TABLE_NAME": "  "}])
def test_a_missing_table_name_fails_the_init(env: dict[str, str]) -> None:
    with pytest.raises(ent.SettingsError, match="ENTITLEMENTS_TABLE_NAME"):
        ent.Settings.from_env(env)
    with pytest.raises(RuntimeError, match="ENTITLEMENTS_TABLE_NAME"):
        load({**env, "ENTITLED_PRICE_CODES": PLAN}, "entitlements_no_table")


def test_the_module_reads_its_settings_at_init() -> None:
    module = load({"ENTITLEMENTS_TABLE_NAME": "shop-entitlements"}, "entitlements_init")
    expected = module.Settings(table_name="shop-entitlements", entitled_price_codes=frozenset())
    assert module.SETTINGS == expected
    assert module.persistence.table_name == "shop-entitlements"


# --- The DynamoDB adapter's requests (the conditions run against DynamoDB Local in integration) --


class RecordingTable:
    def __init__(self, error: str | None = None) -> None:
        self.error = error
        self.calls: list[dict[str, Any]] = []

    def update_item(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        if self.error:
            raise ClientError({"Error": {"Code": self.error, "Message": "x"}}, "UpdateItem")
        return {}


def test_the_adapter_writes_one_conditional_update_on_the_subscriptions_own_key() -> None:
    table = RecordingTable()
    assert ent.DynamoDBEntitlementStore(table).extend_until(
        "ENTITLEMENT#a#1", "2027-01-01T00:00:00.000000+00:00", {"price_code": PLAN}
    )
    (call,) = table.calls
    assert call["Key"] == {"pk": "ENTITLEMENT#a#1"}
    assert call["ConditionExpression"] == "attribute_not_exists(#n0) OR #n0 < :v0"
    assert call["ExpressionAttributeNames"] == {"#n0": "active_until", "#n1": "price_code"}
    assert call["ExpressionAttributeValues"] == {":v0": "2027-01-01T00:00:00.000000+00:00", ":v1": PLAN}
    assert call["UpdateExpression"] == "SET #n0 = :v0, #n1 = :v1"


def test_the_adapter_reports_a_failed_condition_as_unchanged_and_raises_anything_else() -> None:
    stale = ent.DynamoDBEntitlementStore(RecordingTable("ConditionalCheckFailedException"))
    assert not stale.record_status("ENTITLEMENT#a#1", T1, {"status": "ACTIVE"})
    throttled = ent.DynamoDBEntitlementStore(RecordingTable("ProvisionedThroughputExceededException"))
    with pytest.raises(ClientError):
        throttled.record_status("ENTITLEMENT#a#1", T1, {"status": "ACTIVE"})
