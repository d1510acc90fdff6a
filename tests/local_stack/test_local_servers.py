"""DynamoDB Local and moto launchers: loopback only, clear errors, restarts."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from steppay_local import dynamodb as dynamodb_module
from steppay_local._util import client
from steppay_local.dynamodb import DynamoDBLocal, DynamoDBLocalError
from steppay_local.moto_server import MotoServer
from steppay_local.stack import LocalStack, LocalStackConfig


def listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as in /proc/net/tcp*) of the sockets listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            address, port_hex = fields[1].rsplit(":", 1)
            if int(port_hex, 16) == port and fields[3] == "0A":
                found.add(address)
    return found


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc")
def test_servers_listen_on_loopback_only(dynamodb_local: DynamoDBLocal, moto_server: MotoServer) -> None:
    loopback_v4 = "0100007F"
    loopback_mapped_v6 = "0000000000000000FFFF00000100007F"
    for port in (dynamodb_local.port, moto_server.port):
        addresses = listening_addresses(port)
        assert addresses, port
        assert addresses <= {loopback_v4, loopback_mapped_v6}, (port, addresses)


def test_a_taken_port_is_reported_clearly() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(RuntimeError, match="DYNAMODB_PORT"):
            DynamoDBLocal(port=port).start()
        with pytest.raises(RuntimeError, match="MOTO_PORT"):
            MotoServer(port=port).start()


def test_missing_installation_names_the_bootstrap_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(DynamoDBLocalError, match=r"scripts/bootstrap\.sh"):
        dynamodb_module.find_jar(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DynamoDBLocalError, match=r"scripts/bootstrap\.sh"):
        dynamodb_module.find_java()


def test_moto_restarts_on_the_same_port() -> None:
    server = MotoServer(port=0).start()
    try:
        port = server.port
        client("sqs", server.endpoint_url).create_queue(QueueName="before-restart")
        server.restart()
        assert server.port == port
        queues = client("sqs", server.endpoint_url).list_queues().get("QueueUrls", [])
        assert queues == []  # moto keeps nothing across restarts
    finally:
        server.stop()
    assert not server.running


def test_the_stack_checks_its_fixed_ports_before_starting_anything() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        config = LocalStackConfig(api_port=0, dynamodb_port=0, moto_port=0, sandbox_port=port)
        with pytest.raises(RuntimeError, match="SANDBOX_PORT"):
            LocalStack(config).start()


def test_configuration_from_the_environment(tmp_path: Path) -> None:
    defaults = LocalStackConfig.from_env({}, root=tmp_path)
    assert (defaults.api_port, defaults.dynamodb_port, defaults.moto_port, defaults.sandbox_port) == (
        3000,
        8000,
        5010,
        8181,
    )
    assert defaults.data_dir == tmp_path / ".local-data"
    assert defaults.secret_token == "sandbox-secret-token"
    assert defaults.webhook_keys == "sandbox-webhook-key"
    assert defaults.allowed_redirect_hosts == "localhost,127.0.0.1"
    assert defaults.result_page_url == "http://127.0.0.1:8080/result.html"
    assert defaults.allowed_origins == "http://127.0.0.1:8080,http://localhost:8080"
    custom = LocalStackConfig.from_env(
        {
            "LOCAL_API_PORT": "3100",
            "DYNAMODB_PORT": "8100",
            "MOTO_PORT": "5110",
            "SANDBOX_PORT": "8281",
            "LOCAL_DATA_DIR": "/tmp/elsewhere",
            "STEPPAY_SECRET_TOKEN": "t",
            "STEPPAY_WEBHOOK_KEYS": "k1,k2",
            "ALLOWED_REDIRECT_HOSTS": "example.test",
            "RESULT_PAGE_URL": "http://127.0.0.1:9000/r",
            "ALLOWED_ORIGINS": "http://127.0.0.1:9000",
        },
        root=tmp_path,
    )
    assert (custom.api_port, custom.dynamodb_port, custom.moto_port, custom.sandbox_port) == (
        3100,
        8100,
        5110,
        8281,
    )
    assert custom.data_dir == Path("/tmp/elsewhere")
    assert (custom.secret_token, custom.webhook_keys) == ("t", "k1,k2")
    assert custom.allowed_redirect_hosts == "example.test"
    assert LocalStackConfig.from_env({"LOCAL_IN_MEMORY": "1"}).data_dir is None
    stack = LocalStack(custom)
    stack.sandbox_url = "http://127.0.0.1:8281"
    assert stack.parameter_overrides() == {
        "Stage": "local",
        "SecretsStore": "ssm",
        "AllowedRedirectHosts": "example.test",
        "ResultPageUrl": "http://127.0.0.1:9000/r",
        "AllowedOrigins": "http://127.0.0.1:9000",
        "StepPayBaseUrl": "http://127.0.0.1:8281",
    }
    assert stack.environment_overrides() == {
        "STEPPAY_SECRET_TOKEN_PARAM": "",
        "STEPPAY_WEBHOOK_KEYS_PARAM": "",
        "STEPPAY_SECRET_TOKEN": "t",
        "STEPPAY_WEBHOOK_KEYS": "k1,k2",
    }
