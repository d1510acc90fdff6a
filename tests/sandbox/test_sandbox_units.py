"""Small pieces of the sandbox, without HTTP."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from steppay_sandbox.app import append_query, safe_redirect_url
from steppay_sandbox.catalogue import DEFAULT_CATALOGUE, CatalogueError, load_catalogue, parse_catalogue
from steppay_sandbox.timeutil import SEOUL, add_interval, parse_datetime, parse_request_datetime, to_steppay
from steppay_sandbox.webhooks import serialise, sign


def test_to_steppay_is_zone_less_seoul_wall_time() -> None:
    moment = datetime(2023, 6, 18, 21, 19, 55, 403711, tzinfo=UTC)
    assert to_steppay(moment) == "2023-06-19T06:19:55.403711"
    assert to_steppay(moment.replace(microsecond=0)) == "2023-06-19T06:19:55.000000"
    assert to_steppay(None) is None
    with pytest.raises(ValueError):
        to_steppay(datetime(2023, 6, 19))  # naive datetimes never get in


def test_zone_less_input_is_read_as_seoul() -> None:
    parsed = parse_datetime("2023-06-19T06:19:55.403711")
    assert parsed.utcoffset() == timedelta(hours=9)
    assert parsed == datetime(2023, 6, 18, 21, 19, 55, 403711, tzinfo=UTC)
    assert parse_datetime("2023-06-19T00:00:00Z") == datetime(2023, 6, 19, tzinfo=UTC)
    assert parse_datetime("2023-06-19") == datetime(2023, 6, 19, tzinfo=SEOUL)


@pytest.mark.parametrize(
    "text", ["2023-06-19", "tomorrow", "2023-06-19T06:19:55\n", "\uff12\uff10\uff12\uff13-06-19T00:00", ""]
)
def test_request_date_times_are_strict(text: str) -> None:
    with pytest.raises(ValueError):
        parse_request_datetime(text)


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)))
def test_steppay_format_round_trips(moment: datetime) -> None:
    assert parse_datetime(to_steppay(moment) or "") == moment


@pytest.mark.parametrize(
    ("start", "unit", "count", "expected"),
    [
        (datetime(2024, 1, 31, 10, tzinfo=SEOUL), "MONTH", 1, datetime(2024, 2, 29, 10, tzinfo=SEOUL)),
        (datetime(2023, 1, 31, 10, tzinfo=SEOUL), "MONTH", 1, datetime(2023, 2, 28, 10, tzinfo=SEOUL)),
        (datetime(2023, 12, 15, tzinfo=SEOUL), "MONTH", 1, datetime(2024, 1, 15, tzinfo=SEOUL)),
        (datetime(2023, 11, 30, tzinfo=SEOUL), "MONTH", 3, datetime(2024, 2, 29, tzinfo=SEOUL)),
        (datetime(2024, 2, 29, tzinfo=SEOUL), "YEAR", 1, datetime(2025, 2, 28, tzinfo=SEOUL)),
        (datetime(2023, 6, 1, tzinfo=SEOUL), "WEEK", 2, datetime(2023, 6, 15, tzinfo=SEOUL)),
        (datetime(2023, 6, 1, tzinfo=SEOUL), "DAY", 1, datetime(2023, 6, 2, tzinfo=SEOUL)),
    ],
)
def test_add_interval(start: datetime, unit: str, count: int, expected: datetime) -> None:
    assert add_interval(start, unit, count) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://a.example/ok", "https://a.example/ok?order_id=7&order_code=order_x&status=success"),
        (
            "https://a.example/ok?cart=1",
            "https://a.example/ok?cart=1&order_id=7&order_code=order_x&status=success",
        ),
        ("https://a.example/ok?", "https://a.example/ok?order_id=7&order_code=order_x&status=success"),
        (
            "https://a.example/ok?q=%20x#frag",
            "https://a.example/ok?q=%20x&order_id=7&order_code=order_x&status=success#frag",
        ),
    ],
)
def test_append_query_keeps_the_existing_query_exactly(url: str, expected: str) -> None:
    params = [("order_id", "7"), ("order_code", "order_x"), ("status", "success")]
    assert append_query(url, params) == expected


@pytest.mark.parametrize(
    "url",
    ["javascript:alert(1)", "//evil.example/x", "/path", "data:text/html,x", "http://a b/", "https://x\n"],
)
def test_unsafe_redirects(url: str) -> None:
    assert safe_redirect_url(url) is None


def test_sign_matches_an_independent_hmac() -> None:
    body = serialise({"event": "order.created", "data": {"productName": "데모 상품"}})
    assert "데모".encode() in body
    header = sign(body, "key-1", 1_700_000_000)
    digest = hmac.new(b"key-1", b"1700000000." + body, hashlib.sha256).digest()
    assert header == f"timestamp=1700000000,key={base64.b64encode(digest).decode()}"


def test_seed_catalogue() -> None:
    catalogue = load_catalogue()
    assert catalogue.customers and catalogue.customers[0].email
    one_time = catalogue.price("product_onetime_demo", "price_onetime_demo")
    monthly = catalogue.price("product_subscription_demo", "price_monthly_demo")
    assert one_time is not None and (one_time.amount, one_time.currency, one_time.recurring) == (
        15000,
        "KRW",
        None,
    )
    assert monthly is not None and monthly.amount == 9900 and monthly.recurring is not None
    assert (monthly.recurring.interval, monthly.recurring.interval_count) == ("MONTH", 1)


def _raw() -> dict[str, Any]:
    return dict(json.loads(DEFAULT_CATALOGUE.read_text(encoding="utf-8")))


@pytest.mark.parametrize(
    "breakage",
    [
        lambda c: c["products"][0]["prices"][0].update(price=15000.5),
        lambda c: c["products"][0]["prices"][0].update(price="15000"),
        lambda c: c["products"][0]["prices"][0].update(type="WEEKLY"),
        lambda c: c["products"][0]["prices"][0].update(
            recurring={"id": 1, "interval": "MONTH", "intervalCount": 1}
        ),
        lambda c: c["products"][1]["prices"][0].update(code="price_onetime_demo"),
        lambda c: c.update(customers=[]),
        lambda c: c["customers"][0].pop("id"),
    ],
)
def test_broken_catalogues_are_refused(breakage: Any) -> None:
    raw = copy.deepcopy(_raw())
    breakage(raw)
    with pytest.raises(CatalogueError):
        parse_catalogue(raw)


def test_no_float_money_in_catalogue() -> None:
    raw = _raw()
    prices = [price["price"] for product in raw["products"] for price in product["prices"]]
    assert all(type(p) is int for p in prices)


def test_fixed_offset_fallback_matches_seoul() -> None:
    kst = timezone(timedelta(hours=9))
    moment = datetime(2023, 6, 19, 6, 19, 55, tzinfo=kst)
    assert to_steppay(moment) == "2023-06-19T06:19:55.000000"
