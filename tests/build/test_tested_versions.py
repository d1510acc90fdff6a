"""The tests run on the versions the layer ships.

`scripts/bootstrap.sh` installs the dev requirements constrained by the layer's lock; if the two
drift apart (a new dev tool pinning something else), the tests would vouch for versions that are
never deployed. This fails then.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

LOCK = Path(__file__).resolve().parents[2] / "layers" / "steppay" / "requirements.lock"
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^ \\]+)", re.MULTILINE)


def test_every_locked_package_is_installed_at_its_locked_version() -> None:
    pins = dict(PIN.findall(LOCK.read_text()))
    assert "pydantic" in pins and "aws-lambda-powertools" in pins, "the lock lists the layer's packages"
    drift = {
        name: (version, metadata.version(name))
        for name, version in pins.items()
        if metadata.version(name) != version
    }
    assert not drift, f"installed versions differ from requirements.lock (locked, installed): {drift}"
