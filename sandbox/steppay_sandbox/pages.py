"""The sandbox's pay page (결제창) and result page: small, self-contained HTML.

No external resources (inline CSS, no scripts), Korean and English labels, and nothing that
stops the page from being shown in an iframe or a popup. The form posts back to the sandbox
in the same browsing context (``target="_self"``), which then redirects (303) to the
merchant's successUrl / errorUrl / cancelUrl.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from urllib.parse import quote

# The pay page's quantity fields are named ``quantity.<priceCode>`` (one per item whose
# maximumQuantity is above its minimumQuantity); the submit handler reads them back.
QUANTITY_FIELD = "quantity."


@dataclass(frozen=True)
class PageItem:
    """One order item as the pay page shows it."""

    price_code: str
    name: str
    unit_price: int
    minimum: int
    maximum: int | None

    @property
    def choosable(self) -> bool:
        return self.maximum is not None and self.maximum > self.minimum


# Security headers for the HTML pages: no X-Frame-Options and no frame-ancestors directive
# (StepPay's pay page may be embedded in an iframe), no form-action restriction (the form's
# redirect goes to the merchant's site).
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}

_STYLE = """
:root { color-scheme: light; }
body { margin: 0; font-family: system-ui, -apple-system, "Apple SD Gothic Neo", "Malgun Gothic",
  "Noto Sans KR", sans-serif; background: #f3f5f9; color: #1c2330; }
main { max-width: 26rem; margin: 2rem auto; background: #fff; border-radius: 12px;
  box-shadow: 0 2px 12px rgba(20, 30, 60, .12); padding: 1.5rem 1.75rem; }
.badge { display: inline-block; font-size: .8rem; color: #7a4b00; background: #fff1cc;
  border-radius: 999px; padding: .2rem .7rem; margin: 0 0 .75rem; }
h1 { font-size: 1.35rem; margin: 0 0 1rem; }
h1 small { display: block; font-size: .9rem; color: #5b6577; font-weight: normal; }
dl { display: grid; grid-template-columns: auto 1fr; gap: .5rem 1rem; margin: 0 0 1.25rem; }
dt { color: #5b6577; }
dd { margin: 0; font-weight: 600; word-break: break-all; }
.amount { font-size: 1.3rem; }
form { display: grid; gap: .6rem; }
button { font: inherit; font-size: 1rem; padding: .8rem; border-radius: 8px; border: 1px solid #c9d0dc;
  background: #fff; cursor: pointer; }
button:focus-visible { outline: 3px solid #86a8ff; outline-offset: 2px; }
#pay-button { background: #2454ff; border-color: #2454ff; color: #fff; font-weight: 700; }
#fail-button { color: #a40e26; }
.message { padding: .8rem 1rem; border-radius: 8px; background: #fdecee; color: #8a1024; }
.message.ok { background: #e6f6ec; color: #0f5b2c; }
label { font-size: .9rem; color: #5b6577; }
input[type=number] { font: inherit; font-size: 1rem; padding: .6rem; border-radius: 8px;
  border: 1px solid #c9d0dc; }
.note { font-size: .8rem; color: #5b6577; margin-top: 1.25rem; }
"""

MESSAGES = {
    "ORDER_ALREADY_PAID": ("이미 결제된 주문입니다.", "This order is already paid."),
    "ORDER_CANCELLED": ("취소된 주문입니다.", "This order is cancelled."),
    "ORDER_EXPIRED": ("결제 기한이 지난 주문입니다.", "This order's purchase deadline has passed."),
    "INVALID_QUANTITY": ("선택할 수 없는 수량입니다.", "This quantity cannot be chosen for this order."),
    "ORDER_DEPOSIT_WAITING": (
        "가상계좌가 발급되어 입금을 기다리는 주문입니다.",
        "A virtual account was issued for this order: it waits for the deposit.",
    ),
}


def format_amount(amount: int, currency: str) -> str:
    return f"{amount:,} {currency}"


def _document(title: str, body: str, lang: str) -> str:
    return (
        "<!doctype html>\n"
        f'<html lang="{"en" if lang == "en" else "ko"}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n<main>\n"
        '<p class="badge">StepPay 샌드박스 · Sandbox (테스트 결제, no real money)</p>\n'
        f"{body}\n</main>\n</body>\n</html>\n"
    )


def pay_page(
    *,
    order_code: str,
    order_id: int,
    product_name: str,
    amount: int,
    currency: str,
    customer_name: str,
    redirects: dict[str, str],
    lang: str,
    problem: str | None = None,
    items: list[PageItem] | None = None,
) -> str:
    """The pay page for one order, with its Pay / Fail / Cancel buttons.

    Items whose ``maximumQuantity`` is above their ``minimumQuantity`` get a quantity input
    (``quantity.<priceCode>``, ``min``/``max`` their bounds, the minimum preselected): the
    shopper's choice, which Pay charges (unit price x quantity).
    """
    hidden = "".join(
        f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">\n'
        for name, value in redirects.items()
        if value
    )
    if lang:
        hidden += f'<input type="hidden" name="lang" value="{escape(lang)}">\n'
    if problem is not None:
        ko, en = MESSAGES.get(problem, ("결제할 수 없는 주문입니다.", "This order cannot be paid."))
        actions = (
            f'<p class="message" id="order-problem" role="alert">{escape(ko)}<br>{escape(en)}</p>\n'
            f'<form method="post" action="/pay/{quote(order_code)}" target="_self">\n{hidden}'
            '<button type="submit" id="cancel-button" name="action" value="cancel">'
            "닫기 · Close</button>\n</form>"
        )
    else:
        inputs = _quantity_inputs([i for i in items or [] if i.choosable], currency)
        # Fail / Cancel do not depend on the quantity, so they skip the inputs' validation.
        skip = " formnovalidate" if inputs else ""
        actions = (
            f'<form method="post" action="/pay/{quote(order_code)}" target="_self">\n{hidden}{inputs}'
            '<button type="submit" id="pay-button" name="action" value="pay">결제하기 · Pay</button>\n'
            '<button type="submit" id="vbank-button" name="action" value="standby">'
            "가상계좌 발급 · Virtual account (deposit later)</button>\n"
            f'<button type="submit" id="fail-button" name="action" value="fail"{skip}>'
            "결제 실패 · Fail</button>\n"
            f'<button type="submit" id="cancel-button" name="action" value="cancel"{skip}>'
            "결제 취소 · Cancel</button>\n</form>"
        )
    body = (
        "<h1>주문 결제 <small>Checkout</small></h1>\n<dl>\n"
        f'<dt>상품 · Product</dt><dd id="product-name">{escape(product_name)}</dd>\n'
        f'<dt>금액 · Amount</dt><dd id="amount" class="amount" data-amount="{amount}" '
        f'data-currency="{escape(currency)}">{escape(format_amount(amount, currency))}</dd>\n'
        f'<dt>통화 · Currency</dt><dd id="currency">{escape(currency)}</dd>\n'
        f'<dt>주문 · Order</dt><dd id="order-code" data-order-id="{order_id}">{escape(order_code)}</dd>\n'
        f'<dt>고객 · Customer</dt><dd id="customer-name">{escape(customer_name)}</dd>\n'
        f"</dl>\n{actions}\n"
        '<p class="note">샌드박스 결제창입니다. 실제 결제는 일어나지 않습니다.<br>'
        "This is the local StepPay sandbox: no money moves.</p>"
    )
    return _document("StepPay 결제 · Payment", body, lang)


def _quantity_inputs(items: list[PageItem], currency: str) -> str:
    """A labelled number input per item whose quantity the shopper may choose."""
    html = ""
    for item in items:
        assert item.maximum is not None
        code = escape(item.price_code)
        html += (
            f'<label for="quantity-{code}">수량 · Quantity: {escape(item.name)} '
            f"({escape(format_amount(item.unit_price, currency))} x {item.minimum}-{item.maximum})</label>\n"
            f'<input type="number" class="quantity" id="quantity-{code}" '
            f'name="{escape(QUANTITY_FIELD)}{code}" value="{item.minimum}" min="{item.minimum}" '
            f'max="{item.maximum}" step="1" required inputmode="numeric" data-price-code="{code}" '
            f'data-unit-price="{item.unit_price}">\n'
        )
    if html:
        html += (
            '<p class="note" id="quantity-note">결제 금액 = 단가 x 선택한 수량 '
            "(위 금액은 최소 수량 기준) · Amount = unit price x chosen quantity "
            "(the amount above is for the minimum).</p>\n"
        )
    return html


def virtual_account_page(
    *,
    order_code: str,
    amount: int,
    currency: str,
    bank_name: str,
    account_number: str,
    holder: str,
    due: str,
    lang: str,
) -> str:
    """Shown after the shopper chose a virtual account: where and by when to deposit."""
    body = (
        "<h1>가상계좌가 발급되었습니다 <small>Virtual account issued</small></h1>\n"
        '<p class="message ok" id="result" role="status">아래 계좌로 입금하면 결제가 완료됩니다.<br>'
        "The payment completes when the amount is deposited into this account.</p>\n<dl>\n"
        f'<dt>주문 · Order</dt><dd id="order-code">{escape(order_code)}</dd>\n'
        f'<dt>은행 · Bank</dt><dd id="vbank-bank">{escape(bank_name)}</dd>\n'
        f'<dt>계좌 · Account</dt><dd id="vbank-account">{escape(account_number)}</dd>\n'
        f'<dt>예금주 · Holder</dt><dd id="vbank-holder">{escape(holder)}</dd>\n'
        f'<dt>금액 · Amount</dt><dd id="amount" data-amount="{amount}">'
        f"{escape(format_amount(amount, currency))}</dd>\n"
        f'<dt>입금 기한 · Deposit by</dt><dd id="vbank-due">{escape(due)}</dd>\n</dl>'
    )
    return _document("가상계좌 · Virtual account", body, lang)


def result_page(*, title_ko: str, title_en: str, order_code: str, ok: bool, lang: str) -> str:
    """Shown after Pay / Fail / Cancel when the merchant gave no URL to go to (or for a refusal)."""
    body = (
        f"<h1>{escape(title_ko)} <small>{escape(title_en)}</small></h1>\n"
        f'<p class="message{" ok" if ok else ""}" id="result" role="status">'
        f"{escape(title_ko)}<br>{escape(title_en)}</p>\n"
        f'<dl><dt>주문 · Order</dt><dd id="order-code">{escape(order_code)}</dd></dl>'
    )
    return _document(f"{title_ko} · {title_en}", body, lang)


def not_found_page(lang: str) -> str:
    body = (
        "<h1>주문을 찾을 수 없습니다 <small>Order not found</small></h1>\n"
        '<p class="message" role="alert">주문을 찾을 수 없습니다.<br>This order does not exist.</p>'
    )
    return _document("주문 없음 · Not found", body, lang)
