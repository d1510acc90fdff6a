"""The README's backend calls, run as written against the local API: Python and Node.

Only what must differ locally is substituted: the API address, a fresh merchantRef (the session
shares one table) and the shop's host (the local stack allows redirects to localhost only). The
credentials come from the default chain, as on a merchant's backend: here the local stack's
dummy ones in the environment. The Node example installs its four packages from npm first.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from e2e.conftest import Shop, new_merchant_ref

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
PLACEHOLDER_API = "https://<api-id>.execute-api.ap-northeast-2.amazonaws.com/dev"
NODE_PACKAGES = re.search(r"`npm i ([^`]+)`", README).group(1).split()  # type: ignore[union-attr]


def _block(language: str, after: str) -> str:
    start = README.index(after)
    match = re.search(rf"```{language}\n(.*?)```", README[start:], flags=re.DOTALL)
    assert match, f"no {language} block after {after!r}"
    return match.group(1)


def _localised(code: str, shop: Shop, ref: str) -> str:
    assert PLACEHOLDER_API in code and "order-2026-0042" in code and "https://shop.example.com" in code
    return (
        code.replace(PLACEHOLDER_API, shop.stack.api_url)
        .replace("order-2026-0042", ref)
        .replace("https://shop.example.com", "http://localhost:8080")
    )


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_EC2_METADATA_DISABLED": "true"}
    )
    return env


def test_the_python_example_registers_a_checkout(shop: Shop) -> None:
    ref = new_merchant_ref("readme-py")
    code = (
        _localised(_block("python", "\nPython ("), shop, ref) + "\nimport json; print(json.dumps(checkout))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**_env(), "PYTHONPATH": str(ROOT / "merchant")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    checkout = json.loads(result.stdout.strip().splitlines()[-1])
    assert checkout["merchantRef"] == ref
    assert checkout["payUrl"].startswith(shop.stack.sandbox_url)
    assert shop.record(checkout["orderCode"])["registration"]["merchant_ref"] == ref  # type: ignore[index]


@pytest.mark.skipif(shutil.which("npm") is None or shutil.which("node") is None, reason="no Node.js here")
def test_the_node_example_registers_a_checkout(shop: Shop, tmp_path: Path) -> None:
    install = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--silent", *NODE_PACKAGES],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert install.returncode == 0, install.stderr[-2000:]
    ref = new_merchant_ref("readme-node")
    code = _localised(_block("js", "\nNode ("), shop, ref) + "\nconsole.log(JSON.stringify(checkout));\n"
    script = tmp_path / "register.mjs"
    script.write_text(code, encoding="utf-8")
    result = subprocess.run(
        ["node", str(script)],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    checkout = json.loads(result.stdout.strip().splitlines()[-1])
    assert checkout["merchantRef"] == ref, checkout
    assert checkout["orderCode"].startswith("order_")
