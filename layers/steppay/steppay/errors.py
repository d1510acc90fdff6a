"""Typed exceptions of the StepPay layer.

Messages and attributes never carry the Secret-Token, a webhook key, or a value that failed
identifier validation (those may be hostile and end up in logs).
"""

from __future__ import annotations


class StepPayError(Exception):
    """A StepPay API call did not give a usable answer.

    `status_code` is StepPay's HTTP status (None when no response came), `error_code` and
    `trace_id` come from StepPay's error body `{traceId, errorCode, errorMessage, details}`.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        error_code: str | None = None,
        error_message: str | None = None,
        trace_id: str | None = None,
        retry_after_seconds: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.error_code = error_code
        self.error_message = error_message
        self.trace_id = trace_id
        self.retry_after_seconds = retry_after_seconds

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, status_code={self.status_code!r}, "
            f"error_code={self.error_code!r}, trace_id={self.trace_id!r})"
        )


class StepPayNotFound(StepPayError):
    """404: StepPay knows no such order, subscription or receipt."""


class StepPayAuthFailed(StepPayError):
    """401/403: the Secret-Token was refused (a configuration problem, not a caller's)."""


class StepPayRejected(StepPayError):
    """400, 422 and other 4xx: StepPay refused the request as made."""


class StepPayUnavailable(StepPayError):
    """5xx, 429, timeouts, connection errors, redirects or an answer we cannot read.

    Never turned into a verdict: the caller retries later.
    """


class StepPayMalformedResponse(StepPayUnavailable):
    """StepPay answered 2xx, but the body is not JSON or not the shape we rely on."""


class InvalidIdentifier(ValueError):
    """An order code, order id, idKey or subscription id that may not be put in a URL path.

    The message names the kind of identifier only, never the offending value.
    """

    def __init__(self, kind: str, reason: str = "is not valid") -> None:
        super().__init__(f"{kind} {reason}")
        self.kind = kind


class WebhookShapeError(ValueError):
    """A webhook body that is none of the shapes StepPay sends (v2 envelope, v1 order, v1 subscription)."""


class SecretUnavailable(RuntimeError):
    """A secret could not be read or is not configured. Names the setting, never the value."""


class SignatureError(Exception):
    """Base of webhook signature failures; `code` is stable and safe to return to the caller."""

    code = "signature_invalid"

    def __init__(self, message: str, *, timestamp: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        # The header's timestamp, when it could be read (for logs and replay analysis).
        self.timestamp = timestamp


class SignatureMissing(SignatureError):
    code = "signature_missing"


class SignatureMalformed(SignatureError):
    code = "signature_malformed"


class SignatureStale(SignatureError):
    """Outside the tolerance window, in the past or in the future."""

    code = "signature_stale"


class SignatureMismatch(SignatureError):
    code = "signature_mismatch"


__all__ = [
    "InvalidIdentifier",
    "SecretUnavailable",
    "SignatureError",
    "SignatureMalformed",
    "SignatureMismatch",
    "SignatureMissing",
    "SignatureStale",
    "StepPayAuthFailed",
    "StepPayError",
    "StepPayMalformedResponse",
    "StepPayNotFound",
    "StepPayRejected",
    "StepPayUnavailable",
    "WebhookShapeError",
]
