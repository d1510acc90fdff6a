"""``python -m steppay_sandbox``: the serve command and the control CLI."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from fixtures.sandbox import SandboxClient

from steppay_sandbox import cli

REPO = Path(__file__).resolve().parents[2]


def run(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> tuple[int, Any]:
    code = cli.main(["--url", url, *args])
    out = capsys.readouterr().out
    return code, json.loads(out)


def test_control_commands(sandbox_client: SandboxClient, capsys: pytest.CaptureFixture[str]) -> None:
    url = sandbox_client.base_url
    order = sandbox_client.create_order("recurring")
    code, paid = run(capsys, url, "complete", order["orderCode"], "--outcome", "success")
    assert code == 0 and paid["paymentDate"] is not None
    sub_id = str(paid["subscriptions"][0]["id"])
    code, renewal = run(capsys, url, "renew", sub_id, "--outcome", "failure")
    assert code == 0 and renewal["type"] == "RECURRING" and renewal["paymentDate"] is None
    code, sub = run(capsys, url, "status", sub_id, "CANCELED")
    assert code == 0 and sub["status"] == "CANCELED"
    code, refunded = run(capsys, url, "refund", order["orderCode"], "--amount", "900")
    assert code == 0 and refunded["returnedAmount"] == 900
    code, log = run(capsys, url, "webhooks", "--order-code", order["orderCode"])
    assert code == 0 and {"order.created", "payment.completed"} <= {e["event"] for e in log["deliveries"]}
    code, again = run(capsys, url, "complete", order["orderCode"])
    assert code == 1 and again["errorCode"] == "ORDER_ALREADY_PAID"


def test_fault_commands(sandbox_client: SandboxClient, capsys: pytest.CaptureFixture[str]) -> None:
    url = sandbox_client.base_url
    code, added = run(capsys, url, "fault", "--path", "/api/v1/products", "--status", "503", "--count", "2")
    assert code == 0 and added["fault"]["status"] == 503 and added["fault"]["count"] == 2
    code, hook = run(capsys, url, "fault", "--webhooks", "delay", "--delay-ms", "50")
    assert code == 0 and hook["fault"]["webhooks"] == "delay"
    code, listed = run(capsys, url, "faults")
    assert len(listed["faults"]) == 2
    assert sandbox_client.api("GET", "/api/v1/products").status_code == 503
    code, cleared = run(capsys, url, "clear-faults")
    assert code == 0 and cleared == {"faults": []}
    assert sandbox_client.api("GET", "/api/v1/products").status_code == 200
    assert cli.main(["--url", url, "fault"]) == 2


def test_config_and_health_commands(
    sandbox_client: SandboxClient, capsys: pytest.CaptureFixture[str]
) -> None:
    url = sandbox_client.base_url
    code, config = run(
        capsys, url, "config", "--webhook-url", "http://127.0.0.1:9/x", "--webhook-versions", "v2,v1"
    )
    assert (
        code == 0
        and config["webhookUrl"] == "http://127.0.0.1:9/x"
        and config["webhookVersions"] == ["v2", "v1"]
    )
    code, shown = run(capsys, url, "config")
    assert shown == config
    assert run(capsys, url, "health") == (0, {"status": "ok"})


def test_unreachable_sandbox(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--url", "http://127.0.0.1:9", "health"]) == 1
    assert "cannot reach" in capsys.readouterr().err


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO / "sandbox"),
        "SANDBOX_HOST": "127.0.0.1",
        "SANDBOX_PORT": "0",
        "SANDBOX_SECRET_TOKEN": "env-token",
        "SANDBOX_WEBHOOK_VERSIONS": "v2,v1",
        "SANDBOX_WEBHOOK_URL": "http://127.0.0.1:9/hooks",
        "SANDBOX_STATE_FILE": str(tmp_path / "state.json"),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "steppay_sandbox", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert match, line
        yield process, match.group(0)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def test_serve_reads_its_settings_from_the_environment(
    served: tuple[subprocess.Popen[str], str], tmp_path: Path
) -> None:
    process, url = served
    assert requests.get(f"{url}/api/v1/products", headers={"Secret-Token": "env-token"}, timeout=10).ok
    default = requests.get(
        f"{url}/api/v1/products", headers={"Secret-Token": "sandbox-secret-token"}, timeout=10
    )
    assert default.status_code == 403
    config = requests.get(f"{url}/_sandbox/config", timeout=10).json()
    assert config["webhookVersions"] == ["v2", "v1"] and config["webhookUrl"] == "http://127.0.0.1:9/hooks"
    client = SandboxClient(url, token="env-token")
    client.create_order()
    assert (tmp_path / "state.json").exists()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0


def test_serve_defaults() -> None:
    args = cli.build_parser().parse_args(["serve"])
    expected = {
        "host": "127.0.0.1",
        "port": 8181,
        "secret_token": "sandbox-secret-token",
        "webhook_key": "sandbox-webhook-key",
        "webhook_url": None,
        "webhook_versions": "v2",
        "webhook_v1": False,
        "state_file": None,
    }
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SANDBOX_")}
    if clean != dict(os.environ):
        pytest.skip("SANDBOX_* variables are set in this environment")
    assert {k: getattr(args, k) for k in expected} == expected
    assert cli.build_parser().parse_args(["health"]).url == "http://127.0.0.1:8181"
