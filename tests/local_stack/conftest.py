"""A local stack built from tests/local_stack/fixture_app/template.yaml (not the bundle's template)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from local_stack.helpers import ROOT, Recorder, fixture_config

from steppay_local.dynamodb import DynamoDBLocal
from steppay_local.stack import LocalStack


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
