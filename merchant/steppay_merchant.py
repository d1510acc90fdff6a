"""Calling the bundle's merchant routes from the merchant's backend, signed with AWS SigV4.

The merchant-side routes of the HTTP API (``POST /checkouts``, ``GET /checkouts/{checkoutId}``,
``GET /checkouts?merchantRef=...``) use ``AWS_IAM`` authorization: every request must carry a
Signature Version 4 signature for the service ``execute-api`` in the API's region, made with
credentials of an IAM principal allowed to ``execute-api:Invoke`` them. This module signs requests
with botocore and offers a small typed client. Dependencies: the standard library, ``botocore`` and
``requests``.

Usage (copy-paste)::

    from steppay_merchant import CheckoutClient, CheckoutError

    client = CheckoutClient(
        "https://abc123.execute-api.ap-northeast-2.amazonaws.com/prod",  # the stack's API URL
        region="ap-northeast-2",
        # credentials=None: botocore's default chain (environment, ~/.aws, SSO, instance/task role)
    )
    try:
        checkout = client.create_checkout(
            {"merchantRef": "order-1001", "amount": 12000, "currency": "KRW"},
            idempotency_key="order-1001",  # the same key makes a retry safe
        )
        print(client.get_checkout(checkout["checkoutId"]))
        print(client.find_checkout("order-1001"))
    except CheckoutError as exc:
        print(exc.status, exc.code, exc.message)

Against the local stack (``make run``) use its dummy credentials and URL::

    from botocore.credentials import Credentials

    client = CheckoutClient(
        "http://127.0.0.1:3000", region="ap-northeast-2", credentials=Credentials("local", "local")
    )

With ``requests`` directly, or to sign any other HTTP client's request::

    import requests
    from steppay_merchant import SigV4RequestsAuth, sign_request

    requests.get(url, auth=SigV4RequestsAuth("ap-northeast-2"), timeout=10)
    headers = sign_request("POST", url, body=b'{"a":1}', headers={"Content-Type": "application/json"})
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import botocore.session
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, ReadOnlyCredentials

__all__ = [
    "SERVICE",
    "CheckoutClient",
    "CheckoutError",
    "SigV4RequestsAuth",
    "sign_request",
]

#: The service name in SigV4 credential scopes for API Gateway.
SERVICE = "execute-api"

#: Headers a transport may add or change on the way; they are sent but not signed.
_UNSIGNED_HEADERS = frozenset(
    {"user-agent", "accept-encoding", "accept", "connection", "content-length"}
    # and what the signature itself sets (replaced when a request is signed again, e.g. on a retry)
    | {"authorization", "x-amz-date", "x-amz-security-token"}
)

CredentialsLike = Credentials | ReadOnlyCredentials


def _default_credentials() -> Credentials:
    credentials = botocore.session.get_session().get_credentials()
    if credentials is None:
        raise RuntimeError(
            "no AWS credentials found (botocore's default chain: environment, ~/.aws, SSO, role)"
        )
    return credentials


def _default_region() -> str:
    region = botocore.session.get_session().get_config_variable("region")
    if not region:
        raise RuntimeError("no AWS region given and none configured (AWS_REGION or ~/.aws/config)")
    return str(region)


def sign_request(
    method: str,
    url: str,
    *,
    body: bytes | None,
    headers: Mapping[str, str],
    credentials: CredentialsLike | None = None,
    region: str | None = None,
) -> dict[str, str]:
    """The headers to send with ``method url`` so that API Gateway's ``AWS_IAM`` authorization accepts it.

    ``url`` is the full URL exactly as it will be sent (scheme, host, path and query string already
    percent-encoded); ``body`` the exact bytes of the body (None or ``b""`` for none); ``headers`` the
    headers to sign (e.g. ``Content-Type``, ``Idempotency-Key``). Returns those headers plus
    ``X-Amz-Date``, ``Authorization`` (and ``X-Amz-Security-Token`` for temporary credentials); the
    ``Host`` header is signed as derived from ``url``, which is what HTTP clients send. Credentials
    default to botocore's chain, the region to the configured one.
    """
    creds = credentials if credentials is not None else _default_credentials()
    frozen = creds.get_frozen_credentials() if isinstance(creds, Credentials) else creds
    if not frozen.access_key or not frozen.secret_key:
        raise RuntimeError("AWS credentials without an access key id or secret access key")
    request = AWSRequest(method=method.upper(), url=url, data=body or b"", headers=dict(headers))
    signer = SigV4Auth(
        Credentials(frozen.access_key, frozen.secret_key, frozen.token),
        SERVICE,
        region or _default_region(),
    )
    signer.add_auth(request)
    return {str(name): str(value) for name, value in request.headers.items()}


class SigV4RequestsAuth(requests.auth.AuthBase):
    """``requests`` authentication that signs each prepared request with SigV4 for ``execute-api``.

    Signs the request's URL, body and headers (except those a transport may rewrite: ``User-Agent``,
    ``Accept``, ``Accept-Encoding``, ``Connection``, ``Content-Length``). A streamed (iterable) body
    cannot be signed and raises ``ValueError``.
    """

    def __init__(self, region: str, credentials: CredentialsLike | None = None) -> None:
        self.region = region
        self.credentials = credentials

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        body = r.body
        if body is None:
            data = b""
        elif isinstance(body, bytes):
            data = body
        elif isinstance(body, str):
            data = body.encode("utf-8")
            r.body = data
        else:
            raise ValueError("SigV4RequestsAuth cannot sign a streamed request body")
        to_sign = {name: value for name, value in r.headers.items() if name.lower() not in _UNSIGNED_HEADERS}
        signed = sign_request(
            r.method or "GET",
            r.url or "",
            body=data,
            headers=to_sign,
            credentials=self.credentials,
            region=self.region,
        )
        r.headers.update(signed)
        return r


class CheckoutError(Exception):
    """A non-2xx answer: the bundle's ``{"error": {"code", "message"}}`` or API Gateway's ``{"message"}``.

    ``code`` is the bundle's error code; for API Gateway's own answers (403 from ``AWS_IAM``, 404, 5xx)
    it is ``"Forbidden"``, ``"NotFound"``, ... derived from the status, and ``message`` its message.
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


_GATEWAY_CODES = {
    400: "BadRequest",
    403: "Forbidden",
    404: "NotFound",
    413: "PayloadTooLarge",
    429: "TooManyRequests",
    500: "InternalServerError",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}


def _error_from(response: requests.Response) -> CheckoutError:
    status = response.status_code
    try:
        payload: Any = response.json()
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict) and error.get("code"):
            return CheckoutError(status, str(error["code"]), str(error.get("message", "")))
        if isinstance(payload.get("message"), str):
            return CheckoutError(status, _GATEWAY_CODES.get(status, f"HTTP{status}"), payload["message"])
    text = response.text[:500] if response.text else response.reason or ""
    return CheckoutError(status, _GATEWAY_CODES.get(status, f"HTTP{status}"), text)


class CheckoutClient:
    """A typed client of the merchant routes (``/checkouts``), every request SigV4-signed.

    ``api_url`` is the HTTP API's URL including its stage (``.../prod``); ``region`` the API's region;
    ``credentials`` default to botocore's chain (looked up once, refreshed by botocore when they are
    temporary); ``session`` a ``requests.Session`` to reuse connections; ``timeout`` seconds per request.
    """

    def __init__(
        self,
        api_url: str,
        *,
        region: str,
        credentials: CredentialsLike | None = None,
        session: requests.Session | None = None,
        timeout: float = 10,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.region = region
        self.auth = SigV4RequestsAuth(
            region, credentials if credentials is not None else _default_credentials()
        )
        self.session = session if session is not None else requests.Session()
        self.timeout = timeout

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        send_headers = {"Accept": "application/json", **(headers or {})}
        data: bytes | None = None
        if body is not None:
            data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
            send_headers["Content-Type"] = "application/json"
        response = self.session.request(
            method,
            f"{self.api_url}{path}",
            data=data,
            headers=send_headers,
            auth=self.auth,
            timeout=self.timeout,
        )
        if not 200 <= response.status_code < 300:
            raise _error_from(response)
        if not response.content:
            return {}
        result = response.json()
        if not isinstance(result, dict):
            raise CheckoutError(response.status_code, "InvalidResponse", "expected a JSON object")
        return result

    def create_checkout(self, body: dict[str, Any], *, idempotency_key: str | None = None) -> dict[str, Any]:
        """``POST /checkouts`` with ``body`` as JSON (and ``Idempotency-Key`` when given)."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key is not None else None
        return self._call("POST", "/checkouts", body=body, headers=headers)

    def get_checkout(self, checkout_id: str) -> dict[str, Any]:
        """``GET /checkouts/{checkoutId}``."""
        return self._call("GET", f"/checkouts/{quote(checkout_id, safe='')}")

    def find_checkout(self, merchant_ref: str) -> dict[str, Any]:
        """``GET /checkouts?merchantRef=...``: the checkout of the merchant's own reference."""
        # Encoded here as SigV4's canonical query string wants it (%20, not +), so it is signed as sent.
        return self._call("GET", f"/checkouts?merchantRef={quote(merchant_ref, safe='-_.~')}")
