"""Restart the local RabbitMQ from a test, and always leave it running.

``rabbitmqctl stop_app`` / ``start_app`` stop and start the broker inside its
Erlang node, as an operator's restart does: connections die, and only durable
queues and persistent messages survive.  Other tests running at the same time
see the broker go away too, so use this sparingly (CI runs such a test alone).

Whatever happens, the broker is started again and this waits until its AMQP
(5672) and STOMP (61613) ports answer.  Without ``rabbitmqctl`` the test fails
with a sentence saying so (a skip would hide it in CI).
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time

import pytest

RABBITMQ_PORTS = (5672, 61613)
CTL_TIMEOUT = 60.0
"""Seconds one rabbitmqctl command, or the ports coming back, may take."""


def _rabbitmqctl() -> str:
    found = shutil.which("rabbitmqctl") or shutil.which("rabbitmqctl", path="/usr/sbin:/sbin")
    if found is None:
        pytest.fail(
            "this test restarts RabbitMQ with rabbitmqctl, which is not on PATH (nor in "
            "/usr/sbin); run it on the machine where the broker runs, with its tools installed"
        )
    return found


def _run(ctl: str, command: str) -> None:
    try:
        result = subprocess.run(
            [ctl, command], capture_output=True, text=True, timeout=CTL_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"rabbitmqctl {command} did not finish within {CTL_TIMEOUT:.0f}s")
    if result.returncode != 0:
        pytest.fail(f"rabbitmqctl {command} failed ({result.returncode}): {result.stderr.strip()}")


def _wait_for_ports() -> None:
    deadline = time.monotonic() + CTL_TIMEOUT
    for port in RABBITMQ_PORTS:
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"RabbitMQ's port {port} did not answer after start_app")
                time.sleep(0.1)


async def restart_rabbitmq() -> None:
    """Stop RabbitMQ's application, start it again, and wait until 5672 and 61613 answer.

    The stop runs in a thread so that the event loop sees the connections
    die; the start runs whatever happened before it (failure, cancellation).
    """
    ctl = _rabbitmqctl()
    try:
        await asyncio.to_thread(_run, ctl, "stop_app")
    finally:
        # Blocking on purpose: it must run even when the test is being cancelled.
        _run(ctl, "start_app")
        _wait_for_ports()
