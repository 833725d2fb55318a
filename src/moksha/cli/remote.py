"""Reaching a running hub from another process: its URL, finding it, publishing through it.

A hub serving the live socket (``moksha hub`` with ``moksha.livesocket.backend
= websocket``, or ``moksha start``) answers HTTP beside its WebSocket:
``GET /livesocket/status`` tells a Moksha hub from any other server, and
``POST /livesocket/publish`` publishes for processes that have no broker of
their own.  ``moksha send`` and ``moksha tail`` share this module: the
``--hub URL`` option (default ``$MOKSHA_HUB_URL``), the discovery of a hub on
the default local ports, and the translation of HTTP failures into sentences.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import click
import httpx

from moksha.config import Config
from moksha.errors import BackendError, BackendUnavailable

__all__ = [
    "DEFAULT_WEB_PORT",
    "HUB_URL_VARIABLE",
    "candidate_urls",
    "find_hub",
    "hub_option",
    "is_loopback",
    "no_hub_found",
    "publish_remote",
    "unreachable",
    "websocket_url",
]

F = TypeVar("F", bound=Callable[..., Any])

HUB_URL_VARIABLE = "MOKSHA_HUB_URL"
# Where `moksha start` serves its web app, live socket included.
DEFAULT_WEB_PORT = 8080
# A hub on this machine answers in microseconds; anything slower is not one worth waiting for.
PROBE_TIMEOUT_S = 0.5
PUBLISH_TIMEOUT_S = 10.0
# How much of a puzzling answer to quote back.
_QUOTED_CHARS = 200
_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}


def _normalise_url(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """``127.0.0.1:9998`` → ``http://127.0.0.1:9998``; ``ws://`` → ``http://``; no final ``/``."""
    if value is None or not value.strip():
        return None
    text = value.strip().rstrip("/")
    if "://" not in text:
        text = f"http://{text}"
    try:
        url = httpx.URL(text)
    except httpx.InvalidURL as exc:
        raise click.BadParameter(
            f"{value!r} is not a URL ({exc}); write e.g. http://host:9998"
        ) from exc
    if url.scheme not in _SCHEMES or not url.host:
        raise click.BadParameter(f"{value!r} is not an http:// or https:// URL of a Moksha hub")
    return str(url.copy_with(scheme=_SCHEMES[url.scheme])).rstrip("/")


def hub_option(command: F) -> F:
    """Add ``--hub URL`` (default: ``$MOKSHA_HUB_URL``) to a command; the value is normalised."""
    return click.option(
        "--hub",
        "hub_url",
        metavar="URL",
        envvar=HUB_URL_VARIABLE,
        callback=_normalise_url,
        help=(
            "A running hub's URL, e.g. http://127.0.0.1:9998 (`moksha hub` with "
            "moksha.livesocket.backend = websocket) or http://127.0.0.1:8080 (`moksha start`). "
            f"Default: ${HUB_URL_VARIABLE}, else a hub found on those local ports."
        ),
    )(command)


def candidate_urls(config: Config) -> list[str]:
    """Where a hub on this machine answers by default, in order of preference.

    Args:
        config: supplies ``moksha.livesocket.websocket.port`` (0, "any free
            port", cannot be guessed and is left out).

    Returns:
        ``http://127.0.0.1:8080`` (``moksha start``), then the live socket's own port.
    """
    ports = [DEFAULT_WEB_PORT, config.livesocket_websocket_port]
    return [f"http://127.0.0.1:{port}" for port in dict.fromkeys(ports) if port]


async def find_hub(config: Config) -> str | None:
    """The URL of a Moksha hub answering on a default local port, if any.

    Every candidate is asked ``GET /livesocket/status`` at once; a server that
    answers something else (another program on port 8080) does not count.

    Args:
        config: as for :func:`candidate_urls`.

    Returns:
        The first candidate of :func:`candidate_urls` that is a hub, or None.
    """
    candidates = candidate_urls(config)
    # Loopback only: a proxy from the environment has nothing to do with it.
    async with httpx.AsyncClient(timeout=PROBE_TIMEOUT_S, trust_env=False) as client:
        answers = await asyncio.gather(*(_is_hub(client, url) for url in candidates))
    return next((url for url, is_hub in zip(candidates, answers, strict=True) if is_hub), None)


async def _is_hub(client: httpx.AsyncClient, url: str) -> bool:
    try:
        response = await client.get(f"{url}/livesocket/status")
        status = response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return False
    return isinstance(status, dict) and "clients" in status


def no_hub_found(config: Config) -> str:
    """The sentence for "discovery found nothing": where it looked, and what to do."""
    places = " or ".join(url.removeprefix("http://") for url in candidate_urls(config))
    return (
        f"no Moksha hub answers on {places}: start one with `moksha start` or `moksha hub`, "
        "or give --hub URL"
    )


def unreachable(url: str) -> BackendUnavailable:
    """The error for a hub URL where nothing listens."""
    return BackendUnavailable(
        f"no Moksha hub answers at {url}: start one with `moksha hub` (with "
        "moksha.livesocket.backend = websocket) or `moksha start`"
    )


def is_loopback(url: str) -> bool:
    """Whether ``url`` names this machine (then no proxy from the environment applies)."""
    host = httpx.URL(url).host
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def websocket_url(url: str) -> str:
    """The live socket's WebSocket URL under a hub URL (``https`` → ``wss``)."""
    scheme = "wss" if url.startswith("https:") else "ws"
    return f"{scheme}:{url.partition(':')[2]}/livesocket/ws"


async def publish_remote(
    url: str, topic: str, body: Any, headers: Mapping[str, str], *, raw: bool = False
) -> tuple[str, str]:
    """Publish one message through the hub at ``url``.

    Args:
        url: the hub, as :func:`hub_option` gives it.
        topic: where to publish.
        body: any JSON value.
        headers: sent along with the message.
        raw: ``body`` is text to send as it is, not encoded as JSON (asked
            with ``"raw": true``; a hub that ignores it sends the text as a JSON string).

    Returns:
        The message id and topic, as the hub reports them.

    Raises:
        BackendUnavailable: nothing answers at ``url``, or not in time.
        BackendError: the hub answered with an error (its message is quoted).
    """
    request: dict[str, Any] = {"topic": topic, "body": body, "headers": dict(headers)}
    if raw:
        request["raw"] = True
    async with httpx.AsyncClient(
        timeout=PUBLISH_TIMEOUT_S, trust_env=not is_loopback(url)
    ) as client:
        try:
            response = await client.post(f"{url}/livesocket/publish", json=request)
        except httpx.ConnectError as exc:
            raise unreachable(url) from exc
        except httpx.TimeoutException as exc:
            raise BackendUnavailable(
                f"the hub at {url} did not answer within {PUBLISH_TIMEOUT_S:g} s"
            ) from exc
        except httpx.HTTPError as exc:
            raise BackendUnavailable(f"cannot reach the hub at {url}: {exc}") from exc
    if response.is_error:
        raise BackendError(_refusal(url, response))
    try:
        answer = response.json()
        return str(answer["id"]), str(answer["topic"])
    except (ValueError, KeyError, TypeError) as exc:
        raise BackendError(
            f"{url} answered the publish request with something other than a Moksha hub's "
            f"answer: {response.text[:_QUOTED_CHARS]!r}"
        ) from exc


def _refusal(url: str, response: httpx.Response) -> str:
    """What went wrong, from a hub's ``{"error": ...}`` answer or any other error page."""
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        # Not a hub's answer: quoting an HTML error page would not help anyone.
        return (
            f"{url} answered {response.status_code} {response.reason_phrase} to "
            "POST /livesocket/publish: is it a Moksha hub with moksha.livesocket.backend = "
            "websocket?"
        )
    return f"the hub at {url} refused the message ({response.status_code}): {error}"
