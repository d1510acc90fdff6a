"""A local stack built from tests/local_stack/fixture_app/template.yaml (not the bundle's template)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from steppay_local.dynamodb import DynamoDBLocal
from steppay_local.stack import LocalStack, LocalStackConfig

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


@pytest.fixture(scope="session")
def record_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("records")


@pytest.fixture(scope="session")
def fixture_stack(dynamodb_local: DynamoDBLocal, record_dir: Path) -> Iterator[LocalStack]:
    """The fixture stack, sharing the session's DynamoDB Local, with its own moto server."""
    log_file = ROOT / "test-artifacts" / "local-stack-fixture.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log_file.write_text("", encoding="utf-8")
    config = fixture_config(record_dir, dynamodb_endpoint=dynamodb_local.endpoint_url, log_file=log_file)
    stack = LocalStack(config).start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def recorder(record_dir: Path) -> Recorder:
    return Recorder(record_dir)


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]
