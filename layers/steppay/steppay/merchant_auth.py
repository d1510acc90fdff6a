"""The non-AWS way for a merchant's backend to authenticate: a bearer API key (`api-key` mode).

The default is AWS_IAM, checked by the HTTP API before any function runs. A merchant whose backend
is not on AWS and will not hold an access key may deploy the `MerchantApiKeyAuth=enabled` variant
instead: its routes are public at the gateway and this check runs first in the function, before
any routing, validation or I/O. Keys come from SSM or Secrets Manager like the webhook keys (two
during rotation), are compared in constant time, and never appear in an answer or a log.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger

from steppay.errors import SecretUnavailable
from steppay.http import raw_error
from steppay.secrets import get_merchant_api_keys
from steppay.settings import get_settings

logger = Logger(child=True)

BEARER = "bearer"


def _presented_key(headers: Mapping[str, Any]) -> str | None:
    authorization = next((str(v) for k, v in headers.items() if str(k).lower() == "authorization"), "")
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == BEARER else None


def refuse_unless_merchant(event: Mapping[str, Any]) -> dict[str, Any] | None:
    """In `api-key` mode, a ready 401/503 answer for a request without a valid key; else None."""
    if get_settings().merchant_auth != "api-key":
        return None  # AWS_IAM: the HTTP API refused unsigned requests before this function ran
    try:
        keys = get_merchant_api_keys()
    except SecretUnavailable as exc:
        logger.error(
            "Merchant API keys unreadable; every checkout request is refused", extra={"error": str(exc)}
        )
        keys = ()
    if not keys:
        return raw_error(503, "merchant_auth_unconfigured", "No merchant API key is configured.")
    presented = _presented_key(event.get("headers") or {})
    # Every configured key is compared (no early exit), each in constant time.
    matches = [
        hmac.compare_digest(presented.encode(), k.get_secret_value().encode()) for k in keys if presented
    ]
    if not any(matches):
        return raw_error(
            401,
            "unauthorized",
            "Send the merchant API key as `Authorization: Bearer <key>`.",
            {"WWW-Authenticate": 'Bearer realm="steppay-checkouts"'},
        )
    return None
