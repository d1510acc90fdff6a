"""Configuration from environment variables (see docs/CONFIGURATION.md for the list).

A plain pydantic model validated from `os.environ` (names matched case-insensitively), not
pydantic-settings: that package cost every function about 25-40 ms of cold import for a
dictionary lookup (docs/PERFORMANCE.md).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from typing import Annotated, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

Stage = Literal["local", "dev", "prod"]


class Settings(BaseModel):
    """Every setting has a default so that a function only fails on the ones it actually uses."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    stage: Stage = "local"
    steppay_base_url: str = "https://api.steppay.kr"
    # SSM parameter name (`/...`) or `secretsmanager:<id>`; empty means "read the plain variable".
    steppay_secret_token_param: str = ""
    steppay_secret_token: SecretStr = SecretStr("")
    steppay_webhook_keys_param: str = ""
    steppay_webhook_keys: SecretStr = SecretStr("")
    steppay_timezone: str = "UTC"  # unverified: docs/STEPPAY.md, Time zone
    # Timeouts are durations, not money: floats are fine here.
    steppay_connect_timeout: Annotated[float, Field(gt=0, le=60)] = 3.05
    steppay_read_timeout: Annotated[float, Field(gt=0, le=120)] = 10.0
    steppay_max_retries: Annotated[int, Field(ge=0, le=10)] = 2
    webhook_tolerance_seconds: Annotated[int, Field(ge=1, le=86_400)] = 300
    table_name: str = ""
    event_bus_name: str = ""
    webhook_queue_url: str = ""
    # v1 webhooks are unsigned (anyone can send one): off unless the merchant turns them on.
    webhook_v1_intake: Literal["disabled", "enabled"] = "disabled"
    # The variable is `a.com,*.b.com` (split by `_hosts`), not JSON.
    allowed_redirect_hosts: tuple[str, ...] = ()
    result_page_url: str = ""
    reconciliation_window_minutes: Annotated[int, Field(ge=1)] = 180
    # How the merchant's backend authenticates to /checkouts: "aws-iam" (SigV4, checked by the HTTP
    # API before the function runs) or "api-key" (a bearer key checked by the function itself).
    merchant_auth: Literal["aws-iam", "api-key"] = "aws-iam"
    merchant_api_keys_param: str = ""
    merchant_api_keys: SecretStr = SecretStr("")

    @field_validator("steppay_base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise ValueError("STEPPAY_BASE_URL must be an absolute http(s) URL without query or fragment")
        if "@" in parts.netloc:
            raise ValueError("STEPPAY_BASE_URL must not carry credentials")
        return value

    @field_validator("steppay_timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError("STEPPAY_TIMEZONE must be an IANA zone name such as Asia/Seoul") from exc
        return value

    @field_validator("allowed_redirect_hosts", mode="before")
    @classmethod
    def _hosts(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(h.strip().lower().rstrip(".") for h in value.split(",") if h.strip())
        return value

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings the environment gives (variable names in any case, as Lambda passes them)."""
        source = os.environ if environ is None else environ
        names = cls.model_fields.keys()
        given = {key.lower(): value for key, value in source.items() if key.lower() in names}
        return cls.model_validate(given)

    @property
    def zone(self) -> ZoneInfo:
        """The zone of StepPay's zone-less date-times."""
        return ZoneInfo(self.steppay_timezone)


@functools.cache
def get_settings() -> Settings:
    """One Settings per container; tests call `get_settings.cache_clear()` after changing env."""
    return Settings.from_environment()


__all__ = ["Settings", "Stage", "get_settings"]
