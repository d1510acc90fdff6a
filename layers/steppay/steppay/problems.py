"""Problems the bundle reports to its callers, each with a stable error code.

Handlers turn these into `{"error": {"code", "message"}}` with the status given here
(see `steppay.http`). Messages are written for the merchant's developers and never carry a
secret, a stack trace or StepPay's raw answer.
"""

from __future__ import annotations


class Problem(Exception):
    """Base: an expected, reportable failure of a request."""

    status: int = 400
    code: str = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status


class InvalidRequest(Problem):
    status = 400
    code = "invalid_request"


class RedirectNotAllowed(Problem):
    status = 400
    code = "redirect_not_allowed"

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field} {reason}")
        self.field = field


class OrderNotFound(Problem):
    status = 404
    code = "order_not_found"


class OrderRejected(Problem):
    """StepPay refused to create the order (unknown product, price, customer...)."""

    status = 422
    code = "order_rejected"


class CheckoutNotFound(Problem):
    status = 404
    code = "checkout_not_found"


class MerchantRefConflict(Problem):
    """The merchantRef is registered already, with other content: never two checkouts for one ref."""

    status = 409
    code = "merchant_ref_conflict"


class IdempotencyKeyReused(Problem):
    """The Idempotency-Key was used before for another request body."""

    status = 409
    code = "idempotency_key_reused"


class CheckoutInProgress(Problem):
    """The same checkout is being registered by a concurrent request; retry shortly."""

    status = 409
    code = "checkout_in_progress"
    retry_after_seconds = 1


class ExpectedAmountMismatch(Problem):
    """StepPay priced the registered lines at another total than the merchant's expectedAmount."""

    status = 422
    code = "expected_amount_mismatch"


class CustomerMismatch(Problem):
    """StepPay created the order for another customer than the one registered."""

    status = 502
    code = "steppay_customer_mismatch"


class StepPayUnavailableProblem(Problem):
    """StepPay could not give an answer; never turned into a verdict."""

    status = 503
    code = "steppay_unavailable"
    retry_after_seconds = 5


class StorageUnavailable(Problem):
    status = 503
    code = "storage_unavailable"
    retry_after_seconds = 2
