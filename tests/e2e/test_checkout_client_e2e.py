"""The merchant-side client (`merchant/steppay_merchant.py`) against the local API, as a merchant's
backend uses it: register, read back by id and by merchantRef, retry safely, and get the bundle's
error codes as `CheckoutError`s."""

from __future__ import annotations

import uuid

import pytest
from botocore.credentials import Credentials
from e2e.conftest import Shop, new_merchant_ref

from steppay_merchant import CheckoutClient, CheckoutError

pytestmark = pytest.mark.e2e


@pytest.fixture
def client(shop: Shop) -> CheckoutClient:
    return CheckoutClient(
        shop.stack.api_url, region="ap-northeast-2", credentials=Credentials("local", "local")
    )


def test_register_read_back_and_retry(shop: Shop, client: CheckoutClient) -> None:
    ref = new_merchant_ref("client 한글 & spaces")  # any printable merchantRef, encoded and signed
    body = shop.checkout_body(merchantRef=ref)
    key = str(uuid.uuid4())
    checkout = client.create_checkout(body, idempotency_key=key)
    assert checkout["merchantRef"] == ref
    assert client.create_checkout(body, idempotency_key=key) == checkout
    by_id = client.get_checkout(checkout["checkoutId"])
    assert by_id["orderCode"] == checkout["orderCode"] and by_id["state"] == "PENDING"
    assert client.find_checkout(ref) == by_id


def test_the_bundles_refusals_arrive_as_checkout_errors(shop: Shop, client: CheckoutClient) -> None:
    body = shop.checkout_body()
    client.create_checkout(body)
    with pytest.raises(CheckoutError) as conflict:
        client.create_checkout(dict(body, items=shop.checkout_items(quantity=2)))
    assert (conflict.value.status, conflict.value.code) == (409, "merchant_ref_conflict")
    with pytest.raises(CheckoutError) as missing:
        client.get_checkout("chk_" + "0" * 32)
    assert (missing.value.status, missing.value.code) == (404, "checkout_not_found")


def test_wrong_credentials_are_refused_by_the_gateway(shop: Shop) -> None:
    wrong = CheckoutClient(
        shop.stack.api_url, region="ap-northeast-2", credentials=Credentials("local", "nope")
    )
    with pytest.raises(CheckoutError) as refused:
        wrong.create_checkout(shop.checkout_body())
    assert refused.value.status == 403
