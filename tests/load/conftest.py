"""The concurrency and load suite runs against the session's local stack (`local_stack`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hostile.harness import Harness, restore_sandbox


@pytest.fixture(scope="session")
def load_harness(local_stack: Any, reliability: Any) -> Harness:
    return Harness(local_stack, reliability)


@pytest.fixture(autouse=True)
def _sandbox_back_to_defaults(load_harness: Harness) -> Iterator[None]:
    restore_sandbox(load_harness.stack)
    yield
    restore_sandbox(load_harness.stack)
