"""The verdicts of payment verification (the rules are in `steppay.verification`).

A module of its own so that code which only names a verdict — the API models, and through them
the webhook intake — does not import StepPay's order models: about 70 ms of a cold start.
"""

from __future__ import annotations

from enum import StrEnum


class Verdict(StrEnum):
    PAID = "PAID"
    NOT_PAID = "NOT_PAID"
    FAILED = "FAILED"
    # StepPay returned part of the payment (0 < returnedAmount < paidAmount): still paid, less.
    PARTIALLY_REFUNDED = "PARTIALLY_REFUNDED"
    CANCELED = "CANCELED"
    MISMATCH = "MISMATCH"
    # StepPay's answer carries a value we decide with that this bundle does not know (a new item
    # status or order type): never paid, never retried in a loop; recorded for a person to look.
    NEEDS_REVIEW = "NEEDS_REVIEW"
