"""POST /webhooks/steppay: authenticate, queue durably, then acknowledge.

Nothing here believes the webhook: what it names is queued for the processor, which
asks StepPay what is true. The 2xx goes out only after the queue holds it, so a webhook StepPay
considers delivered is never lost; the intake makes no call to StepPay and reads no table, so it
answers quickly even when StepPay or DynamoDB is slow.
"""

# No `from __future__ import annotations` here: the event handler reads the route function's
# annotations at run time, also to generate the OpenAPI document (scripts/export_openapi.py).
import base64
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from steppay.api_models import WebhookAck
from steppay.http import NO_STORE, documented_responses, register_error_handlers, resolve_http
from steppay.identifiers import MAX_ID
from steppay.intake import accept_webhook, check_webhook_keys
from steppay.snapstart import register_snapstart_hooks
from steppay.tracing import get_tracer
from steppay.webhooks import MAX_BODY_BYTES, metric_event_type

logger = Logger()
tracer = get_tracer()
metrics = Metrics()
app = APIGatewayHttpResolver()
register_error_handlers(app)
register_snapstart_hooks()  # SnapStart: warm before the snapshot, renew after a restore
check_webhook_keys()  # a blank key is said once, at start, not discovered per webhook

# The largest body any version may have (v2); steppay.webhooks caps each version on its own.
MAX_WEBHOOK_BYTES = MAX_BODY_BYTES["v2"]

# The body is read as raw bytes (the signature covers them), so the route has no body model;
# the document describes what StepPay sends (see steppay.webhooks for how it is classified).
WEBHOOK_REQUEST_DOC: dict[str, Any] = {
    "parameters": [
        {
            "name": "Steppay-Signature",
            "in": "header",
            "required": False,
            "description": "v2: timestamp=<epoch s>,key=<base64 HMAC-SHA256 of '<timestamp>.<body>'>",
            "schema": {"type": "string"},
        }
    ],
    "requestBody": {
        "required": True,
        "description": "A StepPay webhook exactly as StepPay sends it (v2 signed envelope, or v1).",
        "content": {
            "application/json": {
                "schema": {
                    "anyOf": [
                        {
                            "title": "WebhookV2",
                            "type": "object",
                            "required": ["timestamp", "event", "data"],
                            "properties": {
                                "timestamp": {"type": "integer"},
                                "version": {"type": "string"},
                                "event": {"type": "string", "minLength": 1, "maxLength": 100},
                                "data": {"type": "object"},
                            },
                        },
                        {
                            "title": "WebhookV1Payment",
                            "type": "object",
                            "required": ["webHookType", "orderId"],
                            "properties": {
                                "webHookType": {"type": "string", "pattern": "^[A-Za-z0-9]{1,32}$"},
                                "orderId": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
                            },
                        },
                        {
                            "title": "WebhookV1Subscription",
                            "type": "object",
                            "required": ["id", "status"],
                            "maxProperties": 4,
                            "properties": {
                                "id": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
                                "status": {"type": "string"},
                            },
                        },
                    ]
                }
            }
        },
    },
}


@app.post(
    "/webhooks/steppay",
    summary="Receive a StepPay webhook: authenticate, queue, acknowledge",
    responses=documented_responses(
        {
            200: {
                "description": "Queued for processing, or acknowledged without queueing "
                "(a type that changes nothing we record: `queued` is false)",
                "content": {"application/json": {"model": WebhookAck}},
            }
        },
        (400, 401, 413, 415, 503),  # 400 also: webhook_v1_disabled
    ),
    openapi_extensions=WEBHOOK_REQUEST_DOC,
)
@tracer.capture_method
def receive_webhook() -> Response[dict[str, Any]]:
    event = app.current_event
    body = event.body or ""
    # The signature covers the body's exact bytes: take them as API Gateway received them.
    raw = base64.b64decode(body) if event.is_base64_encoded else body.encode("utf-8")
    accepted = accept_webhook(raw, dict(event.headers or {}))
    # A fixed set of dimension values: the sender chooses the type, not how many metrics we pay.
    metrics.add_dimension(name="EventType", value=metric_event_type(accepted.webhook.event_type))
    metrics.add_metric(name="WebhooksAccepted", unit=MetricUnit.Count, value=1)
    if not accepted.queued:
        metrics.add_metric(name="WebhooksNotActionable", unit=MetricUnit.Count, value=1)
    if accepted.webhook.stale_signature:
        metrics.add_metric(name="StaleSignedWebhooks", unit=MetricUnit.Count, value=1)
    return Response(
        status_code=200,
        content_type="application/json",
        body={"received": True, "queued": accepted.queued},
        headers=NO_STORE,
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve_http(app, event, context, max_body_bytes=MAX_WEBHOOK_BYTES, max_json_depth=64)
