"""The pay link (302) and the sandbox's pay page with its Pay / Fail / Cancel buttons."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from fixtures.sandbox import SandboxClient

REDIRECTS = {
    "successUrl": "https://shop.example.com/checkout/success?cart=42&lang=ko",
    "errorUrl": "https://shop.example.com/checkout/error",
    "cancelUrl": "http://localhost:8080/checkout/cancel?x=1#top",
    "lang": "ko",
}


class Form(HTMLParser):
    """Collects the page's form (action, method, target, hidden inputs) and its buttons."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self.buttons: dict[str, dict[str, str]] = {}
        self.tags: list[str] = []
        self.attrs_seen: list[dict[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        self.tags.append(tag)
        self.attrs_seen.append(values)
        if tag == "form":
            self.forms.append({**values, "inputs": {}})
        elif tag == "input" and values.get("type") == "hidden":
            self.forms[-1]["inputs"][values["name"]] = values.get("value", "")
        elif tag == "button":
            self.buttons[values.get("id", "")] = values


def parse(html: str) -> Form:
    form = Form()
    form.feed(html)
    return form


def pay_link(client: SandboxClient, order: dict[str, Any], **params: str) -> str:
    response = client.api("GET", f"/api/v1/orders/{order['orderCode']}/pay", params=params or REDIRECTS)
    assert response.status_code == 302, response.text
    return response.headers["Location"]


def submit(client: SandboxClient, page_url: str, button: str) -> requests.Response:
    """Do what a browser does when the button is clicked: post the form with the button's value."""
    page = client.http.get(page_url, timeout=10)
    assert page.status_code == 200
    form = parse(page.text)
    [the_form] = form.forms
    assert the_form["method"].lower() == "post"
    data = dict(the_form["inputs"])
    data[form.buttons[button]["name"]] = form.buttons[button]["value"]
    action = the_form["action"]
    target = action if action.startswith("http") else client.base_url + action
    return client.http.post(target, data=data, allow_redirects=False, timeout=10)


# -- the pay link ----------------------------------------------------------------------------


def test_pay_link_redirects_to_the_sandbox_pay_page(sandbox_client: SandboxClient) -> None:
    order = sandbox_client.create_order()
    for ref in (order["orderCode"], str(order["id"])):
        response = sandbox_client.api("GET", f"/api/v1/orders/{ref}/pay", params=REDIRECTS)
        assert response.status_code == 302
        location = urlsplit(response.headers["Location"])
        assert f"{location.scheme}://{location.netloc}" == sandbox_client.base_url
        assert location.path == f"/pay/{order['orderCode']}"
        assert {k: v[0] for k, v in parse_qs(location.query).items()} == REDIRECTS


def test_public_pay_link_needs_no_token_and_404s_unknown_orders(sandbox_client: SandboxClient) -> None:
    order = sandbox_client.create_order()
    http = requests.Session()
    response = http.get(
        f"{sandbox_client.base_url}/api/public/orders/{order['orderCode']}/pay",
        params={"successUrl": REDIRECTS["successUrl"], "lang": "en"},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert location.path == f"/pay/{order['orderCode']}"
    assert parse_qs(location.query) == {"successUrl": [REDIRECTS["successUrl"]], "lang": ["en"]}
    for ref in ("order_doesnotexist", str(order["id"])):  # public links name orders by code
        missing = http.get(f"{sandbox_client.base_url}/api/public/orders/{ref}/pay", allow_redirects=False)
        assert missing.status_code == 404
    assert sandbox_client.api("GET", "/api/v1/orders/order_doesnotexist/pay").status_code == 404


# -- the page --------------------------------------------------------------------------------


def test_pay_page_shows_the_order_and_three_buttons(sandbox_client: SandboxClient) -> None:
    order = sandbox_client.create_order(quantity=2)
    page = sandbox_client.http.get(pay_link(sandbox_client, order), timeout=10)
    assert page.status_code == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    html = page.text
    assert html.lstrip().lower().startswith("<!doctype html>")
    assert order["productName"] in html and "30,000 KRW" in html and order["orderCode"] in html
    assert "결제" in html and "Pay" in html  # Korean and English labels
    form = parse(html)
    assert set(form.buttons) == {"pay-button", "vbank-button", "fail-button", "cancel-button"}
    [the_form] = form.forms
    assert the_form["target"] == "_self"  # a popup or iframe keeps the navigation to itself
    assert the_form["action"] == f"/pay/{order['orderCode']}"
    assert the_form["inputs"] == REDIRECTS
    # Self-contained: no scripts, no external resources.
    assert "script" not in form.tags
    for attrs in form.attrs_seen:
        for key in ("src", "href"):
            assert not attrs.get(key, "").startswith(("http:", "https:", "//")), attrs


def test_pay_page_may_be_framed(sandbox_client: SandboxClient) -> None:
    order = sandbox_client.create_order()
    page = sandbox_client.http.get(pay_link(sandbox_client, order), timeout=10)
    assert "X-Frame-Options" not in page.headers
    csp = page.headers.get("Content-Security-Policy", "")
    assert "frame-ancestors" not in csp and "form-action" not in csp


def test_pay_page_escapes_what_it_echoes(sandbox_client: SandboxClient) -> None:
    order = sandbox_client.create_order()
    evil = 'https://shop.example.com/"><script>alert(1)</script>'
    location = pay_link(sandbox_client, order, successUrl=evil)
    html = sandbox_client.http.get(location, timeout=10).text
    assert "<script>" not in html
    assert parse(html).forms[0]["inputs"]["successUrl"] == evil


def test_pay_page_of_unknown_order_is_404(sandbox_client: SandboxClient) -> None:
    response = sandbox_client.http.get(f"{sandbox_client.base_url}/pay/order_doesnotexist", timeout=10)
    assert response.status_code == 404
    assert "text/html" in response.headers["Content-Type"]


# -- the buttons -----------------------------------------------------------------------------


def test_pay_button_pays_and_redirects_to_success_url(sandbox_client: SandboxClient) -> None:
    order = sandbox_client.create_order()
    response = submit(sandbox_client, pay_link(sandbox_client, order), "pay-button")
    assert response.status_code == 303
    assert response.headers["Location"] == (
        "https://shop.example.com/checkout/success?cart=42&lang=ko"
        f"&order_id={order['id']}&order_code={order['orderCode']}&status=success"
    )
    detail = sandbox_client.api("GET", f"/api/v1/orders/{order['orderCode']}").json()
    assert detail["paymentDate"] is not None and detail["items"][0]["status"] == "PAID"


def test_fail_button_declines_and_redirects_to_error_url(sandbox_client: SandboxClient) -> None:
    order = sandbox_client.create_order()
    response = submit(sandbox_client, pay_link(sandbox_client, order), "fail-button")
    assert response.status_code == 303
    assert response.headers["Location"] == (
        "https://shop.example.com/checkout/error"
        f"?order_id={order['id']}&order_code={order['orderCode']}&status=error"
    )
    detail = sandbox_client.api("GET", f"/api/v1/orders/{order['orderCode']}").json()
    assert detail["paymentDate"] is None
    assert detail["items"][0]["status"] == "PAYMENT_FAILURE"
    assert detail["payment"]["errorCode"] and detail["payment"]["errorMessage"]


def test_cancel_button_changes_nothing_and_goes_to_cancel_url(sandbox_client: SandboxClient) -> None:
    order = sandbox_client.create_order()
    response = submit(sandbox_client, pay_link(sandbox_client, order), "cancel-button")
    assert response.status_code == 303
    assert response.headers["Location"] == (
        f"http://localhost:8080/checkout/cancel?x=1&order_id={order['id']}&order_code={order['orderCode']}#top"
    )
    detail = sandbox_client.api("GET", f"/api/v1/orders/{order['orderCode']}").json()
    assert detail["items"][0]["status"] == "CREATED" and detail["payment"] is None


def test_buttons_settle_like_the_control_api(sandbox_client: SandboxClient) -> None:
    by_page = sandbox_client.create_order()
    submit(sandbox_client, pay_link(sandbox_client, by_page), "pay-button")
    by_control = sandbox_client.create_order()
    sandbox_client.complete(by_control["orderCode"])

    def shape(code: str) -> dict[str, Any]:
        d = sandbox_client.api("GET", f"/api/v1/orders/{code}").json()
        return {
            "paid": d["paidAmount"],
            "left": d["leftAmount"],
            "items": [i["status"] for i in d["items"]],
            "payment": {k: (v is None) for k, v in d["payment"].items()},
            "method": d["payment"]["paymentMethod"],
        }

    assert shape(by_page["orderCode"]) == shape(by_control["orderCode"])


def test_without_urls_a_result_page_is_shown(sandbox_client: SandboxClient) -> None:
    order = sandbox_client.create_order()
    link = sandbox_client.api("GET", f"/api/v1/orders/{order['orderCode']}/pay").headers["Location"]
    assert urlsplit(link).query == ""
    response = submit(sandbox_client, link, "pay-button")
    assert response.status_code == 200 and "text/html" in response.headers["Content-Type"]
    assert "Payment complete" in response.text and order["orderCode"] in response.text
    assert sandbox_client.api("GET", f"/api/v1/orders/{order['orderCode']}").json()["paymentDate"]


@pytest.mark.parametrize(
    "url", ["javascript:alert(1)", "/relative/path", "ftp://x.example/", "https://a\r\nX: y"]
)
def test_unsafe_redirect_urls_are_not_followed(sandbox_client: SandboxClient, url: str) -> None:
    order = sandbox_client.create_order()
    response = sandbox_client.http.post(
        f"{sandbox_client.base_url}/pay/{order['orderCode']}",
        data={"action": "pay", "successUrl": url},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 200
    assert "Location" not in response.headers


def test_a_paid_order_cannot_be_paid_twice(sandbox_client: SandboxClient) -> None:
    order = sandbox_client.create_order()
    link = pay_link(sandbox_client, order)
    assert submit(sandbox_client, link, "pay-button").status_code == 303
    page = sandbox_client.http.get(link, timeout=10)
    assert "already paid" in page.text
    assert "pay-button" not in parse(page.text).buttons
    again = sandbox_client.http.post(
        f"{sandbox_client.base_url}/pay/{order['orderCode']}", data={"action": "pay"}, timeout=10
    )
    assert again.status_code == 409 and "already paid" in again.text
    failed = sandbox_client.http.post(
        f"{sandbox_client.base_url}/pay/{order['orderCode']}", data={"action": "fail"}, timeout=10
    )
    assert failed.status_code == 409
    detail = sandbox_client.api("GET", f"/api/v1/orders/{order['orderCode']}").json()
    assert detail["items"][0]["status"] == "PAID"
    assert len([log for log in detail["orderLogs"] if "payment completed" in log["content"]]) == 1
    assert sandbox_client.complete(order["orderCode"]).status_code == 409


def test_a_failed_payment_can_be_retried(sandbox_client: SandboxClient) -> None:
    order = sandbox_client.create_order()
    link = pay_link(sandbox_client, order)
    submit(sandbox_client, link, "fail-button")
    response = submit(sandbox_client, link, "pay-button")
    assert response.status_code == 303 and response.headers["Location"].endswith("status=success")
    detail = sandbox_client.api("GET", f"/api/v1/orders/{order['orderCode']}").json()
    assert detail["items"][0]["status"] == "PAID" and detail["payment"]["errorCode"] is None


def test_unknown_button_is_refused(sandbox_client: SandboxClient) -> None:
    order = sandbox_client.create_order()
    response = sandbox_client.http.post(
        f"{sandbox_client.base_url}/pay/{order['orderCode']}", data={"action": "steal"}, timeout=10
    )
    assert response.status_code == 400
    assert sandbox_client.api("GET", f"/api/v1/orders/{order['orderCode']}").json()["payment"] is None


def test_pay_page_title_is_bilingual(sandbox_client: SandboxClient) -> None:
    order = sandbox_client.create_order()
    html = sandbox_client.http.get(pay_link(sandbox_client, order, lang="en"), timeout=10).text
    assert re.search(r'<html lang="en">', html)
    assert "결제" in html and "Checkout" in html
