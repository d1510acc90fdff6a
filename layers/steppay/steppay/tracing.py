"""The Powertools Tracer, opt-in (`PowertoolsTracer=enabled`, variable STEPPAY_POWERTOOLS_TRACER).

Lambda's own `Tracing: Active` records every invocation in X-Ray without any SDK in the function.
The Powertools Tracer adds subsegments per method and patches botocore and requests, but it imports
the AWS X-Ray SDK to do so: about a tenth of a second of every cold start, on the paths where a
shopper waits, for an SDK AWS has put in maintenance. StepPay's latency and errors are metrics and
structured log lines (with the trace id) either way, so the Tracer is off unless asked for.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, cast

F = TypeVar("F", bound=Callable[..., Any])

TRACER_VARIABLE = "STEPPAY_POWERTOOLS_TRACER"


class HandlerTracer(Protocol):
    """What the handlers use of a tracer: the two decorators."""

    def capture_method(self, method: F) -> F: ...

    def capture_lambda_handler(self, lambda_handler: F) -> F: ...


class NoTracer:
    """The decorators of Powertools' Tracer, doing nothing (the function is returned unchanged)."""

    def capture_method(self, method: F) -> F:
        return method

    def capture_lambda_handler(self, lambda_handler: F) -> F:
        return lambda_handler


def get_tracer() -> HandlerTracer:
    """Powertools' Tracer when STEPPAY_POWERTOOLS_TRACER is `enabled`, else one that does nothing."""
    if os.environ.get(TRACER_VARIABLE, "disabled").strip().lower() != "enabled":
        return NoTracer()
    from aws_lambda_powertools import Tracer

    # Its decorators take optional arguments, so its signatures are wider than the Protocol's.
    return cast(HandlerTracer, Tracer())
