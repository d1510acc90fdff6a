"""Helpers of the local-stack tests: the fixture template's config and what its functions recorded."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steppay_local.stack import LocalStackConfig

HERE = Path(__file__).resolve().parent
FIXTURE_TEMPLATE = HERE / "fixture_app" / "template.yaml"
ROOT = HERE.parents[1]
STACK_NAME = "fixture"


def fixture_config(record_dir: Path, **overrides: Any) -> LocalStackConfig:
    """A stack of the fixture template on free ports, without the StepPay sandbox, retrying quickly."""
    settings: dict[str, Any] = {
        "root": ROOT,
        "template_path": FIXTURE_TEMPLATE,
        "stack_name": STACK_NAME,
        "api_port": 0,
        "dynamodb_port": 0,
        "moto_port": 0,
        "data_dir": None,
        "sandbox": False,
        "parameter_overrides": {"RecordDir": str(record_dir)},
        "env_overrides": {"EXTRA_FROM_TEST": "extra"},
        "stream_retry_backoff": (0.05, 0.2),
        "async_retry_delay": 1.0,
        "reload_on_change": False,
    }
    settings.update(overrides)
    return LocalStackConfig(**settings)


@dataclass
class Recorder:
    """Reads what the fixture functions wrote into $RECORD_DIR."""

    directory: Path

    def lines(self, name: str) -> list[dict[str, Any]]:
        path = self.directory / f"{name}.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def wait(
        self, name: str, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 20.0
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            lines = self.lines(name)
            if predicate(lines) or time.monotonic() > deadline:
                return lines
            time.sleep(0.1)
