"""``steppay_sandbox.testing`` in-process (the signature check, the control client's errors) and the
plugin's options: the cases the wheel test's merchant suite does not reach."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from steppay_sandbox.server import SandboxServer
from steppay_sandbox.testing import SandboxControl, SandboxError, WebhookReceiver, verify_signature
from steppay_sandbox.webhooks import sign

ROOT = Path(__file__).resolve().parents[2]
BODY = b'{"timestamp":1700000000,"version":"v1","event":"payment.completed","data":{}}'


def test_verify_signature_accepts_the_sandboxs_own_signature() -> None:
    now = int(time.time())
    assert verify_signature(BODY, sign(BODY, "k", now), "k") is None
    assert verify_signature(BODY, sign(BODY, "k", 1_700_000_000), "k", tolerance=None) is None


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing"),
        ("", "missing"),
        ("timestamp=abc,key=AAAA", "malformed"),
        ("timestamp=1700000000", "malformed"),
        ("timestamp=1700000000,key=not base64!", "malformed"),
        (sign(BODY, "other-key", 1_700_000_000), "mismatch"),
        (sign(BODY + b" ", "k", 1_700_000_000), "mismatch"),
        (sign(BODY, "k", 1_700_000_000), "stale"),
    ],
)
def test_verify_signature_says_why_not(header: str | None, reason: str) -> None:
    assert verify_signature(BODY, header, "k") == reason


@pytest.fixture
def server() -> Iterator[SandboxServer]:
    with SandboxServer(port=0) as running:
        yield running


def test_control_errors_carry_steppays_error_body(server: SandboxServer) -> None:
    control = SandboxControl(server.url, server.secret_token)
    assert control.health()
    with pytest.raises(SandboxError) as raised:
        control.complete("order_doesnotexist")
    assert raised.value.status == 404 and raised.value.error_code == "ORDER_NOT_FOUND"
    assert control.api("GET", "/api/v1/products")[0] == 200
    assert SandboxControl(server.url, "wrong").api("GET", "/api/v1/products")[0] == 403
    with pytest.raises(ValueError, match="secret_token"):
        SandboxControl(server.url).api("GET", "/api/v1/products")
    assert not SandboxControl("http://127.0.0.1:9", timeout=1).health()


def test_the_receiver_takes_v1_unsigned_and_rejects_v2_unsigned(server: SandboxServer) -> None:
    with WebhookReceiver(key=server.webhook_key) as receiver:

        def post(body: object) -> int:
            request = urllib.request.Request(receiver.url, data=json.dumps(body).encode(), method="POST")
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    return int(response.status)
            except urllib.error.HTTPError as exc:
                return exc.code

        assert post({"webHookType": "PAYMENT", "orderId": 1}) == 200
        assert post({"timestamp": 1, "version": "v1", "event": "payment.completed", "data": {}}) == 401
        assert [d.data for d in receiver.unsigned] == [{"webHookType": "PAYMENT", "orderId": 1}]
        assert [d.reason for d in receiver.rejected] == ["missing"]
        with pytest.raises(TimeoutError, match=r"payment\.completed"):
            receiver.wait_for(1, timeout=0.1, event="payment.completed")


PLUGIN_PROJECT_TEST = """
import json
import urllib.request


def test_options_reach_the_server(steppay_sandbox, steppay_sandbox_config, pytestconfig):
    assert steppay_sandbox.port == int(pytestconfig.getoption("steppay_sandbox_port"))
    assert steppay_sandbox.secret_token == "merchant-token"  # from the conftest override
    request = urllib.request.Request(
        steppay_sandbox.url + "/api/v1/customers", headers={"Secret-Token": "merchant-token"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        names = [c["name"] for c in json.loads(response.read())["content"]]
    assert "Merchant Customer" in names  # the ini's catalogue
"""

PLUGIN_PROJECT_CONFTEST = """
import pytest


@pytest.fixture(scope="session")
def steppay_sandbox_config(steppay_sandbox_config):
    return {**steppay_sandbox_config, "secret_token": "merchant-token"}
"""


def test_the_plugins_options_and_config_override(tmp_path: Path) -> None:
    catalogue = json.loads((ROOT / "sandbox" / "steppay_sandbox" / "catalogue.json").read_text("utf-8"))
    catalogue["customers"][0]["name"] = "Merchant Customer"
    (tmp_path / "shop-catalogue.json").write_text(json.dumps(catalogue), encoding="utf-8")
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\naddopts = -p no:cacheprovider\nsteppay_sandbox_catalogue = shop-catalogue.json\n",
        encoding="utf-8",
    )
    (tmp_path / "conftest.py").write_text(PLUGIN_PROJECT_CONFTEST, encoding="utf-8")
    (tmp_path / "test_options.py").write_text(PLUGIN_PROJECT_TEST, encoding="utf-8")
    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # only the plugin under test (and quick)
    env["PYTHONPATH"] = str(ROOT / "sandbox")  # the package's sources, not installed: load the plugin by name
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "steppay_sandbox.pytest_plugin",
            f"--steppay-sandbox-port={port}",
            str(tmp_path),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
