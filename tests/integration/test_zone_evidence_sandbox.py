"""A created order's createdAt tells which zone StepPay (here the sandbox) writes in (issue 16, point 3).

The sandbox's zone is switched through its control API; the client reads StepPay's times in one
configured zone, and `steppay.zone.check_created_at` must agree when the two match and name the
sandbox's real offset when they do not.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import SecretStr

from steppay.client import StepPayClient
from steppay.models import OrderCreateItem, OrderCreateRequest
from steppay.zone import check_created_at
from steppay_sandbox.testing import SandboxControl

SECRET_TOKEN = "sandbox-secret-token"


@pytest.fixture
def control(sandbox: Any) -> Iterator[SandboxControl]:
    ctl = SandboxControl(sandbox.url)
    before = ctl.config()["timezone"]
    yield ctl
    ctl.configure(timezone=before)


@pytest.mark.parametrize(
    ("sandbox_zone", "configured", "expected_offset"),
    [
        ("UTC", "UTC", None),
        ("Asia/Seoul", "Asia/Seoul", None),
        ("UTC", "Asia/Seoul", timedelta(0)),
        ("Asia/Seoul", "UTC", timedelta(hours=9)),
    ],
)
def test_created_at_shows_the_zone_steppay_writes_in(
    sandbox: Any,
    control: SandboxControl,
    sandbox_zone: str,
    configured: str,
    expected_offset: timedelta | None,
) -> None:
    control.configure(timezone=sandbox_zone)
    zone = ZoneInfo(configured)
    with StepPayClient(sandbox.url, SecretStr(SECRET_TOKEN), zone=zone) as client:
        product = next(p for p in client.list_products().content if p.prices)
        customer = client.list_customers().content[0]
        requested_at = datetime.now(UTC)
        order = client.create_order(
            OrderCreateRequest(
                customer_id=customer.id,
                items=[OrderCreateItem(product_code=product.code, price_code=product.prices[0].code)],
            )
        )
    found = check_created_at(order.created_at, requested_at, zone)
    if expected_offset is None:
        assert found is None
    else:
        assert found is not None and found.observed_utc_offset == expected_offset
