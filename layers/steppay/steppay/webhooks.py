"""Webhook intake: authenticate, classify, and keep a webhook durably before acknowledging it.

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

from steppay.persistence import StoredWebhook
from steppay.problems import Problem
from steppay.signature import verify_signature

SIGNATURE_HEADER = "steppay-signature"
# Headers worth keeping with the stored webhook (never our own secrets: StepPay sends none).
KEPT_HEADERS = ("steppay-signature", "content-type", "user-agent", "x-forwarded-for")


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


ORDER_EVENTS = frozenset({"order.payment_completed", "order.updated"})
PAYMENT_EVENTS = frozenset({"payment.completed", "payment.failed", "payment.canceled"})
SUBSCRIPTION_EVENTS = frozenset({"subscription.created", "subscription.updated"})


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


def dedupe_key_for(version: str, event_type: str, body: dict[str, Any], raw_body: bytes) -> str:
    """The same delivery, however often StepPay repeats it, gets the same key.

    v2 redeliveries may be signed again with a new timestamp, so the key covers the event and
    its data, not the envelope's timestamp; v1 bodies are hashed as they are.
    """
    if version == "v2":
        canonical = json.dumps(
            {"event": event_type, "data": body.get("data")}, sort_keys=True, ensure_ascii=False, default=str
        ).encode()
    else:
        canonical = raw_body
    return hashlib.sha256(canonical).hexdigest()


def authenticate_webhook(
    raw_body: bytes,
    headers: Mapping[str, str],
    keys: Sequence[SecretStr],
    *,
    tolerance_seconds: int,
    now: float | None = None,
) -> StoredWebhook:
    """Check a delivery and turn it into what we store; raises a Problem (4xx) when refused."""
    try:
        body = json.loads(raw_body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise Problem("The webhook body is not valid JSON.", code="malformed_json") from exc
    version, event_type = _classify(body)
    lowered = {k.lower(): v for k, v in headers.items()}
    verified = False
    if version == "v2":
        from steppay.errors import SignatureError

        if not keys:
            raise WebhookKeysUnconfigured("This deployment has no webhook verification key configured.")
        try:
            verify_signature(
                raw_body,
                lowered.get(SIGNATURE_HEADER),
                [key.get_secret_value() for key in keys],
                tolerance_seconds=tolerance_seconds,
                now=now if now is not None else time.time(),
            )
        except SignatureError as exc:
            raise WebhookUnauthenticated("The webhook signature is not valid.", code=exc.code) from exc
        verified = True
    return StoredWebhook(
        dedupe_key=dedupe_key_for(version, event_type, body, raw_body),
        version=version,
        event_type=event_type,
        raw_body=raw_body,
        headers={name: lowered[name][:1024] for name in KEPT_HEADERS if name in lowered},
        received_at=datetime.now(UTC),
        signature_verified=verified,
    )


def hint_for(webhook: StoredWebhook) -> WebhookHint:
    """What to look up at StepPay for a stored webhook (never what to believe)."""
    body = json.loads(webhook.raw_body.decode("utf-8"))
    event = webhook.event_type
    if event == "v1.subscription":
        return WebhookHint("subscription", subscription_id=int(body["id"]))
    if event.startswith("v1.order."):
        return WebhookHint("order", order_ref=str(int(body["orderId"])))
    data = body.get("data") or {}
    if event in ORDER_EVENTS:
        ref = data.get("code") or data.get("orderCode") or data.get("id") or data.get("orderId")
        return WebhookHint("order", order_ref=str(ref)) if ref is not None else WebhookHint("none")
    if event in PAYMENT_EVENTS:
        ref = data.get("orderId")
        return WebhookHint("order", order_ref=str(ref)) if ref is not None else WebhookHint("none")
    if event in SUBSCRIPTION_EVENTS:
        sub = data.get("subscriptionId", data.get("id"))
        if isinstance(sub, int) and _is_id(sub):
            return WebhookHint("subscription", subscription_id=sub)
        return WebhookHint("none")
    return WebhookHint("none")
