"""Validation of identifiers before they are placed in a StepPay URL path.

A value such as `../customers`, `a/b?x=1`, `%2e%2e`, an empty string or whitespace must never
reach StepPay: it could address another resource with our Secret-Token. Every check here is an
allow-list (ASCII letters, digits, `_`, `-`), done with `fullmatch` so that a trailing newline
cannot slip past `$`.
"""

from __future__ import annotations

import re

from steppay.errors import InvalidIdentifier

MAX_ID = 2**63 - 1  # StepPay ids are Java longs
ORDER_CODE_MAX_LENGTH = 64
ORDER_CODE_PATTERN = r"[A-Za-z0-9_-]{1,64}"
# An order code where a caller could send an id instead (the public routes): anchored, at least one
# character that is not a digit (a bare number is an order id). The length is checked apart:
# pydantic's (Rust) regex engine has no lookahead to say both in one pattern.
ORDER_CODE_NOT_ID_PATTERN = r"^[A-Za-z0-9_-]{0,63}[A-Za-z_-][A-Za-z0-9_-]{0,63}$"
ID_KEY_PATTERN = r"[A-Za-z0-9_-]{1,128}"

_ORDER_CODE = re.compile(ORDER_CODE_PATTERN, re.ASCII)
_ID_KEY = re.compile(ID_KEY_PATTERN, re.ASCII)
# No sign, no leading zero, ASCII digits only (str.isdigit() accepts other scripts' digits).
_DIGITS = re.compile(r"[1-9][0-9]{0,18}", re.ASCII)


def _numeric_id(value: object, kind: str) -> int:
    # bool is an int subclass; True must not become order 1.
    if isinstance(value, bool):
        raise InvalidIdentifier(kind, "must be a positive integer")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and _DIGITS.fullmatch(value):
        number = int(value)
    else:
        raise InvalidIdentifier(kind, "must be a positive integer")
    if not 0 < number <= MAX_ID:
        raise InvalidIdentifier(kind, f"must be between 1 and {MAX_ID}")
    return number


def order_id(value: int | str) -> int:
    """A StepPay order id: a positive int up to 2**63-1, given as int or digit string."""
    return _numeric_id(value, "order id")


def subscription_id(value: int | str) -> int:
    return _numeric_id(value, "subscription id")


def order_code(value: str) -> str:
    """A StepPay order code such as `order_Xb3kR9pQ2mZt`."""
    if not isinstance(value, str) or not _ORDER_CODE.fullmatch(value):
        raise InvalidIdentifier("order code", "must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-'")
    return value


def id_key(value: str) -> str:
    """The idKey of a StepPay payment (receipt lookup)."""
    if not isinstance(value, str) or not _ID_KEY.fullmatch(value):
        raise InvalidIdentifier("idKey", "must be 1-128 characters of A-Z, a-z, 0-9, '_' or '-'")
    return value


def order_ref(value: int | str) -> str:
    """An order id or code, as the path segment of `/api/v1/orders/{orderIdOrCode}`.

    An int or an all-digit string is an order id (StepPay reads it so); anything else must be
    a valid order code.
    """
    if isinstance(value, int) or (isinstance(value, str) and value.isascii() and value.isdigit()):
        return str(order_id(value))
    if not isinstance(value, str):
        raise InvalidIdentifier("order id or code", "must be an integer or a string")
    return order_code(value)


__all__ = [
    "ID_KEY_PATTERN",
    "MAX_ID",
    "ORDER_CODE_MAX_LENGTH",
    "ORDER_CODE_NOT_ID_PATTERN",
    "ORDER_CODE_PATTERN",
    "id_key",
    "order_code",
    "order_id",
    "order_ref",
    "subscription_id",
]
