"""Regenerate `requirements.lock`: the layer's dependencies pinned and hashed for the Lambda runtime.

    make -C layers/steppay lock          # = python3 lock.py (needs PyPI, run from anywhere)

What it does:

1. Asks pip to resolve `requirements.txt` for the runtime the layer runs on (CPython 3.13,
   `manylinux2014_aarch64`, wheels only) without installing anything
   (`pip install --dry-run --report`).
2. Writes every resolved distribution as `name==version --hash=sha256:<the wheel pip chose>`,
   sorted by name, with the packages that asked for it.
3. Leaves out what the Lambda runtime already provides and the layer must not shadow: boto3's
   own stack (`botocore`, `s3transfer`, and `python-dateutil`/`six`, which only botocore
   needs). `aws-xray-sdk` (Powertools' tracer extra) asks for botocore; the runtime's one is
   used. The layer is installed with `--no-deps`, so nothing left out here is pulled back in;
   `tests/build` checks that the layer plus the runtime's boto3 satisfy every requirement.

pip evaluates environment markers for the machine it runs on (not the target platform); none of
the layer's dependencies uses a platform marker today, and `tests/build` would fail if a wheel
for another platform slipped in.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "requirements.txt"
LOCK = HERE / "requirements.lock"

PYTHON_VERSION = "3.13"
PLATFORM = "manylinux2014_aarch64"
ABI = "cp313"
# Provided by the python3.13 Lambda runtime (boto3 and what only it needs): never in the layer.
RUNTIME_PROVIDED = frozenset({"boto3", "botocore", "s3transfer", "python-dateutil", "six"})

HEADER = f"""\
# The StepPay layer's runtime dependencies, pinned and hashed for CPython {PYTHON_VERSION} on
# {PLATFORM} (the python3.13 arm64 Lambda runtime). Generated from requirements.txt by
# layers/steppay/lock.py; do not edit by hand. Regenerate (needs PyPI):
#
#     make -C layers/steppay lock
#
# Installed with `pip install --no-deps --require-hashes --only-binary=:all: --no-compile
# --platform {PLATFORM} --implementation cp --python-version {PYTHON_VERSION} --abi {ABI}`
# (layers/steppay/Makefile). Left out on purpose, because the Lambda runtime provides them
# with boto3: {", ".join(sorted(RUNTIME_PROVIDED))}.
"""


def resolve(requirements: Path) -> list[dict[str, object]]:
    """pip's resolution of `requirements` for the target runtime (its `--report` install list)."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        command = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",
            "--disable-pip-version-check",
            "--quiet",
            "--report",
            str(report),
            "--target",
            str(Path(tmp) / "target"),
            "--platform",
            PLATFORM,
            "--implementation",
            "cp",
            "--python-version",
            PYTHON_VERSION,
            "--abi",
            ABI,
            "--only-binary=:all:",
            "-r",
            str(requirements),
        ]
        subprocess.run(command, check=True)  # noqa: S603 - our own interpreter, fixed arguments
        data = json.loads(report.read_text(encoding="utf-8"))
    install: list[dict[str, object]] = data["install"]
    return install


def render(install: list[dict[str, object]]) -> str:
    names: dict[str, str] = {}
    wanted_by: dict[str, set[str]] = {}
    lines: dict[str, str] = {}
    for item in install:
        metadata = item["metadata"]
        download = item["download_info"]
        assert isinstance(metadata, dict) and isinstance(download, dict)
        name: str = canonicalize_name(str(metadata["name"]))
        names[name] = name
        url = str(download["url"])
        if not url.endswith(".whl"):
            raise SystemExit(f"{name}: pip chose {url}, which is not a wheel")
        digest = download.get("archive_info", {}).get("hashes", {}).get("sha256")
        if not digest:
            raise SystemExit(f"{name}: the index gave no sha256 for {url}")
        lines[name] = f"{name}=={metadata['version']} \\\n    --hash=sha256:{digest}"
        extras = item.get("requested_extras") or []
        assert isinstance(extras, list)
        for spec in metadata.get("requires_dist", []) or []:
            requirement = Requirement(str(spec))
            if requirement.marker is not None and not any(
                requirement.marker.evaluate({"extra": extra}) for extra in [*extras, ""]
            ):
                continue
            wanted_by.setdefault(canonicalize_name(requirement.name), set()).add(name)
        if item.get("requested"):
            wanted_by.setdefault(name, set()).add("requirements.txt")

    out = [HEADER]
    for name in sorted(lines):
        if name in RUNTIME_PROVIDED:
            continue
        sources = sorted(wanted_by.get(name, set()))
        out.append(lines[name])
        out.append(f"    # via {', '.join(sources) if sources else '?'}")
    return "\n".join(out) + "\n"


def main() -> None:
    LOCK.write_text(render(resolve(REQUIREMENTS)), encoding="utf-8")
    print(f"wrote {LOCK}")


if __name__ == "__main__":
    main()
