"""The shared StepPay layer.

Import what you use from its modules (`steppay.client`, `steppay.models`, ...): this package
imports nothing itself, so that a function's cold start loads only what it needs.
"""

__version__ = "0.1.0"
