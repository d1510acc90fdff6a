"""Identifiers are validated before they are placed in a StepPay URL path."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from steppay import identifiers
from steppay.errors import InvalidIdentifier

HOSTILE = [
    "../customers",
    "a/b?x=1",
    "%2e%2e",
    "..",
    ".",
    "",
    " ",
    "\t",
    "order_1\n",
    "\norder_1",
    " order_1",
    "order 1",
    "order_1#frag",
    "order_1;x",
    "order\\1",
    "order_①",
    "주문",
    "x" * 65,
]


@pytest.mark.parametrize("value", HOSTILE)
def test_order_code_refuses_anything_but_the_allow_list(value: str) -> None:
    with pytest.raises(InvalidIdentifier):
        identifiers.order_code(value)


@pytest.mark.parametrize("value", [*HOSTILE, "0", "007", "+1", "1.0", "٣", str(2**63)])
def test_order_ref_refuses_hostile_and_out_of_range_values(value: str) -> None:
    with pytest.raises(InvalidIdentifier):
        identifiers.order_ref(value)


@pytest.mark.parametrize("value", ["-1", "1e3", "+1", "1.0", "٣", "0", "007", " 1", "1\n"])
def test_numeric_id_strings_are_plain_ascii_digits(value: str) -> None:
    with pytest.raises(InvalidIdentifier):
        identifiers.order_id(value)


@pytest.mark.parametrize("value", [0, -1, 2**63, True, False, 1.0, None, b"1", ["1"]])
def test_numeric_ids_must_be_positive_ints_within_int64(value: Any) -> None:
    with pytest.raises(InvalidIdentifier):
        identifiers.order_id(value)
    with pytest.raises(InvalidIdentifier):
        identifiers.subscription_id(value)


def test_valid_values_pass_through() -> None:
    assert identifiers.order_code("order_Xb3kR9pQ2mZt") == "order_Xb3kR9pQ2mZt"
    assert identifiers.order_code("A-b_9" * 12 + "abcd") == "A-b_9" * 12 + "abcd"  # 64 characters
    assert identifiers.order_id(1) == 1
    assert identifiers.order_id("42") == 42
    assert identifiers.order_id(2**63 - 1) == 2**63 - 1
    assert identifiers.order_ref(42) == "42"
    assert identifiers.order_ref("42") == "42"
    assert identifiers.order_ref("order_abc") == "order_abc"
    assert identifiers.id_key("a" * 128) == "a" * 128
    assert identifiers.subscription_id("7") == 7


@pytest.mark.parametrize("value", [*HOSTILE[:-1], "a" * 129])
def test_id_key_refuses_hostile_values(value: str) -> None:
    if len(value) <= 128 and value.isascii() and value.replace("_", "").replace("-", "").isalnum():
        pytest.skip("valid")
    with pytest.raises(InvalidIdentifier):
        identifiers.id_key(value)


def test_the_message_never_echoes_the_value() -> None:
    with pytest.raises(InvalidIdentifier) as caught:
        identifiers.order_code("../secret-path")
    assert "secret-path" not in str(caught.value)
    assert caught.value.kind == "order code"


@given(st.text())
def test_whatever_passes_is_a_single_safe_path_segment(value: str) -> None:
    try:
        ref = identifiers.order_ref(value)
    except InvalidIdentifier:
        return
    assert ref and all(ch.isascii() and (ch.isalnum() or ch in "_-") for ch in ref)
