"""No secret anywhere, at the end of the whole run (this test is moved to the very end).

Read: every log line of every local stack of the run (all functions, every level they logged;
the fault stack's functions log at DEBUG) and the log files on disk, the test process's own
logs of the local stack and the sandbox, every API answer the hostile, fault and load suites
saw, every event published on the buses during the run (a catch-all rule of our own copies them,
whoever read the tap), and every item of every table. None may contain the Secret-Token or a
webhook key, and card numbers may only appear as StepPay masks them.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from hostile.harness import SECRETS

pytestmark = [pytest.mark.e2e, pytest.mark.run_last]

ROOT = Path(__file__).resolve().parents[2]
SUITE = "secrets"
MASKED_CARD = re.compile(r"^[0-9]{4}-\*{4}-\*{4}-[0-9]{4}$")
# A run of 13-19 digits that is not part of a longer hex or decimal token (nor the fraction of a
# decimal number: a float's repr has up to 17 digits after the point), and passes Luhn.
DIGIT_RUN = re.compile(r"(?<![0-9A-Za-z])(?<![0-9]\.)[0-9]{13,19}(?![0-9A-Za-z])")


def card_like_runs(seen: list[str], *, sent: list[str]) -> tuple[set[str], set[str]]:
    """Card-number-like digit runs in what the stack answered, announced or stored: those the
    stack produced, and those the tests themselves sent in. The fuzzers send random 13-19-digit
    ids and floats, and a signed or v1 webhook carrying one is stored as it came (one in ten
    passes Luhn): those are not the stack's."""
    sent_runs = {run for text in sent for run in DIGIT_RUN.findall(text)}
    found = {run for text in seen for run in DIGIT_RUN.findall(text) if _card_like(run)}
    return found - sent_runs, found & sent_runs


def _card_like(number: str) -> bool:
    """Passes Luhn, and is not a milli-, micro- or nanosecond timestamp of these years.

    Timestamps in logs and metrics have 13, 16 or 19 digits, the lengths of card numbers, and
    one in ten of them passes Luhn: without this the check failed at random.
    """
    for per_second in (10**3, 10**6, 10**9):
        if abs(int(number) / per_second - time.time()) < 10 * 365 * 86400:
            return False
    return _luhn(number)


def _luhn(number: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(number)):
        digit = int(char)
        if index % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def test_no_secret_in_logs_answers_events_or_records(local_stack: Any, reliability: Any) -> None:
    with reliability.case(SUITE, "secret scan of the whole run"):
        reliability.watch_stack(local_stack)
        reliability.collect_stack(local_stack)
        files = sorted((ROOT / "test-artifacts").glob("*.log"))
        sources: dict[str, list[str]] = {
            "log lines": reliability.all_log_lines(),
            "log files": [path.read_text(encoding="utf-8", errors="replace") for path in files],
            "answers, events and records": list(reliability.seen_texts),
        }
        found = {
            where: [secret for secret in SECRETS if any(secret in text for text in texts)]
            for where, texts in sources.items()
        }
        assert not any(found.values()), f"secrets found: {found}"
        assert len(sources["log lines"]) > 1000, "the scan read the run's logs"
        assert reliability.events_scanned > 0 and reliability.items_scanned > 0
        reliability.metric(
            "secret scan (log lines / answers+events+items / events / items)",
            f"{len(sources['log lines'])} / {len(sources['answers, events and records'])} / "
            f"{reliability.events_scanned} / {reliability.items_scanned}",
        )


def test_card_numbers_only_as_steppay_masks_them(local_stack: Any, reliability: Any) -> None:
    with reliability.case(SUITE, "card numbers masked everywhere"):
        stored = 0
        ddb = local_stack.client("dynamodb")
        for table in local_stack.table_names.values():
            kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
            while True:
                page = ddb.scan(**kwargs)
                for item in page.get("Items", []):
                    card = item.get("card_number", {}).get("S")
                    if card is not None:
                        stored += 1
                        assert MASKED_CARD.fullmatch(card), f"unmasked card number stored: {card!r}"
                if "LastEvaluatedKey" not in page:
                    break
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        assert stored > 0, "paid records keep the masked card number"
        # Nor anything that looks like a full card number in what was answered, announced or stored.
        pans, sent_in = card_like_runs(reliability.seen_texts, sent=reliability.sent_texts)
        assert not pans, f"card-number-like digits found: {sorted(pans)[:5]}"
        assert reliability.sent_texts, "the fuzzers' requests were recorded"
        reliability.metric("card scan: Luhn-valid runs the tests sent in (not counted)", len(sent_in))


def test_the_card_number_check_can_fail() -> None:
    # The scan above must catch a real card number, in any of its lengths, and not a timestamp.
    assert _card_like("4111111111111111") and _card_like("4222222222222") and _card_like("6011000990139424")
    now = time.time()
    assert not any(_card_like(str(int(now * scale))) for scale in (10**3, 10**6, 10**9))
    # Found in text: standing alone, quoted, at the end of a sentence; not a float's fraction
    # (these two, Luhn-valid, once failed a fresh-clone run: fractions of floats in what was seen).
    text = 'card 4111111111111111. {"pan": "6011000990139424"} took 0.320140868104479 s, 12.39638180675326'
    assert _card_like("320140868104479") and _card_like("39638180675326")
    assert set(DIGIT_RUN.findall(text)) == {"4111111111111111", "6011000990139424"}
    # A number the tests sent in (this one, Luhn-valid, came from a fuzzed webhook stored as it
    # came) is not the stack's; any other card number beside it still is.
    webhook_item = """{"raw_body": "b'{\\"orderId\\":332329834423602}'"}"""
    sent = ['/webhooks/steppay null null {"orderId":332329834423602}']
    assert _card_like("332329834423602")
    assert card_like_runs([webhook_item], sent=sent) == (set(), {"332329834423602"})
    assert card_like_runs([webhook_item, text], sent=sent)[0] == {"4111111111111111", "6011000990139424"}
    assert card_like_runs([webhook_item], sent=[]) == ({"332329834423602"}, set())
