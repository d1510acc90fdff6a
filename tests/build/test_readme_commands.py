"""The README's commands work on a fresh clone: every `make` target it names exists, and the
repository's own packages are installed (editable, by scripts/bootstrap.sh) rather than reached
through PYTHONPATH strings in the Makefile, the README or the docs."""

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


PACKAGES = {  # import name -> the source directory its editable install must resolve to
    "steppay": ROOT / "layers" / "steppay" / "steppay",
    "steppay_local": ROOT / "local" / "steppay_local",
    "steppay_sandbox": ROOT / "sandbox" / "steppay_sandbox",
    "steppay_demo": ROOT / "demo" / "steppay_demo",
    "steppay_merchant": ROOT / "merchant" / "steppay_merchant.py",
}
COMMANDS = ("steppay-local", "steppay-sandbox", "steppay-demo")


def test_no_command_reaches_the_repository_through_pythonpath() -> None:
    documents = [ROOT / "Makefile", ROOT / "README.md", ROOT / "CONTRIBUTING.md", *ROOT.glob("docs/*.md")]
    documents += [ROOT / d / "README.md" for d in ("local", "demo", "sandbox")]
    for document in documents:
        for line in document.read_text(encoding="utf-8").splitlines():
            assert not re.search(r"(PYTHONPATH|MYPYPATH)=\S", line), f"{document.name}: {line.strip()}"


def test_the_packages_are_installed_from_this_repository() -> None:
    # A fresh interpreter outside the repository, without pytest's `pythonpath`: only the
    # virtualenv's own site-packages (the editable installs) can make these importable.
    import json
    import os
    import subprocess
    import sys

    code = (
        "import importlib.util, json; "
        f"print(json.dumps({{n: importlib.util.find_spec(n).origin for n in {sorted(PACKAGES)!r}}}))"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd="/", env=env, capture_output=True, text=True, timeout=60, check=True
    )
    origins = json.loads(result.stdout)
    for name, source in PACKAGES.items():
        found = Path(origins[name])
        assert found == source or source in found.parents, f"{name} imports from {found}, not {source}"
    for command in COMMANDS:
        assert (ROOT / ".venv" / "bin" / command).exists(), f"{command} is not installed in .venv"
