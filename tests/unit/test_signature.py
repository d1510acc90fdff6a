"""`Steppay-Signature` verification, as CONTRACT.md describes it, plus our tolerance and rotation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from steppay.errors import (
    SignatureError,
    SignatureMalformed,
    SignatureMismatch,
    SignatureMissing,
    SignatureStale,
)
from steppay.signature import parse_signature_header, sign, signature_value, verify_signature

KEY = "whsec_current-verification-key"
NEXT_KEY = "whsec_next-verification-key"
NOW = 1_700_000_000
BODY = (
    '{"timestamp":1700000000,"version":"v1","event":"order.payment_completed",'
    '"data":{"id":1001,"code":"order_a","productName":"프리미엄 커피 정기구독","paidAmount":9900.10}}'
).encode()


def b64_hmac(key: str, timestamp: int | str, body: bytes) -> str:
    """The documented rule, written out independently: Base64(HMAC-SHA256(key, "<ts>.<body>"))."""
    mac = hmac.new(key.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


def test_documented_format_with_one_key() -> None:
    header = f"timestamp={NOW},key={b64_hmac(KEY, NOW, BODY)}"
    assert verify_signature(BODY, header, [KEY], now=NOW) == NOW


def test_documented_format_with_several_keys() -> None:
    other = b64_hmac("some-other-key", NOW, BODY)
    header = f"timestamp={NOW},key={other};{b64_hmac(KEY, NOW, BODY)}"
    assert verify_signature(BODY, header, [KEY], now=NOW) == NOW
    header = f"timestamp={NOW},key={b64_hmac(KEY, NOW, BODY)};{other}"
    assert verify_signature(BODY, header, [KEY], now=NOW) == NOW
    with pytest.raises(SignatureMismatch):
        verify_signature(BODY, f"timestamp={NOW},key={other};{other}", [KEY], now=NOW)


def test_sign_produces_the_documented_header() -> None:
    assert sign(BODY, KEY, NOW) == f"timestamp={NOW},key={b64_hmac(KEY, NOW, BODY)}"
    assert signature_value(BODY, KEY, NOW) == b64_hmac(KEY, NOW, BODY)


def test_whitespace_around_parts_is_tolerated() -> None:
    header = f" timestamp = {NOW} , key = {b64_hmac(KEY, NOW, BODY)} "
    assert verify_signature(BODY, header, [KEY], now=NOW) == NOW


def test_korean_body_is_signed_as_utf8_bytes() -> None:
    body = '{"message":"결제가 완료되었습니다 ✓"}'.encode()
    header = sign(body, KEY, NOW)
    assert verify_signature(body, header, [KEY], now=NOW) == NOW
    # The same text in another encoding is another body.
    with pytest.raises(SignatureMismatch):
        verify_signature('{"message":"결제가 완료되었습니다 ✓"}'.encode("utf-16"), header, [KEY], now=NOW)


def test_reserialised_json_fails() -> None:
    header = sign(BODY, KEY, NOW)
    reserialised = json.dumps(json.loads(BODY)).encode()  # spaces, \\uXXXX escapes
    assert reserialised != BODY
    with pytest.raises(SignatureMismatch):
        verify_signature(reserialised, header, [KEY], now=NOW)
    compact = json.dumps(json.loads(BODY), separators=(",", ":"), ensure_ascii=False).encode()
    assert compact != BODY  # 9900.10 came back as 9900.1
    with pytest.raises(SignatureMismatch):
        verify_signature(compact, header, [KEY], now=NOW)


def test_the_timestamp_is_part_of_what_is_signed() -> None:
    value = b64_hmac(KEY, NOW, BODY)
    with pytest.raises(SignatureMismatch) as caught:
        verify_signature(BODY, f"timestamp={NOW + 1},key={value}", [KEY], now=NOW)
    assert caught.value.timestamp == NOW + 1


@pytest.mark.parametrize("offset", [301, 3600, -301, -86_400])
def test_stale_and_future_timestamps_are_refused(offset: int) -> None:
    header = sign(BODY, KEY, NOW + offset)
    with pytest.raises(SignatureStale) as caught:
        verify_signature(BODY, header, [KEY], now=NOW)
    assert caught.value.timestamp == NOW + offset
    assert caught.value.code == "signature_stale"


@pytest.mark.parametrize("offset", [0, 300, -300, 299])
def test_within_tolerance_is_accepted(offset: int) -> None:
    assert verify_signature(BODY, sign(BODY, KEY, NOW + offset), [KEY], now=NOW) == NOW + offset


def test_tolerance_is_configurable() -> None:
    header = sign(BODY, KEY, NOW - 60)
    with pytest.raises(SignatureStale):
        verify_signature(BODY, header, [KEY], now=NOW, tolerance_seconds=30)
    assert verify_signature(BODY, header, [KEY], now=NOW, tolerance_seconds=60) == NOW - 60


def test_a_stale_forgery_is_stale_not_a_mismatch() -> None:
    header = f"timestamp={NOW - 10_000},key={b64_hmac('wrong', NOW - 10_000, BODY)}"
    with pytest.raises(SignatureStale):
        verify_signature(BODY, header, [KEY], now=NOW)


def test_rotation_with_two_configured_keys() -> None:
    signed_with_current = sign(BODY, KEY, NOW)
    signed_with_next = sign(BODY, NEXT_KEY, NOW)
    both_listed = f"timestamp={NOW},key={b64_hmac(NEXT_KEY, NOW, BODY)};{b64_hmac(KEY, NOW, BODY)}"
    configured = [KEY, NEXT_KEY]
    for header in (signed_with_current, signed_with_next, both_listed):
        assert verify_signature(BODY, header, configured, now=NOW) == NOW
    assert verify_signature(BODY, signed_with_next, [NEXT_KEY], now=NOW) == NOW
    with pytest.raises(SignatureMismatch):
        verify_signature(BODY, signed_with_next, [KEY], now=NOW)  # before the rotation was configured
    with pytest.raises(SignatureMismatch):
        verify_signature(BODY, sign(BODY, "retired", NOW), configured, now=NOW)


def test_keys_may_be_secretstr_or_bytes() -> None:
    header = sign(BODY, KEY, NOW)
    assert verify_signature(BODY, header, [SecretStr(KEY)], now=NOW) == NOW
    assert verify_signature(BODY, header, [KEY.encode()], now=NOW) == NOW


def test_wrong_key_is_a_mismatch() -> None:
    with pytest.raises(SignatureMismatch) as caught:
        verify_signature(BODY, sign(BODY, "attacker", NOW), [KEY], now=NOW)
    assert caught.value.code == "signature_mismatch"
    assert KEY not in str(caught.value)


@pytest.mark.parametrize("header", [None, "", "   "])
def test_missing_header(header: str | None) -> None:
    with pytest.raises(SignatureMissing) as caught:
        verify_signature(BODY, header, [KEY], now=NOW)
    assert caught.value.code == "signature_missing"


GOOD = b64_hmac(KEY, NOW, BODY)


@pytest.mark.parametrize(
    "header",
    [
        f"key={GOOD}",  # no timestamp
        f"timestamp=,key={GOOD}",
        f"timestamp=abc,key={GOOD}",
        f"timestamp=-{NOW},key={GOOD}",
        f"timestamp=+{NOW},key={GOOD}",
        f"timestamp={NOW}.5,key={GOOD}",
        f"timestamp=1{'0' * 20},key={GOOD}",
        f"timestamp={NOW}",  # no key
        f"timestamp={NOW},key=",
        f"timestamp={NOW},key={GOOD};",
        f"timestamp={NOW},key=;{GOOD}",
        f"timestamp={NOW},key=not base64!",
        f"timestamp={NOW},key=abc",  # bad padding
        f"timestamp={NOW},key={GOOD.rstrip('=')}",
        f"timestamp={NOW},key={GOOD.replace('+', '-').replace('/', '_')}x",
        f"timestamp={NOW},timestamp={NOW},key={GOOD}",  # duplicated parts
        f"timestamp={NOW},key={GOOD},key={GOOD}",
        f"timestamp={NOW},{GOOD}",  # a part without name=
        f"timestamp={NOW};key={GOOD}",
        f"timestamp={NOW},key={';'.join([GOOD] * 20)}",
        "x" * 5000,
    ],
)
def test_malformed_headers(header: str) -> None:
    with pytest.raises(SignatureMalformed) as caught:
        verify_signature(BODY, header, [KEY], now=NOW)
    assert caught.value.code == "signature_malformed"


def test_unknown_parts_are_ignored() -> None:
    header = f"timestamp={NOW},v0=whatever,key={GOOD}"
    assert verify_signature(BODY, header, [KEY], now=NOW) == NOW


def test_errors_are_distinct_subclasses_of_one_base() -> None:
    classes = {SignatureMissing, SignatureMalformed, SignatureStale, SignatureMismatch}
    assert all(issubclass(c, SignatureError) for c in classes)
    assert len({c.code for c in classes}) == 4


def test_parsed_header_exposes_the_timestamp() -> None:
    parsed = parse_signature_header(f"timestamp={NOW},key={GOOD};{GOOD}")
    assert parsed.timestamp == NOW and parsed.timestamp_text == str(NOW) and len(parsed.signatures) == 2


def test_body_must_be_bytes_and_a_key_must_be_configured() -> None:
    with pytest.raises(TypeError):
        verify_signature(BODY.decode(), sign(BODY, KEY, NOW), [KEY], now=NOW)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        verify_signature(BODY, sign(BODY, KEY, NOW), [], now=NOW)


def test_default_clock_is_now() -> None:
    import time

    now = int(time.time())
    assert verify_signature(BODY, sign(BODY, KEY, now), [KEY]) == now
    with pytest.raises(SignatureStale):
        verify_signature(BODY, sign(BODY, KEY, now - 3600), [KEY])


# -- properties -------------------------------------------------------------------------------

bodies = st.one_of(
    st.binary(max_size=2048),
    st.text(max_size=500).map(str.encode),
    st.text(alphabet=st.characters(min_codepoint=0xAC00, max_codepoint=0xD7A3), max_size=200).map(str.encode),
)
keys = st.text(min_size=1, max_size=64)
timestamps = st.integers(min_value=0, max_value=10**12)


@given(body=bodies, key=keys, timestamp=timestamps)
def test_sign_then_verify_round_trips(body: bytes, key: str, timestamp: int) -> None:
    assert verify_signature(body, sign(body, key, timestamp), [key], now=timestamp) == timestamp


@given(body=bodies.filter(bool), key=keys, data=st.data())
def test_any_single_byte_change_fails(body: bytes, key: str, data: st.DataObject) -> None:
    header = sign(body, key, NOW)
    index = data.draw(st.integers(min_value=0, max_value=len(body) - 1))
    delta = data.draw(st.integers(min_value=1, max_value=255))
    tampered = bytearray(body)
    tampered[index] = (tampered[index] + delta) % 256
    with pytest.raises(SignatureMismatch):
        verify_signature(bytes(tampered), header, [key], now=NOW)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=200)
@given(value=st.dictionaries(st.text(max_size=8), json_values, min_size=1, max_size=5), key=keys)
def test_reserialised_json_never_verifies(value: dict[str, object], key: str) -> None:
    # StepPay's bytes, compact and UTF-8; a receiver that re-serialises gets other bytes.
    sent = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    header = sign(sent, key, NOW)
    reserialised = json.dumps(json.loads(sent), indent=1).encode()
    assert reserialised != sent
    with pytest.raises(SignatureMismatch):
        verify_signature(reserialised, header, [key], now=NOW)
