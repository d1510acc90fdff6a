"""Webhook intake: authenticate and classify a delivery, and say what it asks us to look up.

No delivery may suppress another: nothing is deduplicated at the door (each accepted delivery
is queued; processing is idempotent and asks StepPay, so a repeat costs at most one look-up),
and an authentic signature older than the tolerance is still accepted (a portal resend repeats
the original request).

A webhook is only ever a hint. v2 webhooks are authenticated by their `Steppay-Signature`
so that forged ones are refused at the door (with no usable key configured, every v2 webhook is
refused: blank or `,` is a configuration error, never "accept unverified"); v1
webhooks carry no signature at all. Either way, processing asks StepPay's API what is true
and acts on that answer, never on the webhook's data.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr

from steppay.problems import Problem
from steppay.signature import verify_signature_allowing_stale
from steppay.webhook_events import (
    ACTIONABLE_ORDER_EVENTS,
    ACTIONABLE_PAYMENT_EVENTS,
    ACTIONABLE_SUBSCRIPTION_EVENTS,
    KNOWN_EVENTS,
)

SIGNATURE_HEADER = "steppay-signature"


class WebhookRejected(Problem):
    status = 400
    code = "invalid_webhook"


class WebhookUnauthenticated(Problem):
    status = 401
    code = "signature_invalid"


class WebhookKeysUnconfigured(Problem):
    """No usable verification key: a signed webhook is refused, never accepted unverified."""

    status = 503
    code = "webhook_keys_unconfigured"
    retry_after_seconds = 60  # a configuration fix, not a blip: resend from the portal once fixed


@dataclass(frozen=True)
class WebhookHint:
    """What a webhook asks us to look up."""

    kind: str  # "order", "subscription" or "none"
    order_ref: str | None = None  # order id or code
    subscription_id: int | None = None


def _classify(body: Any) -> tuple[str, str]:
    """Return (version, event type) of a parsed body, or raise WebhookRejected."""
    if not isinstance(body, dict):
        raise WebhookRejected("A webhook body must be a JSON object.")
    if {"timestamp", "event", "data"} <= body.keys():
        event = body.get("event")
        if not isinstance(event, str) or not event or len(event) > 100:
            raise WebhookRejected("The webhook's event type is missing or invalid.")
        if not isinstance(body.get("data"), dict):
            raise WebhookRejected("The webhook's data must be an object.")
        return "v2", event
    if "webHookType" in body and "orderId" in body:
        kind = body.get("webHookType")
        if not isinstance(kind, str) or not (kind.isascii() and kind.isalnum()) or len(kind) > 32:
            raise WebhookRejected("The webhook's type is invalid.")
        if not _is_id(body.get("orderId")):
            raise WebhookRejected("The webhook's orderId is invalid.")
        return "v1", f"v1.order.{kind}"
    if "id" in body and "status" in body and len(body) <= 4:
        if not _is_id(body.get("id")) or not isinstance(body.get("status"), str):
            raise WebhookRejected("The webhook's subscription id or status is invalid.")
        return "v1", "v1.subscription"
    raise WebhookRejected("Not a StepPay webhook.")


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**63


# Per-version body caps: StepPay's v1 bodies are a type and an id; a v2 envelope holds one order,
# subscription or payment (a few KB with its items). Anything larger is not StepPay's.
MAX_BODY_BYTES = {"v1": 1024, "v2": 64 * 1024}


class WebhookTooLarge(Problem):
    status = 413
    code = "payload_too_large"


class WebhookV1Disabled(Problem):
    status = 400
    code = "webhook_v1_disabled"


def metric_event_type(event_type: str) -> str:
    """The EventType metric dimension of an event type: itself when StepPay documents it, else
    "other" (a sender-chosen type must not create CloudWatch metrics: each one is billed)."""
    return event_type if event_type in KNOWN_EVENTS else "other"


@dataclass(frozen=True)
class AuthenticatedWebhook:
    """A delivery that passed the door: what it names, and how it was signed (never its data)."""

    version: str  # "v1" or "v2"
    event_type: str
    hint: WebhookHint
    received_at: datetime
    body_sha256: str  # to find the delivery in StepPay's portal or our logs; the body is not kept
    signature_verified: bool = False
    stale_signature: bool = False
    signature_timestamp: int | None = None  # v2: the verified `timestamp=` of the signature

    @property
    def actionable(self) -> bool:
        """Whether processing it could change anything we record (else: acknowledge, keep nothing)."""
        return self.hint.kind != "none"


def authenticate_webhook(
    raw_body: bytes,
    headers: Mapping[str, str],
    keys: Sequence[SecretStr],
    *,
    tolerance_seconds: int,
    v1_enabled: bool = False,
    now: float | None = None,
) -> AuthenticatedWebhook:
    """Check a delivery and say what it names; raises a Problem (4xx, or 503 unconfigured) when refused."""
    if len(raw_body) > MAX_BODY_BYTES["v2"]:
        raise WebhookTooLarge(f"A webhook body exceeds {MAX_BODY_BYTES['v2']} bytes.")
    try:
        body = json.loads(raw_body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise Problem("The webhook body is not valid JSON.", code="malformed_json") from exc
    version, event_type = _classify(body)
    if len(raw_body) > MAX_BODY_BYTES[version]:
        raise WebhookTooLarge(f"A {version} webhook body exceeds {MAX_BODY_BYTES[version]} bytes.")
    lowered = {k.lower(): v for k, v in headers.items()}
    verified = False
    stale = False
    signature_timestamp: int | None = None
    if version == "v2":
        from steppay.errors import SignatureError

        if not keys:
            raise WebhookKeysUnconfigured("This deployment has no webhook verification key configured.")
        try:
            checked = verify_signature_allowing_stale(
                raw_body,
                lowered.get(SIGNATURE_HEADER),
                [key.get_secret_value() for key in keys],
                tolerance_seconds=tolerance_seconds,
                now=now if now is not None else time.time(),
            )
        except SignatureError as exc:
            raise WebhookUnauthenticated("The webhook signature is not valid.", code=exc.code) from exc
        verified, stale, signature_timestamp = True, checked.stale, checked.timestamp
    elif not v1_enabled:
        raise WebhookV1Disabled(
            "Unsigned (v1) webhooks are not accepted by this deployment; use StepPay's signed v2 webhooks."
        )
    return AuthenticatedWebhook(
        version=version,
        event_type=event_type,
        hint=hint_from_body(event_type, body),
        received_at=datetime.now(UTC),
        body_sha256=hashlib.sha256(raw_body).hexdigest(),
        signature_verified=verified,
        stale_signature=stale,
        signature_timestamp=signature_timestamp,
    )


def hint_from_body(event: str, body: Any) -> WebhookHint:
    """What a classified body names: an order ref or a subscription id, or nothing we act on."""
    if not isinstance(body, dict):
        return WebhookHint("none")
    if event == "v1.subscription":
        return WebhookHint("subscription", subscription_id=int(body["id"]))
    if event.startswith("v1.order."):
        return WebhookHint("order", order_ref=str(int(body["orderId"])))
    data = body.get("data")
    if not isinstance(data, dict):
        return WebhookHint("none")
    if event in ACTIONABLE_ORDER_EVENTS:
        ref = data.get("code") or data.get("orderCode") or data.get("id") or data.get("orderId")
        return _order_hint(ref)
    if event in ACTIONABLE_PAYMENT_EVENTS:
        return _order_hint(data.get("orderId"))
    if event in ACTIONABLE_SUBSCRIPTION_EVENTS:
        sub = data.get("subscriptionId", data.get("id"))
        if isinstance(sub, int) and _is_id(sub):
            return WebhookHint("subscription", subscription_id=sub)
        return WebhookHint("none")
    return WebhookHint("none")


def _order_hint(ref: Any) -> WebhookHint:
    # Whatever is named is queued as text: the processor validates it (`steppay.identifiers`)
    # before it goes near a URL, and keeps what cannot be looked up as rejected.
    return WebhookHint("order", order_ref=str(ref)) if ref is not None else WebhookHint("none")
