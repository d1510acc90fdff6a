"""The hostile-input suite runs against the session's local stack (`local_stack`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hostile.harness import Harness, restore_sandbox


@pytest.fixture(scope="session")
def harness(local_stack: Any, reliability: Any) -> Harness:
    return Harness(local_stack, reliability)


@pytest.fixture(autouse=True)
def _sandbox_back_to_defaults(harness: Harness, request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    restore_sandbox(harness.stack)
    if request.node.get_closest_marker("leaves_settled") is None:
        harness.dirty = True  # the next case settles and drains first
