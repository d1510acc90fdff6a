"""The local StepPay sandbox: a stand-in for StepPay's API, pay page and webhooks.

``SandboxServer`` (in ``steppay_sandbox.server``) is the entry point; ``python -m
steppay_sandbox`` runs it or drives a running one. See ``sandbox/README.md``.
"""

from steppay_sandbox.server import SandboxServer
from steppay_sandbox.webhooks import sign

__all__ = ["SandboxServer", "sign"]
__version__ = "1.0.0"
