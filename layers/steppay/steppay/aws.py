"""What every AWS client of the bundle shares: its bounded configuration and boto3's default session.

Bounded so that an unavailable or throttling DynamoDB (or SQS, SSM, EventBridge) is reported well
within the functions' 10-15 s: botocore's legacy defaults retry DynamoDB ten times with backoff
(about 25 s) and wait up to 60 s for an answer. One session, so that botocore reads its endpoint,
partition and service data once per container: a second session (Powertools Parameters makes its
own unless given a client) costs the first request about 90 ms more.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

AWS_CLIENT_CONFIG = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3})


def aws_client(service: str) -> Any:
    """A client on boto3's default session (AWS_ENDPOINT_URL_<SERVICE> points it elsewhere locally)."""
    return boto3.client(service, config=AWS_CLIENT_CONFIG)  # type: ignore[call-overload]


__all__ = ["AWS_CLIENT_CONFIG", "aws_client"]
