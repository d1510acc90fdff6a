"""The bare floor: the least a Python Lambda function doing our job can import at its cold start.

A handler module that imports some of the standard library, creates a DynamoDB client (boto3's
default session, region given, no call made) and a `requests.Session`, and nothing else: no
Powertools, no pydantic, none of our code. `bench.coldstart` imports it in a fresh process laid
out like Lambda's (`bench.lambda_env`: boto3 from the runtime, requests from the layer) next to
each function's handler; the cold-start goals are ratios to it.

Standard library and those two packages only (tests/build/test_bench_cold.py checks it).
"""

import base64
import datetime
import decimal
import hashlib
import hmac
import json
import logging
import os
import re
import time
import urllib.parse
import uuid
from typing import Any

import boto3
import requests

logger = logging.getLogger(__name__)
dynamodb = boto3.client("dynamodb", region_name=os.environ.get("AWS_REGION", "ap-northeast-2"))
http = requests.Session()

# The standard library a handler of ours uses, touched so that no import is unused.
_USED = (base64, datetime, decimal, hashlib, hmac, re, time, urllib.parse, uuid)


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"statusCode": 200, "body": json.dumps({"ok": True})}


if __name__ == "__main__":  # what it imported: python bench/bare_floor.py
    import sys

    print(json.dumps(sorted(sys.modules)))
