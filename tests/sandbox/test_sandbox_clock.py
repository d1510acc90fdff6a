"""The test-only clock: `POST /_sandbox/clock` moves the sandbox's now forward; reset undoes it."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from fixtures.sandbox import SandboxClient

DAY = 24 * 3600


def _when(value: str) -> datetime:
    return datetime.fromisoformat(value)


def test_an_order_paid_and_refunded_a_day_after_its_creation(sandbox_client: SandboxClient) -> None:
    assert sandbox_client.control("GET", "/clock").json()["offsetSeconds"] == 0
    order = sandbox_client.create_order()
    moved = sandbox_client.control("POST", "/clock", {"advanceSeconds": DAY})
    assert moved.status_code == 200, moved.text
    assert moved.json()["offsetSeconds"] == DAY
    assert sandbox_client.complete(order["orderCode"]).status_code == 200
    paid = sandbox_client.api("GET", f"/api/v1/orders/{order['orderCode']}").json()
    # Created before the move, paid after it: a day apart (give or take the test's own seconds).
    gap = _when(paid["paymentDate"]) - _when(paid["createdAt"])
    assert timedelta(days=1) <= gap < timedelta(days=1, minutes=5), gap
    assert (
        sandbox_client.control("POST", "/clock", {"advanceSeconds": 3600}).json()["offsetSeconds"]
        == DAY + 3600
    )
    refund = sandbox_client.control("POST", f"/orders/{order['orderCode']}/refund", {"amount": 5000})
    assert refund.status_code == 200, refund.text
    refunded = sandbox_client.api("GET", f"/api/v1/orders/{order['orderCode']}").json()
    assert _when(refunded["modifiedAt"]) - _when(paid["paymentDate"]) >= timedelta(hours=1)
    # The order list (by creation time) still finds it where it was created.
    start = (_when(paid["createdAt"]) - timedelta(minutes=1)).isoformat()
    end = (_when(paid["createdAt"]) + timedelta(minutes=1)).isoformat()
    listed = sandbox_client.api("GET", "/api/v1/orders", params={"startDate": start, "endDate": end}).json()
    assert order["id"] in [o["id"] for o in listed["content"]]


def test_reset_moves_the_clock_back(sandbox_client: SandboxClient) -> None:
    sandbox_client.control("POST", "/clock", {"advanceSeconds": 7 * DAY})
    assert sandbox_client.control("POST", "/reset", {}).status_code == 200
    answer = sandbox_client.control("GET", "/clock").json()
    assert answer["offsetSeconds"] == 0
    assert abs(_when(answer["now"]) - datetime.now(_when(answer["now"]).tzinfo)) < timedelta(minutes=1)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"advanceSeconds": -1},
        {"advanceSeconds": 1.5},
        {"advanceSeconds": "60"},
        {"advanceSeconds": True},
        {"advanceSeconds": 10**12},
        {"advanceSeconds": 60, "extra": 1},
        [60],
    ],
)
def test_an_invalid_advance_is_refused_and_changes_nothing(
    sandbox_client: SandboxClient, body: object
) -> None:
    response = sandbox_client.control("POST", "/clock", body)
    assert response.status_code == 400, response.text
    assert sandbox_client.control("GET", "/clock").json()["offsetSeconds"] == 0
