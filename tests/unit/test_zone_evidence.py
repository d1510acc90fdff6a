"""StepPay's createdAt tells whether STEPPAY_TIMEZONE is right (steppay.zone, issue 16 point 3)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from steppay import payments
from steppay.models import OrderDetail
from steppay.zone import ZoneDisagreement, check_created_at

SEOUL = ZoneInfo("Asia/Seoul")
REQUESTED = datetime(2026, 12, 2, 10, 0, 0, tzinfo=UTC)


def created_at(wall: datetime, read_in: ZoneInfo) -> datetime:
    """StepPay's zone-less wall time as OrderDetail reads it in `read_in`."""
    return OrderDetail.model_validate(
        {
            "id": 1,
            "orderCode": "order_Zone1",
            "type": "ONE_TIME",
            "paidAmount": 0,
            "createdAt": wall.strftime("%Y-%m-%dT%H:%M:%S.%f"),
        },
        context={"steppay_timezone": read_in},
    ).created_at  # type: ignore[return-value]


@pytest.mark.parametrize("zone", [UTC, SEOUL], ids=["UTC", "Asia/Seoul"])
def test_a_matching_zone_agrees(zone: ZoneInfo) -> None:
    wall = (REQUESTED + timedelta(milliseconds=300)).astimezone(zone).replace(tzinfo=None)
    assert check_created_at(created_at(wall, zone), REQUESTED, zone) is None


def test_utc_read_as_seoul_is_nine_hours_early_and_says_utc() -> None:
    wall = REQUESTED.replace(tzinfo=None)  # StepPay writes UTC
    found = check_created_at(created_at(wall, SEOUL), REQUESTED, SEOUL)
    assert found is not None
    assert found.skew == timedelta(hours=-9)
    assert found.observed_utc_offset == timedelta(0)
    assert "UTC+0" in found.describe()


def test_seoul_read_as_utc_is_nine_hours_late_and_says_seoul() -> None:
    wall = REQUESTED.astimezone(SEOUL).replace(tzinfo=None)  # StepPay writes Seoul
    found = check_created_at(created_at(wall, ZoneInfo("UTC")), REQUESTED, ZoneInfo("UTC"))
    assert found is not None and found.observed_utc_offset == timedelta(hours=9)


def test_clock_drift_and_latency_are_not_a_zone() -> None:
    wall = (REQUESTED + timedelta(minutes=3)).replace(tzinfo=None)
    assert check_created_at(created_at(wall, ZoneInfo("UTC")), REQUESTED, ZoneInfo("UTC")) is None
    assert check_created_at(None, REQUESTED, ZoneInfo("UTC")) is None


def test_a_disagreement_is_counted_each_time_and_logged_once(monkeypatch: pytest.MonkeyPatch) -> None:
    counted: list[str] = []
    logged: list[str] = []

    class Metrics:
        def add_metric(self, *, name: str, unit: object, value: int) -> None:
            counted.append(name)

    import aws_lambda_powertools

    monkeypatch.setattr(aws_lambda_powertools, "Metrics", Metrics)
    monkeypatch.setattr(payments, "_zone_reported", [])
    monkeypatch.setattr(payments.logger, "warning", lambda message, **_: logged.append(message))
    found = ZoneDisagreement("Asia/Seoul", timedelta(hours=-9), timedelta(0))
    payments.report_zone_evidence(found)
    payments.report_zone_evidence(found)
    payments.report_zone_evidence(None)
    assert counted == ["StepPayZoneDisagreement", "StepPayZoneDisagreement"]
    assert logged == ["STEPPAY_TIMEZONE disagrees with StepPay's clock"]
