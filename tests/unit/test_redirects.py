"""The redirect allow-list: every open-redirect trick is refused, every allowed URL passes as is."""

from __future__ import annotations

import pytest

from steppay.problems import RedirectNotAllowed
from steppay.redirects import check_redirect_url, host_is_allowed, parse_allowed_hosts

HOSTS = parse_allowed_hosts("shop.example.com, *.pay.example.net")


@pytest.mark.parametrize(
    "url",
    [
        "https://shop.example.com/pay/done",
        "https://shop.example.com/pay/done?cart=42&lang=ko",
        "https://shop.example.com:8443/done",
        "https://SHOP.example.com/done",
        "https://eu.pay.example.net/ok",
        "https://a.b.pay.example.net/ok",
    ],
)
def test_allowed_urls_pass_unchanged(url: str) -> None:
    assert check_redirect_url(url, allowed_hosts=HOSTS, stage="prod", field="successUrl") == url


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/",
        "https://shop.example.com.evil.example/",
        "https://evilshop.example.com/",
        "https://pay.example.net/",  # a wildcard never matches the bare domain
        "http://shop.example.com/",  # plain http outside the local stage
        "javascript:alert(1)",
        "JaVaScRiPt:alert(document.domain)//https://shop.example.com",
        "data:text/html,<script>alert(1)</script>",
        "//evil.example/",
        "///evil.example/",
        "/relative/path",
        "shop.example.com/done",
        "https://shop.example.com@evil.example/",
        "https://user:pass@shop.example.com/",
        "https://evil.example\\@shop.example.com/",
        "https://shop.example.com\\evil.example/",
        "https:\\\\evil.example",
        "https://evil.example%2fshop.example.com/",
        "https://shop%2eexample%2ecom/",
        "https://shop.example.com%00.evil.example/",
        "https://shop.example.com /x",
        "https://shop.example.com/\r\nSet-Cookie:x=1",
        "https://shop.example.com/\t",
        "https://shöp.example.com/",
        "https://shop.example.com/#fragment",
        "https://[::1]/",
        "https://shop.example.com:99999/",
        "https://shop.example.com:abc/",
        "ftp://shop.example.com/",
        "https://" + "a" * 2100 + ".example.com/",
        "https://shop.example.com/" + "x" * 2100,
        "",
    ],
)
def test_hostile_urls_are_refused(url: str) -> None:
    with pytest.raises(RedirectNotAllowed) as info:
        check_redirect_url(url, allowed_hosts=HOSTS, stage="prod", field="errorUrl")
    assert info.value.code == "redirect_not_allowed"
    assert info.value.status == 400
    assert info.value.message.startswith("errorUrl ")
    # The message names the field, never echoes the URL.
    assert "evil" not in info.value.message


@pytest.mark.parametrize("url", ["http://localhost:8080/done", "http://127.0.0.1:3000/payments/callback"])
def test_plain_http_only_for_loopback_on_local_stage(url: str) -> None:
    hosts = parse_allowed_hosts("localhost,127.0.0.1")
    assert check_redirect_url(url, allowed_hosts=hosts, stage="local", field="successUrl") == url
    with pytest.raises(RedirectNotAllowed):
        check_redirect_url(url, allowed_hosts=hosts, stage="dev", field="successUrl")


def test_http_is_refused_for_other_hosts_even_on_local_stage() -> None:
    hosts = parse_allowed_hosts("shop.example.com,localhost")
    with pytest.raises(RedirectNotAllowed):
        check_redirect_url("http://shop.example.com/", allowed_hosts=hosts, stage="local", field="cancelUrl")


def test_localhost_must_still_be_allow_listed() -> None:
    with pytest.raises(RedirectNotAllowed):
        check_redirect_url("http://localhost/", allowed_hosts=HOSTS, stage="local", field="successUrl")


def test_host_matching() -> None:
    assert host_is_allowed("x.pay.example.net", HOSTS)
    assert not host_is_allowed("xpay.example.net", HOSTS)
    assert parse_allowed_hosts(" A.com ,, *.B.com. ") == ("a.com", "*.b.com")
