"""The StepPay Secret-Token and the webhook verification key(s).

Where a `*_PARAM` setting names a store, the value is read through Powertools Parameters: an SSM
(SecureString) parameter name such as `/steppay/prod/secret-token`, or `secretsmanager:<id>` for
a Secrets Manager secret. Powertools keeps each value for `SECRETS_MAX_AGE_SECONDS`, so a rotated
secret is picked up within that time without a call per request. Without a name (local runs),
the plain variables `STEPPAY_SECRET_TOKEN` / `STEPPAY_WEBHOOK_KEYS` are used.

Values are returned as `SecretStr` and never appear in messages, reprs or logs.
"""

from __future__ import annotations

import re
from typing import Literal

from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters import BaseProvider, SecretsProvider, SSMProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError, TransformParameterError
from pydantic import SecretStr

from steppay.aws import aws_client
from steppay.errors import SecretUnavailable
from steppay.settings import get_settings

Store = Literal["ssm", "secretsmanager"]
# One Powertools provider per store and container, each given a client on boto3's default session
# (steppay.aws): left to itself a provider makes a session of its own, and the first request
# would read botocore's data twice.
_PROVIDERS: dict[Store, BaseProvider] = {}

SECRETS_MAX_AGE_SECONDS = 300
SECRETS_MANAGER_PREFIX = "secretsmanager:"
MAX_WEBHOOK_KEYS = 2  # the current key and, during rotation, the next one
# A header value: printable ASCII without spaces (requests would otherwise raise an error that
# quotes the value).
_HEADER_SAFE = re.compile(r"[\x21-\x7e]+", re.ASCII)


def provider(store: Store) -> BaseProvider:
    """This container's provider for `store` (created on first use)."""
    found = _PROVIDERS.get(store)
    if found is None:
        client = aws_client(store)
        found = SSMProvider(boto3_client=client) if store == "ssm" else SecretsProvider(boto3_client=client)
        _PROVIDERS[store] = found
    return found


def live_providers() -> list[BaseProvider]:
    """The providers this container has made (SnapStart closes their clients after a restore)."""
    return list(_PROVIDERS.values())


def _read_store(name: str, setting: str) -> str:
    try:
        if name.startswith(SECRETS_MANAGER_PREFIX):
            secret_id = name[len(SECRETS_MANAGER_PREFIX) :]
            value = provider("secretsmanager").get(secret_id, max_age=SECRETS_MAX_AGE_SECONDS)
        else:
            value = provider("ssm").get(name, decrypt=True, max_age=SECRETS_MAX_AGE_SECONDS)
    except (GetParameterError, TransformParameterError) as exc:
        # Powertools' message is the AWS error (names, never values).
        raise SecretUnavailable(f"{setting}: could not read {name!r}") from exc
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise SecretUnavailable(f"{setting}: {name!r} is not UTF-8 text") from None
    if not isinstance(value, str):
        raise SecretUnavailable(f"{setting}: {name!r} is not a text value")
    return value


def get_secret_token() -> SecretStr:
    """The StepPay Secret-Token; raises SecretUnavailable when it is missing or unreadable."""
    settings = get_settings()
    if settings.steppay_secret_token_param:
        raw = _read_store(settings.steppay_secret_token_param, "STEPPAY_SECRET_TOKEN_PARAM")
    else:
        raw = settings.steppay_secret_token.get_secret_value()
    token = raw.strip()
    if not token:
        raise SecretUnavailable("the StepPay Secret-Token is not configured (STEPPAY_SECRET_TOKEN_PARAM)")
    if not _HEADER_SAFE.fullmatch(token):
        raise SecretUnavailable("the StepPay Secret-Token contains characters not allowed in a header")
    return SecretStr(token)


def parse_rotating_keys(raw: str, what: str) -> tuple[SecretStr, ...]:
    """`key1` or `key1,key2` (rotation) into SecretStrs; blanks are ignored, more than two refused."""
    keys = tuple(SecretStr(part.strip()) for part in raw.split(",") if part.strip())
    if len(keys) > MAX_WEBHOOK_KEYS:
        raise SecretUnavailable(f"at most {MAX_WEBHOOK_KEYS} {what} keys may be configured")
    return keys


def parse_webhook_keys(raw: str) -> tuple[SecretStr, ...]:
    return parse_rotating_keys(raw, "webhook verification")


def get_webhook_keys() -> tuple[SecretStr, ...]:
    """The configured webhook verification key(s); empty when none is configured."""
    settings = get_settings()
    if settings.steppay_webhook_keys_param:
        raw = _read_store(settings.steppay_webhook_keys_param, "STEPPAY_WEBHOOK_KEYS_PARAM")
    else:
        raw = settings.steppay_webhook_keys.get_secret_value()
    return parse_webhook_keys(raw)


def get_merchant_api_keys() -> tuple[SecretStr, ...]:
    """The merchant backend's bearer key(s) (`api-key` mode), `key1` or `key1,key2` in rotation."""
    settings = get_settings()
    if settings.merchant_api_keys_param:
        raw = _read_store(settings.merchant_api_keys_param, "MERCHANT_API_KEYS_PARAM")
    else:
        raw = settings.merchant_api_keys.get_secret_value()
    return parse_rotating_keys(raw, "merchant API")


def clear_secret_caches() -> None:
    """Forget cached values and the providers (tests; a forced refresh after a known rotation)."""
    for made in _PROVIDERS.values():
        made.clear_cache()  # type: ignore[no-untyped-call]  # Powertools leaves it unannotated
    _PROVIDERS.clear()
    parameters.clear_caches()  # type: ignore[no-untyped-call]  # Powertools leaves it unannotated


__all__ = [
    "SECRETS_MANAGER_PREFIX",
    "SECRETS_MAX_AGE_SECONDS",
    "clear_secret_caches",
    "get_merchant_api_keys",
    "get_secret_token",
    "get_webhook_keys",
    "live_providers",
    "parse_webhook_keys",
    "provider",
]
