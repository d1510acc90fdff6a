"""Make the README's screenshots of the demo checkout from a real run (`make screenshot`).

Starts the whole local stack in memory on free ports (DynamoDB Local, moto, the StepPay sandbox, the
local API), the demo checkout page next to it (its server registers the checkout with a signed
``POST /checkouts``, as a merchant's backend does), and Debian's headless chromium; pays the one-time
product in iframe mode by clicking through the real pages, checks the merchant's record says PAID,
and saves:

* ``docs/images/demo.png``: the shop page with the verified result and ``Payment Verified`` in the
  live event feed;
* ``docs/images/demo-iframe.png``: the sandbox's pay page open in the iframe.

Run as ``PYTHONPATH=layers/steppay:sandbox:local:demo .venv/bin/python scripts/screenshot.py``
(what `make screenshot` does); ``--out DIR`` writes elsewhere, ``--lang ko`` shows the Korean page.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for folder in ("layers/steppay", "sandbox", "local", "demo"):
    if str(ROOT / folder) not in sys.path:
        sys.path.insert(0, str(ROOT / folder))

from playwright.sync_api import expect, sync_playwright  # noqa: E402

from steppay_demo.server import DemoServer  # noqa: E402
from steppay_local._util import free_port  # noqa: E402
from steppay_local.stack import DEFAULT_ALLOWED_ORIGINS, LocalStack, LocalStackConfig  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 30_000


def take(out: Path, lang: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    demo_port = free_port()
    log_file = ROOT / "test-artifacts" / "screenshot-stack.log"
    config = LocalStackConfig(
        root=ROOT,
        api_port=0,
        dynamodb_port=0,
        moto_port=0,
        sandbox_port=0,
        data_dir=None,
        allowed_origins=f"{DEFAULT_ALLOWED_ORIGINS},http://127.0.0.1:{demo_port}",
        log_file=log_file,
        reload_on_change=False,
    )
    saved: list[Path] = []
    with LocalStack(config) as stack:
        assert stack.sandbox_url is not None
        demo = DemoServer(
            demo_port,
            api_url=stack.api_url,
            sandbox_url=stack.sandbox_url,
            moto_endpoint=stack.moto_endpoint,
            bus_name=stack.bus_names["EventBus"],
            secret_token=config.secret_token,
        ).start()
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
                )
                try:
                    page = browser.new_page(viewport={"width": 1200, "height": 860})
                    page.set_default_timeout(TIMEOUT_MS)
                    expect.set_options(timeout=TIMEOUT_MS)
                    page.goto(f"{demo.url}/?lang={lang}")
                    expect(page.locator("body")).to_have_attribute("data-ready", "true")
                    page.locator("input[name=product][data-kind=one_time]").check()
                    page.locator("input[name=mode][value=iframe]").check()
                    page.locator("#pay").click()
                    frame = page.locator("#pay-frame").element_handle().content_frame()
                    assert frame is not None
                    frame.wait_for_url("**/pay/order_*")
                    frame.locator("#pay-button").wait_for()
                    saved.append(out / "demo-iframe.png")
                    page.screenshot(path=str(saved[-1]), animations="disabled")

                    frame.locator("#pay-button").click()
                    expect(page.locator("#result")).to_have_attribute("data-result", "paid")
                    code = page.locator("#result").get_attribute("data-order-code")
                    expect(
                        page.locator(
                            f'#events li[data-order-code="{code}"][data-detail-type="Payment Verified"]'
                        )
                    ).to_have_count(1)
                    saved.append(out / "demo.png")
                    page.screenshot(path=str(saved[-1]), full_page=True, animations="disabled")
                    # The merchant's side (the demo server's signed GET /checkouts/{id}) agrees.
                    with urllib.request.urlopen(f"{demo.url}/api/checkout/{code}", timeout=30) as answer:  # noqa: S310
                        state = json.loads(answer.read())["state"]
                    if state != "PAID":
                        raise SystemExit(f"the merchant's record of {code} says {state}, not PAID")
                finally:
                    browser.close()
        finally:
            demo.stop()
    return saved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Screenshots of the demo checkout for the README.")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    parser.add_argument("--lang", choices=("en", "ko"), default="en")
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} is missing: run scripts/bootstrap.sh", file=sys.stderr)
        return 1
    for path in take(args.out, args.lang):
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
