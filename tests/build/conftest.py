"""The built artifact: one `sam build` per session into a temporary directory.

It runs as `make build` does (telemetry off, dummy AWS credentials, the virtualenv first on
PATH, `STEPPAY_WHEELHOUSE=.wheelhouse` when that folder holds the locked wheels, so the build
needs no network; without it pip fetches the locked wheels from PyPI). About 15 s on an idle
machine. `STEPPAY_SKIP_BUILD_TESTS=1` skips these tests locally; CI and `make test` run them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
WHEELHOUSE = ROOT / ".wheelhouse"
REPORT_FILE = ROOT / "test-artifacts" / "build-report.json"
BUILD_TIMEOUT = 600


def build_environment() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "SAM_CLI_TELEMETRY": "0",
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": "ap-northeast-2",
            "AWS_EC2_METADATA_DISABLED": "true",
            "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        }
    )
    env.pop("AWS_PROFILE", None)
    if any(WHEELHOUSE.glob("*.whl")):
        env["STEPPAY_WHEELHOUSE"] = str(WHEELHOUSE)
    return env


_summary: list[str] = []


@dataclass
class BuiltApp:
    build_dir: Path
    seconds: float
    env: dict[str, str]
    report: dict[str, object] = field(default_factory=dict)
    summary: list[str] = field(default_factory=lambda: _summary)

    @property
    def offline(self) -> bool:
        return "STEPPAY_WHEELHOUSE" in self.env

    @property
    def layer(self) -> Path:
        return self.build_dir / "StepPayLayer" / "python"

    def function(self, logical_id: str) -> Path:
        return self.build_dir / logical_id


@pytest.fixture(scope="session")
def built_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BuiltApp]:
    if os.environ.get("STEPPAY_SKIP_BUILD_TESTS") == "1":
        pytest.skip("STEPPAY_SKIP_BUILD_TESTS=1")
    sam = VENV_BIN / "sam"
    if not sam.exists():
        pytest.fail("aws-sam-cli is not installed in .venv (run scripts/bootstrap.sh)")
    build_dir = tmp_path_factory.mktemp("sam-build") / "build"
    env = build_environment()
    started = time.perf_counter()
    result = subprocess.run(
        [str(sam), "build", "--no-cached", "--build-dir", str(build_dir)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        pytest.fail(f"sam build failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    app = BuiltApp(build_dir, seconds, env)
    yield app
    REPORT_FILE.parent.mkdir(parents=True, exist_ok=True)
    REPORT_FILE.write_text(json.dumps(app.report, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    shutil.rmtree(build_dir, ignore_errors=True)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _summary:
        terminalreporter.write_sep("-", "built artifact (sam build)")
        for line in _summary:  # BuiltApp.summary
            terminalreporter.write_line(line)
