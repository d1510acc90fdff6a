"""The ``steppay-sandbox`` wheel works in a merchant's own project, outside this repository.

The wheel is built as ``make dist`` builds it (``sandbox/build_dist.py``, into a temporary
directory, not ``dist/``), checked (metadata: no ``Requires-Dist``, imports: standard library only
apart from pytest in the plugin; entry points; package data), then installed with pytest from
the package index into a fresh virtualenv in a temporary directory outside the repository. A
small merchant test suite written there uses the plugin's fixtures and is run by that
virtualenv's pytest, with the merchant project as its working directory and no ``PYTHONPATH``:
nothing of this repository is importable, the plugin is loaded through its ``pytest11`` entry
point. The console script is run from that virtualenv too.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from email.parser import HeaderParser
from pathlib import Path

import pytest

import steppay_sandbox

ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = ROOT / "sandbox" / "build_dist.py"
MERCHANT_TESTS = 7  # test_merchant.py and the README's example
README = ROOT / "sandbox" / "README.md"
# Environment variables that would let the merchant's run see this repository or change pytest's.
SCRUBBED = (
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONSTARTUP",
    "PYTHONSAFEPATH",
    "VIRTUAL_ENV",
    "PYTEST_ADDOPTS",
    "PYTEST_PLUGINS",
    "PYTEST_DISABLE_PLUGIN_AUTOLOAD",
    "COVERAGE_PROCESS_START",
)


# -- building ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    outdir = tmp_path_factory.mktemp("sandbox-dist")
    before = set((ROOT / "sandbox").iterdir())
    result = subprocess.run(
        [sys.executable, str(BUILD_SCRIPT), "--outdir", str(outdir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    wheels = sorted(outdir.glob("*.whl"))
    sdists = sorted(outdir.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, sorted(p.name for p in outdir.iterdir())
    # Nothing of the build (build/, *.egg-info) is left in the working tree.
    assert set((ROOT / "sandbox").iterdir()) <= before
    return {"wheel": wheels[0], "sdist": sdists[0]}


def _dist_info(wheel: zipfile.ZipFile, name: str) -> str:
    (path,) = [n for n in wheel.namelist() if n.endswith(f".dist-info/{name}")]
    return wheel.read(path).decode("utf-8")


def test_the_wheel_is_named_and_versioned_from_one_place(built: dict[str, Path]) -> None:
    version = steppay_sandbox.__version__
    assert built["wheel"].name == f"steppay_sandbox-{version}-py3-none-any.whl"
    assert built["sdist"].name == f"steppay_sandbox-{version}.tar.gz"
    with zipfile.ZipFile(built["wheel"]) as wheel:
        metadata = HeaderParser().parsestr(_dist_info(wheel, "METADATA"))
    assert metadata["Name"] == "steppay-sandbox"
    assert metadata["Version"] == version
    assert metadata["Requires-Python"] == ">=3.11"
    # The version is written nowhere else in the packaging.
    pyproject = (ROOT / "sandbox" / "pyproject.toml").read_text(encoding="utf-8")
    assert 'dynamic = ["version"]' in pyproject
    assert not re.search(r"^version\s*=\s*\"", pyproject, flags=re.MULTILINE)


def test_the_wheel_needs_nothing_but_the_standard_library(built: dict[str, Path]) -> None:
    with zipfile.ZipFile(built["wheel"]) as wheel:
        metadata = HeaderParser().parsestr(_dist_info(wheel, "METADATA"))
        assert metadata.get_all("Requires-Dist") is None
        sources = {n: wheel.read(n).decode("utf-8") for n in wheel.namelist() if n.endswith(".py")}
    outside: dict[str, set[str]] = {}
    for name, text in sources.items():
        for node in ast.walk(ast.parse(text, name)):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ("steppay_sandbox", "__future__"):
                    outside.setdefault(name, set()).add(top)
    # pytest only in the plugin, which pytest itself loads.
    assert outside == {"steppay_sandbox/pytest_plugin.py": {"pytest"}}


def test_the_wheel_declares_its_script_plugin_and_data(built: dict[str, Path]) -> None:
    with zipfile.ZipFile(built["wheel"]) as wheel:
        names = set(wheel.namelist())
        entry_points = _dist_info(wheel, "entry_points.txt")
    assert "[console_scripts]\nsteppay-sandbox = steppay_sandbox.cli:main" in entry_points
    assert "[pytest11]\nsteppay_sandbox = steppay_sandbox.pytest_plugin" in entry_points
    packaged = {n.removeprefix("steppay_sandbox/") for n in names if n.startswith("steppay_sandbox/")}
    source = ROOT / "sandbox" / "steppay_sandbox"
    expected = {p.name for p in source.iterdir() if p.suffix in (".py", ".json") or p.name == "py.typed"}
    assert packaged == expected
    assert {"catalogue.json", "py.typed", "pytest_plugin.py", "testing.py"} <= packaged
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or n.startswith("tests/")]


# -- a merchant's project ------------------------------------------------------------------------

MERCHANT_PYPROJECT = """\
[project]
name = "merchant-shop"
version = "0.0.1"

[tool.pytest.ini_options]
testpaths = ["tests"]
addopts = "-p no:cacheprovider"
"""

MERCHANT_TEST = '''\
"""A merchant's own tests, against the StepPay sandbox from the installed wheel."""

import base64
import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request

import steppay_sandbox

ONE_TIME_ITEM = {"productCode": "product_onetime_demo", "priceCode": "price_onetime_demo",
                 "currency": "KRW", "minimumQuantity": 1}
MONTHLY_ITEM = {"productCode": "product_subscription_demo", "priceCode": "price_monthly_demo",
                "currency": "KRW", "minimumQuantity": 1}


def steppay(sandbox, method, path, body=None):
    """What the merchant's own StepPay client does: the API with the Secret-Token header."""
    request = urllib.request.Request(
        sandbox.url + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Secret-Token": sandbox.secret_token, "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def post_webhook(url, body, signature):
    request = urllib.request.Request(
        url, data=body, method="POST",
        headers={"Content-Type": "application/json", "Steppay-Signature": signature},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def signed(body, key, timestamp):
    digest = hmac.new(key.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).digest()
    return f"timestamp={timestamp},key={base64.b64encode(digest).decode()}"


def test_the_sandbox_comes_from_the_installed_wheel():
    assert "site-packages" in steppay_sandbox.__file__


def test_checkout(steppay_sandbox, steppay_control, steppay_webhook_receiver):
    # The shopper may pick 1 to 5 on the pay page; the control API picks 2 for them.
    item = {**ONE_TIME_ITEM, "maximumQuantity": 5}
    status, order = steppay(steppay_sandbox, "POST", "/api/v1/orders", {"customerId": 1001, "items": [item]})
    assert status == 201, order
    code = order["orderCode"]

    paid = steppay_control.complete(code, "success", quantity=2)
    assert paid["paidAmount"] == 30000

    status, detail = steppay(steppay_sandbox, "GET", f"/api/v1/orders/{code}")
    assert status == 200
    assert detail["paymentDate"] is not None and detail["leftAmount"] == 0
    assert [item["status"] for item in detail["items"]] == ["PAID"]

    receiver = steppay_webhook_receiver
    (completed,) = receiver.wait_for(1, timeout=10, event="order.payment_completed", code=code)
    assert completed.data["paidAmount"] == 30000
    (payment,) = receiver.wait_for(1, timeout=10, event="payment.completed", orderId=order["id"])
    assert payment.data["paidAmount"] == 30000 and payment.signature.startswith("timestamp=")
    assert receiver.rejected == []


def test_a_forged_signature_is_rejected(steppay_sandbox, steppay_webhook_receiver):
    now = int(time.time())
    body = json.dumps({"timestamp": now, "version": "v1", "event": "payment.completed",
                       "data": {"orderId": 1, "paidAmount": 1}}).encode()
    url = steppay_webhook_receiver.url
    assert post_webhook(url, body, signed(body, "not-the-sandbox-key", now)) == 401
    assert post_webhook(url, body, "timestamp=1,key=???") == 401
    assert [d.reason for d in steppay_webhook_receiver.rejected] == ["mismatch", "malformed"]
    assert steppay_webhook_receiver.received == []
    # The same body signed with the sandbox's key passes: the check is real.
    assert post_webhook(url, body, signed(body, steppay_sandbox.webhook_key, now)) == 200
    assert steppay_webhook_receiver.events() == ["payment.completed"]


def test_a_subscription_renews_refunds_and_cancels(
    steppay_sandbox, steppay_control, steppay_webhook_receiver
):
    status, order = steppay(steppay_sandbox, "POST", "/api/v1/orders",
                            {"customerId": 1001, "items": [MONTHLY_ITEM]})
    assert status == 201, order
    paid = steppay_control.complete(order["orderCode"])
    subscription_id = paid["subscriptions"][0]["id"]
    renewal = steppay_control.renew(subscription_id, "success")
    assert renewal["type"] == "RECURRING"
    refunded = steppay_control.refund(order["orderCode"], amount=900)
    assert refunded["returnedAmount"] == 900
    assert steppay_control.set_subscription_status(subscription_id, "CANCELED")["status"] == "CANCELED"
    steppay_webhook_receiver.wait_for(1, event="subscription.created", subscriptionId=subscription_id)
    steppay_webhook_receiver.wait_for(1, event="subscription.updated", subscriptionId=subscription_id,
                                      status="CANCELED")
    steppay_webhook_receiver.wait_for(1, event="payment.canceled")
    delivered = steppay_control.webhooks(orderCode=order["orderCode"], outcome="delivered")
    events = {d["event"] for d in delivered}
    assert {"order.created", "order.payment_completed", "payment.completed"} <= events


def test_faults_and_a_rotated_key(steppay_sandbox, steppay_control, steppay_webhook_receiver):
    steppay_control.add_fault(path="/api/v1/products", status=503, count=1)
    assert steppay(steppay_sandbox, "GET", "/api/v1/products")[0] == 503
    assert steppay(steppay_sandbox, "GET", "/api/v1/products")[0] == 200
    steppay_control.configure(webhookKey="rotated-key")
    status, order = steppay(steppay_sandbox, "POST", "/api/v1/orders",
                            {"customerId": 1001, "items": [ONE_TIME_ITEM]})
    assert status == 201
    (stale,) = steppay_webhook_receiver.wait_for_rejected(1)[:1]
    assert stale.reason == "mismatch" and stale.event == "order.created"
    assert steppay_webhook_receiver.received == []


def test_every_test_starts_from_a_clean_sandbox(steppay_control):
    state = steppay_control.state()
    assert state["orders"] == [] and state["faults"] == []
    assert steppay_control.webhooks() == []
    assert steppay_control.config()["webhookUrl"] is None
'''


def readme_example() -> str:
    """The copy-paste example of sandbox/README.md (the python block with ``def test_checkout``)."""
    blocks = re.findall(
        r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), re.MULTILINE | re.DOTALL
    )
    (example,) = [b for b in blocks if "def test_checkout(steppay_sandbox" in b]
    return str(example)


def _clean_env(venv: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    return env


@pytest.fixture(scope="module")
def merchant(built: dict[str, Path]) -> Iterator[dict[str, Path]]:
    """A fresh virtualenv with pytest and the wheel, and a merchant project, in a temporary
    directory outside the repository."""
    base = Path(tempfile.mkdtemp(prefix="steppay-merchant-")).resolve()
    try:
        assert not base.is_relative_to(ROOT)
        venv, project = base / "venv", base / "shop"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
        python = venv / "bin" / "python"
        env = _clean_env(venv)
        # pytest from the package index (the version this repository tests with), the wheel by path.
        install = subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                f"pytest=={pytest.__version__}",
                str(built["wheel"]),
            ],
            cwd=base,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert install.returncode == 0, install.stdout + install.stderr
        (project / "tests").mkdir(parents=True)
        (project / "pyproject.toml").write_text(MERCHANT_PYPROJECT, encoding="utf-8")
        (project / "tests" / "test_merchant.py").write_text(MERCHANT_TEST, encoding="utf-8")
        (project / "tests" / "test_readme_example.py").write_text(readme_example(), encoding="utf-8")
        yield {"venv": venv, "python": python, "project": project}
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_merchant_suite_uses_the_fixtures_from_the_installed_wheel(merchant: dict[str, Path]) -> None:
    env = _clean_env(merchant["venv"])
    # What the merchant's interpreter imports: the installed copy, never this repository's.
    where = subprocess.run(
        [str(merchant["python"]), "-c", "import steppay_sandbox; print(steppay_sandbox.__file__)"],
        cwd=merchant["project"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(merchant["venv"]) and not Path(where).is_relative_to(ROOT)

    result = subprocess.run(
        [str(merchant["python"]), "-m", "pytest", "-v"],
        cwd=merchant["project"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert re.search(rf"\b{MERCHANT_TESTS} passed\b", output), output
    assert not re.search(r"\b(failed|errors?|skipped|warnings?)\b", output.splitlines()[-1]), output
    assert f"steppay-sandbox: {steppay_sandbox.__version__}" in output  # the plugin's report header
    assert f"rootdir: {merchant['project']}" in output


def test_the_console_script_runs_from_the_virtualenv(merchant: dict[str, Path]) -> None:
    env = _clean_env(merchant["venv"])
    script = merchant["venv"] / "bin" / "steppay-sandbox"
    assert script.is_file()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(script), *args],
            cwd=merchant["project"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    helped = run("--help")
    assert helped.returncode == 0 and helped.stdout.startswith("usage: steppay-sandbox"), helped
    assert "serve" in helped.stdout and "complete" in helped.stdout
    versioned = run("--version")
    assert versioned.stdout.strip() == f"steppay-sandbox {steppay_sandbox.__version__}", versioned

    server = subprocess.Popen(
        [str(script), "serve", "--port", "0"],
        cwd=merchant["project"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        match = re.match(r"StepPay sandbox on (http://127\.0\.0\.1:\d+) ", first)
        assert match, first
        health = run("--url", match.group(1), "health")
        assert health.returncode == 0 and '"ok"' in health.stdout, health
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
    assert server.returncode == 0
