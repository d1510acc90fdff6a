"""DynamoDB Local and moto launchers: loopback only, clear errors, restarts."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from steppay_local import dynamodb as dynamodb_module
from steppay_local._util import client
from steppay_local.dynamodb import DynamoDBLocal, DynamoDBLocalError
from steppay_local.moto_server import MotoServer


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
