"""Fixtures of the backend tests that talk to RabbitMQ, and a test certificate for TLS."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator
from uuid import uuid4

import aio_pika
import pytest
from amqp_support import BROKER

from moksha.hub.backends.amqp_registry import Registry
from support import RUN, require_service


@pytest.fixture
def rabbit() -> None:
    require_service("RabbitMQ", 5672)


@pytest.fixture
def prefix() -> str:
    return f"test.amqp.{RUN}.{uuid4().hex[:12]}"


@pytest.fixture
async def raw(rabbit: None) -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    """A plain aio-pika channel, as a non-Moksha program would use."""
    async with await aio_pika.connect(BROKER) as connection:
        yield await connection.channel()


@pytest.fixture
async def durable_queues(raw: aio_pika.abc.AbstractChannel) -> AsyncIterator[list[str]]:
    """Names of durable queues a test declares; deleted (with their record) at teardown."""
    names: list[str] = []
    yield names
    async with Registry.open(BROKER, "moksha") as registry:
        for name in names:
            await registry.delete(name)


@pytest.fixture
def tls_files(tmp_path) -> tuple[str, str]:
    """A self-signed key and certificate for 127.0.0.1, made with the openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    key, crt = str(tmp_path / "key.pem"), str(tmp_path / "crt.pem")
    command = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
    command += " -days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1"
    subprocess.run([*command.split(), "-keyout", key, "-out", crt], check=True, capture_output=True)
    return key, crt
