"""The README's commands work on a fresh clone: every `make` target it names exists, and every
module it runs from this repository is given its PYTHONPATH (a fresh clone installs nothing
into the virtualenv's path)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
MAKEFILE = (ROOT / "Makefile").read_text(encoding="utf-8")
LOCAL_MODULES = ("steppay_local", "steppay_sandbox", "steppay_demo", "bench.", "scripts.")


def test_every_make_target_the_readme_names_exists() -> None:
    # In inline code (`make run`, `BURST_RENEWALS=n make burst`) or at the start of a code line.
    named = set(re.findall(r"`(?:[A-Z_]+=\S+ )*make ([a-z][a-z-]*)", README))
    named |= set(re.findall(r"^\s*make ([a-z][a-z-]*)", README, flags=re.MULTILINE))
    assert {"run", "test", "tap", "reconcile"} <= named  # the scan sees the README's commands
    declared = set(re.findall(r"^([a-z][a-z-]*):", MAKEFILE, flags=re.MULTILINE))
    assert named <= declared, sorted(named - declared)


def test_modules_from_this_repository_are_run_with_their_path() -> None:
    lines = [line for line in README.splitlines() if re.search(r"python3? -m (\S+)", line)]
    for line in lines:
        module = re.search(r"python3? -m (\S+)", line).group(1)  # type: ignore[union-attr]
        if module.startswith(LOCAL_MODULES):
            assert "PYTHONPATH=" in line, f"README runs {module} without PYTHONPATH: {line.strip()}"
