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
    CANCELED = "CANCELED"
    MISMATCH = "MISMATCH"
