"""Settings from the environment; secrets from SSM, Secrets Manager (moto) or plain env; never shown."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import boto3
import pytest
from aws_lambda_powertools.utilities.parameters import base as parameters_base
from moto import mock_aws
from pydantic import SecretStr, ValidationError

from steppay import secrets, settings
from steppay.errors import SecretUnavailable
from steppay.settings import Settings, get_settings

REGION = "ap-northeast-2"
TOKEN = "sk_live_7f3a-THE-SECRET-TOKEN-91c2"
KEY_A = "whk_current-9b1e-SECRET"
KEY_B = "whk_next-44d0-SECRET"
SETTING_VARS = [
    "STAGE",
    "STEPPAY_BASE_URL",
    "STEPPAY_SECRET_TOKEN_PARAM",
    "STEPPAY_SECRET_TOKEN",
    "STEPPAY_WEBHOOK_KEYS_PARAM",
    "STEPPAY_WEBHOOK_KEYS",
    "STEPPAY_TIMEZONE",
    "STEPPAY_CONNECT_TIMEOUT",
    "STEPPAY_READ_TIMEOUT",
    "STEPPAY_MAX_RETRIES",
    "WEBHOOK_TOLERANCE_SECONDS",
    "TABLE_NAME",
    "EVENT_BUS_NAME",
    "ALLOWED_REDIRECT_HOSTS",
    "RESULT_PAGE_URL",
    "WEBHOOK_QUEUE_URL",
    "RECONCILIATION_WINDOW_MINUTES",
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in SETTING_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_SSM", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_SECRETSMANAGER", raising=False)
    _reset()
    yield
    _reset()


def _reset() -> None:
    get_settings.cache_clear()
    secrets.clear_secret_caches()
    # Powertools keeps one provider (and boto3 client) per store; start each test with none.
    parameters_base.DEFAULT_PROVIDERS.clear()  # type: ignore[attr-defined]  # not re-exported


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


# -- settings ------------------------------------------------------------------------------


def test_defaults_match_the_architecture_page() -> None:
    s = Settings.from_environment()
    assert s.stage == "local"
    assert s.steppay_base_url == "https://api.steppay.kr"
    assert s.steppay_timezone == "UTC" and str(s.zone) == "UTC"
    assert (s.steppay_connect_timeout, s.steppay_read_timeout, s.steppay_max_retries) == (3.05, 10.0, 2)
    assert s.webhook_tolerance_seconds == 300
    assert s.allowed_redirect_hosts == ()
    assert s.steppay_secret_token.get_secret_value() == ""


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STAGE", "prod")
    monkeypatch.setenv("STEPPAY_BASE_URL", "http://127.0.0.1:8181/")
    monkeypatch.setenv("STEPPAY_TIMEZONE", "UTC")
    monkeypatch.setenv("STEPPAY_READ_TIMEOUT", "2.5")
    monkeypatch.setenv("STEPPAY_MAX_RETRIES", "0")
    monkeypatch.setenv("WEBHOOK_TOLERANCE_SECONDS", "60")
    monkeypatch.setenv("ALLOWED_REDIRECT_HOSTS", "Shop.example.com, *.example.org,,")
    monkeypatch.setenv("TABLE_NAME", "payments")
    s = get_settings()
    assert s.stage == "prod"
    assert s.steppay_base_url == "http://127.0.0.1:8181"  # trailing slash dropped
    assert s.steppay_timezone == "UTC" and s.steppay_read_timeout == 2.5 and s.steppay_max_retries == 0
    assert s.webhook_tolerance_seconds == 60
    assert s.allowed_redirect_hosts == ("shop.example.com", "*.example.org")
    assert s.table_name == "payments"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("STAGE", "staging"),
        ("STEPPAY_TIMEZONE", "Mars/Olympus"),
        ("STEPPAY_BASE_URL", "ftp://api.steppay.kr"),
        ("STEPPAY_BASE_URL", "https://user:pw@api.steppay.kr"),
        ("STEPPAY_BASE_URL", "api.steppay.kr"),
        ("STEPPAY_READ_TIMEOUT", "0"),
        ("STEPPAY_MAX_RETRIES", "-1"),
    ],
)
def test_invalid_settings_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings.from_environment()


def test_get_settings_is_cached_until_cleared(monkeypatch: pytest.MonkeyPatch) -> None:
    first = get_settings()
    monkeypatch.setenv("STAGE", "dev")
    assert get_settings() is first and first.stage == "local"
    settings.get_settings.cache_clear()
    assert get_settings().stage == "dev"


# -- secrets: plain environment ----------------------------------------------------------------


def test_token_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEPPAY_SECRET_TOKEN", f"  {TOKEN}\n")
    token = secrets.get_secret_token()
    assert isinstance(token, SecretStr) and token.get_secret_value() == TOKEN


def test_missing_token_is_an_error_that_names_the_setting() -> None:
    with pytest.raises(SecretUnavailable, match="STEPPAY_SECRET_TOKEN_PARAM"):
        secrets.get_secret_token()


def test_a_token_unfit_for_a_header_is_refused_without_quoting_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEPPAY_SECRET_TOKEN", "abc\r\nX-Injected: 1")
    with pytest.raises(SecretUnavailable) as caught:
        secrets.get_secret_token()
    assert "abc" not in str(caught.value) and "Injected" not in str(caught.value)


def test_webhook_keys_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert secrets.get_webhook_keys() == ()
    monkeypatch.setenv("STEPPAY_WEBHOOK_KEYS", KEY_A)
    settings.get_settings.cache_clear()
    assert [k.get_secret_value() for k in secrets.get_webhook_keys()] == [KEY_A]
    monkeypatch.setenv("STEPPAY_WEBHOOK_KEYS", f" {KEY_A} , {KEY_B} ")
    settings.get_settings.cache_clear()
    keys = secrets.get_webhook_keys()
    assert all(isinstance(k, SecretStr) for k in keys)
    assert [k.get_secret_value() for k in keys] == [KEY_A, KEY_B]


@pytest.mark.parametrize("blank", ["", " ", ",", " , ,"])
def test_a_blank_webhook_key_makes_signed_webhooks_refused_never_unverified(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, blank: str
) -> None:
    from steppay.intake import check_webhook_keys
    from steppay.webhooks import WebhookKeysUnconfigured, authenticate_webhook

    monkeypatch.setenv("STEPPAY_WEBHOOK_KEYS", blank)
    settings.get_settings.cache_clear()
    assert secrets.get_webhook_keys() == ()
    body = b'{"timestamp": 1, "event": "order.payment_completed", "data": {"orderId": 1}}'
    # Even a correctly shaped signature is not checked against nothing and waved through.
    with pytest.raises(WebhookKeysUnconfigured) as refused:
        authenticate_webhook(body, {"Steppay-Signature": "timestamp=1,key=AAAA"}, (), tolerance_seconds=300)
    assert (refused.value.status, refused.value.code) == (503, "webhook_keys_unconfigured")
    with pytest.raises(WebhookKeysUnconfigured):
        authenticate_webhook(body, {}, secrets.get_webhook_keys(), tolerance_seconds=300)
    # Said once, at start, in the log.
    with caplog.at_level(logging.ERROR):
        check_webhook_keys()
    assert any("No webhook verification key configured" in r.getMessage() for r in caplog.records)


def test_more_than_two_webhook_keys_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEPPAY_WEBHOOK_KEYS", "a,b,c")
    with pytest.raises(SecretUnavailable) as caught:
        secrets.get_webhook_keys()
    assert "a,b" not in str(caught.value)


# -- secrets: SSM and Secrets Manager through Powertools (moto) --------------------------------


def _ssm_put(name: str, value: str, *, overwrite: bool = False) -> None:
    boto3.client("ssm", region_name=REGION).put_parameter(
        Name=name, Value=value, Type="SecureString", Overwrite=overwrite
    )


def test_token_from_ssm_secure_string(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    _ssm_put("/steppay/dev/secret-token", TOKEN)
    monkeypatch.setenv("STEPPAY_SECRET_TOKEN_PARAM", "/steppay/dev/secret-token")
    monkeypatch.setenv("STEPPAY_SECRET_TOKEN", "ignored-when-a-name-is-configured")
    assert secrets.get_secret_token().get_secret_value() == TOKEN


def test_ssm_values_are_cached_then_refreshed(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    _ssm_put("/steppay/dev/secret-token", TOKEN)
    monkeypatch.setenv("STEPPAY_SECRET_TOKEN_PARAM", "/steppay/dev/secret-token")
    assert secrets.get_secret_token().get_secret_value() == TOKEN
    _ssm_put("/steppay/dev/secret-token", "rotated-token", overwrite=True)
    assert secrets.get_secret_token().get_secret_value() == TOKEN  # within max_age: no new call
    secrets.clear_secret_caches()
    assert secrets.get_secret_token().get_secret_value() == "rotated-token"
    assert secrets.SECRETS_MAX_AGE_SECONDS == 300


def test_webhook_keys_from_ssm(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    _ssm_put("/steppay/dev/webhook-keys", f"{KEY_A},{KEY_B}")
    monkeypatch.setenv("STEPPAY_WEBHOOK_KEYS_PARAM", "/steppay/dev/webhook-keys")
    assert [k.get_secret_value() for k in secrets.get_webhook_keys()] == [KEY_A, KEY_B]


def test_token_and_keys_from_secrets_manager(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    client = boto3.client("secretsmanager", region_name=REGION)
    client.create_secret(Name="/steppay/prod/secret-token", SecretString=TOKEN)
    client.create_secret(Name="/steppay/prod/webhook-keys", SecretString=KEY_A)
    monkeypatch.setenv("STEPPAY_SECRET_TOKEN_PARAM", "secretsmanager:/steppay/prod/secret-token")
    monkeypatch.setenv("STEPPAY_WEBHOOK_KEYS_PARAM", "secretsmanager:/steppay/prod/webhook-keys")
    assert secrets.get_secret_token().get_secret_value() == TOKEN
    assert [k.get_secret_value() for k in secrets.get_webhook_keys()] == [KEY_A]


def test_secrets_manager_binary_secret(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name="token-bin", SecretBinary=TOKEN.encode()
    )
    monkeypatch.setenv("STEPPAY_SECRET_TOKEN_PARAM", "secretsmanager:token-bin")
    assert secrets.get_secret_token().get_secret_value() == TOKEN


def test_unreadable_store_is_a_typed_error(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEPPAY_SECRET_TOKEN_PARAM", "/steppay/dev/does-not-exist")
    with pytest.raises(SecretUnavailable, match="does-not-exist"):
        secrets.get_secret_token()
    monkeypatch.setenv("STEPPAY_WEBHOOK_KEYS_PARAM", "secretsmanager:nope")
    settings.get_settings.cache_clear()
    with pytest.raises(SecretUnavailable):
        secrets.get_webhook_keys()


# -- never shown ---------------------------------------------------------------------------------


def test_secrets_never_appear_in_reprs_strings_dumps_or_logs(
    aws: None,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # botocore's own DEBUG wire log prints response bodies (a parameter's value included); it
    # must stay above DEBUG wherever secrets are read. Our code's logs are captured at DEBUG
    # (set last: the capture handler takes the last level set).
    caplog.set_level(logging.INFO, logger="botocore")
    caplog.set_level(logging.DEBUG)
    _ssm_put("/steppay/dev/secret-token", TOKEN)
    monkeypatch.setenv("STEPPAY_SECRET_TOKEN_PARAM", "/steppay/dev/secret-token")
    monkeypatch.setenv("STEPPAY_SECRET_TOKEN", TOKEN)
    monkeypatch.setenv("STEPPAY_WEBHOOK_KEYS", f"{KEY_A},{KEY_B}")
    s = get_settings()
    token = secrets.get_secret_token()
    keys = secrets.get_webhook_keys()
    logging.getLogger("steppay.test").info("settings %s token %s keys %s", s, token, keys)
    shown = [
        repr(s),
        str(s),
        s.model_dump_json(),
        str(s.model_dump()),
        repr(token),
        str(token),
        repr(keys),
        str(keys),
        caplog.text,
        *(r.getMessage() for r in caplog.records),
    ]
    captured = capsys.readouterr()
    shown += [captured.out, captured.err]
    assert caplog.records  # the logging above was captured, so its absence of secrets means something
    for text in shown:
        for secret in (TOKEN, KEY_A, KEY_B):
            assert secret not in text
