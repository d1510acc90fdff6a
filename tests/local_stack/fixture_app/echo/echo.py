"""Returns the event and context it got (GET/POST /echo, /items/{id}, /files/{proxy+}), or a response
the request asks for (POST /respond)."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

import fixture_helpers  # from the layer

ENV_KEYS = [
    "STAGE",
    "TABLE_NAME",
    "BUS_NAME",
    "WORK_QUEUE_URL",
    "WORK_QUEUE_NAME",
    "STREAM_ARN",
    "WHERE",
    "LOCAL_FLAG",
    "OVERRIDDEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_ENDPOINT_URL_EVENTBRIDGE",
    "AWS_ENDPOINT_URL_SQS",
    "PYTHONPATH",
    "STEPPAY_SECRET_TOKEN",
    "STEPPAY_SECRET_TOKEN_PARAM",
    "LAMBDA_TASK_ROOT",
    "_HANDLER",
    "POWERTOOLS_TRACE_DISABLED",
    "EXTRA_FROM_TEST",
]

logger = logging.getLogger()


def handler(event: dict[str, Any], context: Any) -> Any:
    print(f"echo handling {event.get('routeKey')}")
    logger.warning("a warning through the root logger")
    sys.stderr.write("a line on stderr\n")
    route = event.get("routeKey")
    if route == "POST /respond":
        return json.loads(event["body"])["response"]
    if route == "GET /slow":
        time.sleep(float((event.get("queryStringParameters") or {}).get("seconds", "1")))
        return {"pid": os.getpid()}
    assert fixture_helpers.record is not None
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json", "x-echo": "yes"},
        "body": json.dumps(
            {
                "event": event,
                "context": {
                    "aws_request_id": context.aws_request_id,
                    "function_name": context.function_name,
                    "memory_limit_in_mb": context.memory_limit_in_mb,
                    "invoked_function_arn": context.invoked_function_arn,
                    "remaining_ms": context.get_remaining_time_in_millis(),
                },
                "env": {key: os.environ.get(key) for key in ENV_KEYS},
                "pid": os.getpid(),
                "cwd": os.getcwd(),
                "sys_path0": sys.path[:3],
            }
        ),
    }
