"""The fixture layer: proves a function's PYTHONPATH holds its layer."""

from __future__ import annotations

import json
import os
import threading
from typing import Any

_lock = threading.Lock()


def record(name: str, data: Any) -> None:
    """Append ``data`` as one JSON line to $RECORD_DIR/<name>.jsonl."""
    path = os.path.join(os.environ["RECORD_DIR"], f"{name}.jsonl")
    with _lock, open(path, "a", encoding="utf-8") as file:
        file.write(json.dumps(data) + "\n")


def bump(name: str) -> int:
    """A counter kept in $RECORD_DIR/<name>.count; returns the new value."""
    path = os.path.join(os.environ["RECORD_DIR"], f"{name}.count")
    with _lock:
        count = int(open(path).read()) if os.path.exists(path) else 0
        count += 1
        with open(path, "w") as file:
            file.write(str(count))
    return count
