"""StepPay webhook signatures (`Steppay-Signature` header).

Header: `timestamp=<epoch seconds>,key=<base64>`, and during StepPay's key rotation several
values in `key=` separated by `;`. Each value is Base64(HMAC-SHA256(verification key,
"<timestamp>.<raw body>")), with the timestamp exactly as written in the header and the body
exactly as received (bytes; re-serialised JSON does not verify). A delivery is authentic when
any configured key (we allow two, for our own rotation) produced any listed value.

StepPay publishes no timestamp tolerance. `verify_signature` enforces one (default 300 s, past and
future); the webhook intake uses `verify_signature_allowing_stale`, which accepts an authentic but
old signature (StepPay's portal resend repeats the original request) and still refuses the future.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import SecretStr

from steppay.errors import SignatureMalformed, SignatureMismatch, SignatureMissing, SignatureStale

DEFAULT_TOLERANCE_SECONDS = 300
MAX_HEADER_LENGTH = 4096
MAX_SIGNATURE_VALUES = 8
_TIMESTAMP = re.compile(r"[0-9]{1,15}", re.ASCII)
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}", re.ASCII)

VerificationKey = str | bytes | SecretStr


@dataclass(frozen=True)
class ParsedSignature:
    timestamp: int
    timestamp_text: str  # as written in the header: it is what was signed
    signatures: tuple[bytes, ...]


def _key_bytes(key: VerificationKey) -> bytes:
    if isinstance(key, SecretStr):
        key = key.get_secret_value()
    return key if isinstance(key, bytes) else key.encode("utf-8")


def _digest(raw_body: bytes, key: VerificationKey, timestamp_text: str) -> bytes:
    message = timestamp_text.encode("ascii") + b"." + raw_body
    return hmac.new(_key_bytes(key), message, hashlib.sha256).digest()


def signature_value(raw_body: bytes, key: VerificationKey, timestamp: int) -> str:
    """One base64 value, as StepPay lists it in `key=`."""
    return base64.b64encode(_digest(raw_body, key, str(int(timestamp)))).decode("ascii")


def sign(raw_body: bytes, key: str, timestamp: int) -> str:
    """A `Steppay-Signature` header value for `raw_body` (tests, the sandbox, tools)."""
    if isinstance(timestamp, bool) or timestamp < 0:
        raise ValueError("timestamp must be a non-negative integer")
    return f"timestamp={int(timestamp)},key={signature_value(raw_body, key, timestamp)}"


def parse_signature_header(header: str | None) -> ParsedSignature:
    """Split a header value into its timestamp and signature values, or raise a SignatureError."""
    if header is None or not header.strip():
        raise SignatureMissing("the Steppay-Signature header is missing")
    if len(header) > MAX_HEADER_LENGTH:
        raise SignatureMalformed("the Steppay-Signature header is too long")
    parts: dict[str, str] = {}
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        name = name.strip().lower()
        if not sep or not name:
            raise SignatureMalformed("the Steppay-Signature header has a part without a name=value form")
        if name in parts:
            raise SignatureMalformed(f"the Steppay-Signature header repeats {name!r}")
        parts[name] = value.strip()
    # Unknown parts are ignored, so that StepPay may add some.
    timestamp_text = parts.get("timestamp")
    if timestamp_text is None:
        raise SignatureMalformed("the Steppay-Signature header has no timestamp")
    if not _TIMESTAMP.fullmatch(timestamp_text):
        raise SignatureMalformed("the Steppay-Signature timestamp is not a number of seconds")
    timestamp = int(timestamp_text)
    listed = parts.get("key")
    if listed is None:
        raise SignatureMalformed("the Steppay-Signature header has no key", timestamp=timestamp)
    values = [value.strip() for value in listed.split(";")]
    if not values or any(not value for value in values):
        raise SignatureMalformed("the Steppay-Signature header has an empty key value", timestamp=timestamp)
    if len(values) > MAX_SIGNATURE_VALUES:
        raise SignatureMalformed("the Steppay-Signature header lists too many keys", timestamp=timestamp)
    decoded: list[bytes] = []
    for value in values:
        if not _BASE64.fullmatch(value):
            raise SignatureMalformed("a Steppay-Signature key is not base64", timestamp=timestamp)
        try:
            decoded.append(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            raise SignatureMalformed("a Steppay-Signature key is not base64", timestamp=timestamp) from None
    return ParsedSignature(timestamp, timestamp_text, tuple(decoded))


def verify_signature(
    raw_body: bytes,
    header: str | None,
    keys: Sequence[VerificationKey],
    *,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> int:
    """Check a delivery; return the header's (verified) timestamp or raise a SignatureError.

    Order of checks: missing, malformed, stale (outside +/- tolerance), mismatch.
    """
    parsed = _parsed_header(raw_body, header, keys)
    current = time.time() if now is None else now
    if abs(current - parsed.timestamp) > tolerance_seconds:
        raise SignatureStale(
            f"the Steppay-Signature timestamp is outside the {tolerance_seconds}s tolerance",
            timestamp=parsed.timestamp,
        )
    _check_keys(raw_body, parsed, keys)
    return parsed.timestamp


def _parsed_header(raw_body: bytes, header: str | None, keys: Sequence[VerificationKey]) -> ParsedSignature:
    if not isinstance(raw_body, bytes | bytearray):
        raise TypeError("raw_body must be the request body as bytes, exactly as received")
    if not keys:
        raise ValueError("no webhook verification key is configured")
    return parse_signature_header(header)


def _check_keys(raw_body: bytes, parsed: ParsedSignature, keys: Sequence[VerificationKey]) -> None:
    """Return when one configured key signed the body at the header's timestamp, else raise."""
    body = bytes(raw_body)
    for key in keys:
        expected = _digest(body, key, parsed.timestamp_text)
        for candidate in parsed.signatures:
            if hmac.compare_digest(expected, candidate):
                return
    raise SignatureMismatch("no Steppay-Signature key matches", timestamp=parsed.timestamp)


@dataclass(frozen=True)
class VerifiedSignature:
    """An authentic signature, and whether its timestamp is older than the tolerance."""

    timestamp: int
    stale: bool


def verify_signature_allowing_stale(
    raw_body: bytes,
    header: str | None,
    keys: Sequence[VerificationKey],
    *,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> VerifiedSignature:
    """As `verify_signature`, but an authentic signature older than the tolerance is accepted (stale).

    StepPay documents no automatic retry, only a manual portal resend of the original signed
    request: refusing an old timestamp would lose that delivery for good. A replayed genuine
    delivery can do no harm, as a webhook is only a hint (processing asks StepPay's API).
    A timestamp further in the future than the tolerance is still refused (StepPay cannot have
    signed it yet), and the signature is checked before age, so a forgery is always a mismatch.
    """
    parsed = _parsed_header(raw_body, header, keys)
    current = time.time() if now is None else now
    if parsed.timestamp - current > tolerance_seconds:
        raise SignatureStale(
            f"the Steppay-Signature timestamp is more than {tolerance_seconds}s in the future",
            timestamp=parsed.timestamp,
        )
    _check_keys(raw_body, parsed, keys)
    return VerifiedSignature(parsed.timestamp, current - parsed.timestamp > tolerance_seconds)


__all__ = [
    "DEFAULT_TOLERANCE_SECONDS",
    "ParsedSignature",
    "VerifiedSignature",
    "parse_signature_header",
    "sign",
    "signature_value",
    "verify_signature",
    "verify_signature_allowing_stale",
]
