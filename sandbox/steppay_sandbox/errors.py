"""Errors answered with StepPay's error body ``{traceId, errorCode, errorMessage, details}``."""

from __future__ import annotations

import uuid
from typing import Any


class ApiError(Exception):
    """An error the sandbox answers with a status code and StepPay's error body."""

    def __init__(
        self, status: int, error_code: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message
        self.details = details or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.error_code, self.message, self.details)


def error_body(error_code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "traceId": uuid.uuid4().hex,
        "errorCode": error_code,
        "errorMessage": message,
        "details": details or {},
    }


def bad_request(message: str, code: str = "INVALID_REQUEST", **details: Any) -> ApiError:
    return ApiError(400, code, message, details or None)


def not_found(message: str, code: str = "NOT_FOUND") -> ApiError:
    return ApiError(404, code, message)


def conflict(message: str, code: str = "CONFLICT") -> ApiError:
    return ApiError(409, code, message)
