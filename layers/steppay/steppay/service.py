"""Composition root: the per-container singletons the handlers use.

Built lazily on first use, then kept for the life of the container, so that warm
invocations reuse one HTTP connection pool and one boto3 client per service.
"""

from __future__ import annotations

import functools

from steppay.client import get_client
from steppay.payments import PaymentFlows
from steppay.persistence import get_payment_store
from steppay.settings import get_settings

__all__ = ["get_payment_flows", "get_settings"]


@functools.cache
def get_payment_flows() -> PaymentFlows:
    return PaymentFlows(get_client(), get_payment_store(), get_settings())
