"""The local stack: everything needed to run the SAM bundle on one machine, without Docker.

DynamoDB Local (real streams), moto in server mode (EventBridge, SQS, SSM, Secrets Manager), the
StepPay sandbox, the HTTP API of ``template.yaml`` and the event source mappings that feed the
bundle's functions, each running in its own warm worker process like a Lambda container.
"""

from __future__ import annotations

__all__ = ["LOOPBACK", "REPO_ROOT"]

from pathlib import Path

LOOPBACK = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parents[2]
