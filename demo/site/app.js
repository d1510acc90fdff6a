// StepPay demo checkout: the shop page (index.html) and the return page (result.html).
// Plain JavaScript, no build step, no dependencies.
//
// The page decides nothing about what is sold: it tells the demo server (the merchant's backend,
// this page's own origin) which product the shopper picked and how to show the pay page
// (POST /api/checkout). That server chooses the line, its price and quantity, the customer and its
// own merchantRef, registers the checkout with the bundle's POST /checkouts (SigV4-signed: the
// page holds no AWS key and no Secret-Token) and hands back only {payUrl, orderCode}. The result
// is verified with the bundle's public POST /payments/verify; the redirect's query string
// (status=success...) is never trusted.
"use strict";

const RESULT_MESSAGE = "steppay-demo:result";
const SHOP_ORIGIN = window.location.origin;

const TEXT = {
  ko: {
    brand: "스텝 로스터스",
    sandboxBadge: "샌드박스 · 실제 결제 없음",
    title: "주문하기",
    lead: "상품과 결제창 표시 방식을 고른 뒤 결제하세요. 결제 결과는 서버에서 스텝페이에 다시 확인합니다.",
    productLegend: "상품",
    loading: "불러오는 중…",
    modeLegend: "결제창 표시 방식",
    modeRedirect: "페이지 이동",
    modeRedirectHelp: "결제창으로 이동했다가 돌아옵니다.",
    modePopup: "팝업 / 새 탭",
    modePopupHelp: "새 창에서 결제하고 결과를 여기로 전달합니다.",
    modeIframe: "iframe",
    modeIframeHelp: "이 페이지 안의 창에서 결제합니다.",
    total: "결제 금액",
    pay: "결제하기",
    orderCode: "주문 코드",
    amount: "금액",
    verdict: "확인 결과",
    paidAt: "결제 시각",
    again: "새 주문",
    back: "상점으로 돌아가기",
    footnote:
      "이 페이지는 Secret-Token도 AWS 키도 갖고 있지 않습니다. 판매 상품·가격·수량은 상점 서버가 정해 서명된 요청(POST /checkouts)으로 주문을 등록하고, 페이지는 결제 링크만 받습니다. 결제 확인은 머천트 API(이 번들)가 스텝페이에 요청합니다.",
    feedTitle: "실시간 이벤트",
    feedHelp: "EventBridge 버스의 모든 이벤트(local-event-tap과 같은 내용)가 여기에 표시됩니다.",
    feedOff: "이벤트 피드가 꺼져 있습니다.",
    feedEmpty: "아직 이벤트가 없습니다.",
    modalTitle: "스텝페이 결제",
    checking: "결제 확인 중…",
    handoff: "결과를 주문 페이지로 전달했습니다.",
    perMonth: "/월",
    creating: "주문을 등록하는 중…",
    redirecting: "결제창으로 이동합니다…",
    popupOpen: "새 창에서 결제를 진행해 주세요.",
    popupBlocked: "팝업이 차단되었습니다. 팝업을 허용하거나 다른 방식을 선택해 주세요.",
    iframeOpen: "결제창에서 결제를 진행해 주세요.",
    closedEarly: "결제창을 닫았습니다.",
    catalogueError: "상품 목록을 불러오지 못했습니다.",
    paid: "결제 완료",
    failed: "결제 실패",
    cancelled: "결제 취소",
    pending: "결제되지 않음",
    error: "확인할 수 없음",
    notePaid: "스텝페이에서 결제를 확인했습니다. 감사합니다!",
    noteFailed: "결제가 거절되었습니다. 다시 시도해 주세요.",
    noteCancelled: "결제를 취소했습니다. 청구된 금액은 없습니다.",
    notePending: "스텝페이에 이 주문의 결제 기록이 없습니다 (대기 중).",
    noteMismatch: "주문 내용이 스텝페이 기록과 일치하지 않습니다.",
    noteRefunded: "스텝페이에서 취소(환불)된 주문입니다.",
  },
  en: {
    brand: "Step Roasters",
    sandboxBadge: "Sandbox · no real payment",
    title: "Checkout",
    lead: "Pick a product and how the pay page is shown, then pay. The result is checked with StepPay on the server.",
    productLegend: "Product",
    loading: "Loading…",
    modeLegend: "Pay page display",
    modeRedirect: "Redirect",
    modeRedirectHelp: "Goes to the pay page and comes back.",
    modePopup: "Popup / new tab",
    modePopupHelp: "Pays in a new window; the result comes back here.",
    modeIframe: "iframe",
    modeIframeHelp: "Pays in a frame on this page.",
    total: "Total",
    pay: "Pay",
    orderCode: "Order code",
    amount: "Amount",
    verdict: "Verdict",
    paidAt: "Paid at",
    again: "New order",
    back: "Back to the shop",
    footnote:
      "This page holds neither the Secret-Token nor an AWS key: the shop's server decides what is sold (product, price, quantity), registers the checkout with a signed POST /checkouts and gives the page only the pay link. The verification is asked of StepPay by the merchant's API (this bundle).",
    feedTitle: "Live events",
    feedHelp: "Every event on the EventBridge bus (what local-event-tap receives) appears here.",
    feedOff: "The event feed is off.",
    feedEmpty: "No events yet.",
    modalTitle: "StepPay payment",
    checking: "Checking the payment…",
    handoff: "The result was handed to the order page.",
    perMonth: "/month",
    creating: "Registering the order…",
    redirecting: "Going to the pay page…",
    popupOpen: "Please complete the payment in the new window.",
    popupBlocked: "The popup was blocked. Allow popups or choose another mode.",
    iframeOpen: "Please complete the payment in the pay window.",
    closedEarly: "The pay window was closed.",
    catalogueError: "Could not load the products.",
    paid: "Paid",
    failed: "Payment failed",
    cancelled: "Cancelled",
    pending: "Not paid",
    error: "Could not verify",
    notePaid: "StepPay confirmed the payment. Thank you!",
    noteFailed: "The payment was declined. Please try again.",
    noteCancelled: "The payment was cancelled; nothing was charged.",
    notePending: "StepPay has no payment for this order (pending).",
    noteMismatch: "The order does not match StepPay's record.",
    noteRefunded: "StepPay reports this order cancelled (refunded).",
  },
};

let lang = initialLang();
let config = null;
let catalogue = null;
let checkout = null; // the pay page in progress: {orderCode, mode, window, watch}
let lastResult = null;
let lastOrderCode = null;

function initialLang() {
  const asked = new URLSearchParams(window.location.search).get("lang");
  if (asked === "ko" || asked === "en") return asked;
  try {
    const saved = window.localStorage.getItem("steppay-demo-lang");
    if (saved === "ko" || saved === "en") return saved;
  } catch (_) {
    // storage disabled: fall through
  }
  return "ko";
}

function t(key) {
  return (TEXT[lang] && TEXT[lang][key]) || TEXT.en[key] || key;
}

function $(id) {
  return document.getElementById(id);
}

function setLang(value) {
  lang = value;
  try {
    window.localStorage.setItem("steppay-demo-lang", value);
  } catch (_) {
    // storage disabled: the choice lasts for this page only
  }
  document.documentElement.lang = value;
  for (const element of document.querySelectorAll("[data-i18n]")) {
    element.textContent = t(element.dataset.i18n);
  }
  for (const button of document.querySelectorAll("[data-lang]")) {
    button.setAttribute("aria-pressed", String(button.dataset.lang === value));
  }
  if (catalogue) renderProducts();
  if (lastResult) renderResult(lastResult);
  for (const item of document.querySelectorAll("#events li[data-amount]")) {
    item.querySelector(".event-amount").textContent = money(item.dataset.amount, item.dataset.currency);
  }
}

function money(amount, currency) {
  if (amount === null || amount === undefined || amount === "") return "–";
  const value = Number(amount);
  if (!Number.isFinite(value)) return `${amount} ${currency || ""}`.trim();
  if (!currency || currency === "KRW") {
    return lang === "ko" ? `${value.toLocaleString("ko-KR")}원` : `₩${value.toLocaleString("en-US")}`;
  }
  return new Intl.NumberFormat(lang === "ko" ? "ko-KR" : "en-US", { style: "currency", currency }).format(value);
}

async function loadJson(path) {
  const response = await fetch(path, { cache: "no-store" });
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return response.json();
}

// POST JSON; the bundle's and the demo server's errors are both {"error": {"code", "message"}}.
async function postJson(url, body) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error((data.error && data.error.message) || `HTTP ${response.status}`);
    error.code = (data.error && data.error.code) || String(response.status);
    throw error;
  }
  return data;
}

// The merchant's public API (the bundle): the verification.
async function api(path, body) {
  return postJson(config.apiUrl + path, body);
}

// The shop's own server (the merchant's backend, same origin): it registers the checkout.
async function shopServer(path, body) {
  return postJson(new URL(path, SHOP_ORIGIN).toString(), body);
}

// The guide's step 3: ask the merchant's API, which asks StepPay. `status` is what the redirect
// claimed; it is passed along for the record and never trusted.
async function verifyOrder(orderCode, orderId, status) {
  const body = { orderCode };
  if (orderId && /^\d{1,18}$/.test(String(orderId))) body.orderId = Number(orderId);
  if (status && /^[A-Za-z_]{1,32}$/.test(status)) body.status = status;
  return api("/payments/verify", body);
}

// What the shopper is told, from the verified answer only. Landing on the cancel URL matters only
// when StepPay has no payment (NOT_PAID): then the shopper cancelled.
function toResult(verification, landing) {
  let outcome;
  if (verification.verdict === "PAID") outcome = "paid";
  else if (verification.verdict === "FAILED") outcome = "failed";
  else if (verification.verdict === "CANCELED") outcome = "cancelled";
  else if (verification.verdict === "NOT_PAID" && (landing === "cancel" || landing === "closed")) outcome = "cancelled";
  else outcome = "pending";
  return {
    outcome,
    landing,
    verdict: verification.verdict,
    orderCode: verification.orderCode,
    amount: verification.amount,
    currency: verification.currency,
    paidAt: verification.paidAt,
  };
}

function noteFor(result) {
  if (result.outcome === "error") return result.message || "";
  if (result.outcome === "paid") return t("notePaid");
  if (result.outcome === "failed") return t("noteFailed");
  if (result.outcome === "cancelled") {
    if (result.verdict === "CANCELED") return t("noteRefunded");
    return result.landing === "closed" ? t("closedEarly") : t("noteCancelled");
  }
  return result.verdict === "MISMATCH" ? t("noteMismatch") : t("notePending");
}

function renderResult(result) {
  lastResult = result;
  const box = $("result");
  box.hidden = false;
  box.dataset.result = result.outcome;
  box.dataset.orderCode = result.orderCode || "";
  $("result-title").textContent = t(result.outcome);
  $("result-title").removeAttribute("data-i18n");
  $("result-note").textContent = noteFor(result);
  $("result-order-code").textContent = result.orderCode || "–";
  $("result-amount").textContent = money(result.amount, result.currency);
  $("result-verdict").textContent = result.verdict || (result.code ? `error: ${result.code}` : "–");
  // StepPay's time with its offset (+09:00), to the second.
  $("result-paid-at").textContent = result.paidAt ? result.paidAt.replace("T", " ").replace(/\.\d+/, "") : "–";
  markMine();
}

// An event's time (UTC on the bus) as Korean wall time, like StepPay's own times.
function seoulTime(value) {
  const date = new Date(value || "");
  if (Number.isNaN(date.getTime())) return "";
  const text = date.toLocaleTimeString("en-GB", { timeZone: "Asia/Seoul", hour12: false });
  return `${text} KST`;
}

function say(key) {
  const status = $("status");
  if (status) status.textContent = key ? t(key) : "";
}

// -- the live event feed (GET /events on the demo server: a copy of every event on the bus) --

function startFeed() {
  const list = $("events");
  if (!list) return;
  let after = 0;
  const poll = async () => {
    try {
      const data = await loadJson(`/events?after=${after}`);
      $("feed-off").hidden = data.feed !== "off";
      for (const event of data.events) {
        after = Math.max(after, event.seq);
        list.prepend(eventItem(event));
      }
      while (list.children.length > 50) list.lastElementChild.remove();
      markMine();
    } catch (_) {
      // the demo server is restarting: try again shortly
    }
    window.setTimeout(poll, 1000);
  };
  poll();
}

function eventItem(event) {
  const item = document.createElement("li");
  item.dataset.detailType = event.detailType || "";
  item.dataset.orderCode = event.orderCode || "";
  if (event.amount !== null && event.amount !== undefined) {
    item.dataset.amount = event.amount;
    item.dataset.currency = event.currency || "";
  }
  const head = document.createElement("div");
  head.className = "event-head";
  const type = document.createElement("strong");
  type.className = "event-type";
  type.textContent = event.detailType || "(event)";
  const time = document.createElement("time");
  time.textContent = seoulTime(event.time || event.receivedAt);
  head.append(type, time);
  const line = document.createElement("div");
  line.className = "event-line";
  const code = document.createElement("code");
  code.textContent = event.orderCode || event.source || "";
  const amount = document.createElement("span");
  amount.className = "event-amount";
  amount.textContent = item.dataset.amount ? money(event.amount, event.currency) : "";
  line.append(code, amount);
  const details = document.createElement("details");
  const summary = document.createElement("summary");
  summary.textContent = "detail";
  const pre = document.createElement("pre");
  pre.textContent = JSON.stringify(event.detail, null, 2);
  details.append(summary, pre);
  item.append(head, line, details);
  return item;
}

function markMine() {
  for (const item of document.querySelectorAll("#events li")) {
    item.classList.toggle("mine", !!lastOrderCode && item.dataset.orderCode === lastOrderCode);
  }
}

// -- the shop page --------------------------------------------------------------------------

function renderProducts() {
  const box = $("products");
  const chosen = (document.querySelector("input[name=product]:checked") || {}).value;
  for (const old of box.querySelectorAll("label, p")) old.remove();
  catalogue.items.forEach((item, index) => {
    const label = document.createElement("label");
    label.className = "choice product";
    const input = document.createElement("input");
    input.type = "radio";
    input.name = "product";
    input.value = item.priceCode;
    input.dataset.kind = item.kind;
    input.checked = chosen ? chosen === item.priceCode : index === 0;
    input.addEventListener("change", updateTotal);
    const body = document.createElement("span");
    body.className = "choice-body";
    const name = document.createElement("strong");
    name.textContent = item.name;
    const plan = document.createElement("small");
    plan.textContent = item.planName || "";
    body.append(name, plan);
    const price = document.createElement("span");
    price.className = "price";
    price.textContent = money(item.price, item.currency) + (item.kind === "subscription" ? t("perMonth") : "");
    label.append(input, body, price);
    box.append(label);
  });
  updateTotal();
}

function selectedItem() {
  const input = document.querySelector("input[name=product]:checked");
  return input && catalogue.items.find((item) => item.priceCode === input.value);
}

function selectedMode() {
  return document.querySelector("input[name=mode]:checked").value;
}

function updateTotal() {
  const item = selectedItem();
  $("total").textContent = item
    ? money(item.price, item.currency) + (item.kind === "subscription" ? t("perMonth") : "")
    : "–";
  $("pay").disabled = !item || !!checkout;
}

// The shopper's choice, all the page sends: the catalogue line's price code, the display mode and
// the language. The shop's server picks the rest (quantity 1, the price, the customer, its own
// merchantRef and the return URLs, this shop's result.html, which verifies) and registers the
// checkout, signed; it answers only the pay link and the order code.
async function registerCheckout(item, mode) {
  return shopServer("/api/checkout", { product: item.priceCode, mode, lang });
}

// Mode 1: full-page redirection. The shop page is replaced by the pay page; StepPay redirects
// back to result.html, which verifies and shows the result.
function openRedirect(payUrl) {
  window.location.assign(payUrl);
}

// Mode 2: popup (or new tab). Opened WITHOUT "noopener", which StepPay's guide adds: the result
// page in the popup needs window.opener to postMessage the verified result back. The pay page
// (StepPay's origin) sees window.opener too; its messages are refused by the origin check in
// onResultMessage. Opened in the click handler itself (popup blockers refuse a window.open made
// after an await) on a blank page, which is sent to payUrl once the pay link is ready.
function openPopup() {
  return window.open("about:blank", "steppay-pay", "popup,width=480,height=760");
}
function showInPopup(popup, payUrl) {
  popup.location.href = payUrl;
  return popup;
}

// Mode 3: iframe. The pay page inside this page; result.html in the frame posts to the parent.
function openIframe(payUrl) {
  const frame = $("pay-frame");
  frame.src = payUrl;
  $("overlay").hidden = false;
  return frame.contentWindow;
}

// Popup and iframe: the verified result, accepted from this shop's own result page only.
function onResultMessage(event) {
  if (event.origin !== SHOP_ORIGIN) return; // the pay page (StepPay) or anyone else
  if (!checkout || event.source !== checkout.window) return; // not the window we opened
  if (!event.data || event.data.type !== RESULT_MESSAGE) return;
  closeCheckout();
  renderResult(event.data.result);
  say("");
}

function closeCheckout() {
  if (!checkout) return;
  window.clearInterval(checkout.watch);
  // A popup is not closed from here: the result page closes itself once it has reported (and
  // stays open, showing the result, when it could not).
  if (checkout.mode === "iframe") {
    $("overlay").hidden = true;
    $("pay-frame").src = "about:blank";
  }
  checkout = null;
  updateTotal();
}

// The shopper closed the pay window before the result page reported: ask the API ourselves.
async function abandonCheckout() {
  const current = checkout;
  if (!current) return;
  closeCheckout();
  try {
    renderResult(toResult(await verifyOrder(current.orderCode), "closed"));
  } catch (error) {
    renderResult({ outcome: "error", orderCode: current.orderCode, message: error.message, code: error.code });
  }
  say("");
}

function watchPopup(popup) {
  let closedSince = 0;
  return window.setInterval(() => {
    if (!popup.closed) return;
    // A result page posts, then closes itself: give its message a moment to arrive first.
    closedSince = closedSince || Date.now();
    if (Date.now() - closedSince >= 1000) abandonCheckout();
  }, 250);
}

async function pay() {
  const item = selectedItem();
  if (!item || checkout) return;
  const mode = selectedMode();
  $("result").hidden = true;
  lastResult = null;
  $("pay").disabled = true;
  say("creating");
  const popup = mode === "popup" ? openPopup() : null;
  if (mode === "popup" && !popup) {
    say("popupBlocked");
    updateTotal();
    return;
  }
  let link;
  try {
    link = await registerCheckout(item, mode);
  } catch (error) {
    if (popup) popup.close();
    say("");
    renderResult({ outcome: "error", message: error.message, code: error.code });
    updateTotal();
    return;
  }
  lastOrderCode = link.orderCode;
  document.body.dataset.orderCode = link.orderCode;
  checkout = { orderCode: link.orderCode, mode, window: null, watch: 0 };
  if (mode === "redirect") {
    say("redirecting");
    openRedirect(link.payUrl);
  } else if (mode === "popup") {
    checkout.window = showInPopup(popup, link.payUrl);
    checkout.watch = watchPopup(popup);
    say("popupOpen");
  } else {
    checkout.window = openIframe(link.payUrl);
    say("iframeOpen");
  }
}

async function initShop() {
  window.addEventListener("message", onResultMessage);
  $("pay").addEventListener("click", pay);
  $("again").addEventListener("click", () => {
    $("result").hidden = true;
    lastResult = null;
  });
  $("overlay-close").addEventListener("click", abandonCheckout);
  try {
    catalogue = await loadJson("/catalogue.json");
    renderProducts();
  } catch (_) {
    $("products-loading").textContent = t("catalogueError");
  }
}

// -- the return page (result.html) ----------------------------------------------------------

// result.html in a popup or an iframe: hand the verified result to the shop page, to this
// shop's origin only (never "*"); a popup then closes itself.
function reportResult(mode, result) {
  const message = { type: RESULT_MESSAGE, result };
  if (mode === "popup" && window.opener && !window.opener.closed) {
    window.opener.postMessage(message, SHOP_ORIGIN);
    window.close();
    return true;
  }
  if (mode === "iframe" && window.parent !== window) {
    window.parent.postMessage(message, SHOP_ORIGIN);
    return true;
  }
  return false; // full-page redirect: the result is shown here
}

async function initResult() {
  const query = new URLSearchParams(window.location.search);
  const mode = query.get("mode") || "redirect";
  const landing = query.get("return") || "";
  // StepPay's parameters (order_code...) or those of GET /payments/callback (orderCode, result).
  const orderCode = query.get("order_code") || query.get("orderCode");
  $("back").href = `/?lang=${lang}`;
  lastOrderCode = orderCode;
  let result;
  if (!orderCode) {
    result = { outcome: "error", message: "order_code missing" };
  } else {
    try {
      result = toResult(await verifyOrder(orderCode, query.get("order_id"), query.get("status")), landing);
    } catch (error) {
      result = { outcome: "error", orderCode, message: error.message, code: error.code };
    }
  }
  renderResult(result);
  if (reportResult(mode, result)) $("handoff").hidden = false;
}

document.addEventListener("DOMContentLoaded", async () => {
  for (const button of document.querySelectorAll("[data-lang]")) {
    button.addEventListener("click", () => setLang(button.dataset.lang));
  }
  setLang(lang);
  try {
    config = await loadJson("/config.json");
  } catch (_) {
    say("catalogueError");
    return;
  }
  const page = document.body.dataset.page;
  // In a popup or an iframe the result page is only a messenger: no feed, no chrome.
  const mode = new URLSearchParams(window.location.search).get("mode");
  const embedded =
    page === "result" && ((mode === "popup" && !!window.opener) || (mode === "iframe" && window.parent !== window));
  document.body.classList.toggle("embedded", embedded);
  if (!embedded) startFeed();
  if (page === "shop") await initShop();
  else await initResult();
  document.body.dataset.ready = "true";
});
