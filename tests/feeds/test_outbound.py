"""Feed URLs a request names: refused unless configured or allowed, public addresses only,
and no answer that tells an open port from a closed one (no server-side request forgery)."""

from __future__ import annotations

import socket
from typing import Any

import httpx
import pytest
from feed_support import FeedServer

from moksha.config import load_config
from moksha.errors import ConfigError
from moksha.feeds.outbound import PublicAddressTransport, is_public_address, url_matches
from moksha.web import MokshaMiddleware


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # nothing listens once it is closed


async def widget_page(settings: dict[str, Any], path: str, **params: str) -> httpx.Response:
    """GET ``path`` of Moksha's site with ``settings`` (no file, no environment), in-process."""
    config = load_config(overrides=settings, environ={}, search=False)
    app = MokshaMiddleware(None, config)
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        return await http.get(path, params=params)


# -- patterns ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "url", "admitted"),
    [
        ("https://*.example.org/*", "https://news.example.org/feed.xml", True),
        ("https://*.example.org/*", "https://example.org.evil.test/feed.xml", False),
        ("https://*.example.org/*", "https://evil.test/x.example.org/feed.xml", False),
        ("https://*.example.org/*", "https://evil.test/?.example.org", False),
        ("https://*.example.org/*", "http://news.example.org/feed.xml", False),  # scheme
        ("https://example.org", "https://example.org/any/path?q=1", True),
        ("https://example.org", "https://example.org:6379/", False),  # another port
        ("https://example.org:8443/*", "https://example.org:8443/a", True),
        ("http://127.0.0.1:*/*", "http://127.0.0.1:6379/", True),
        ("http://127.0.0.1:*/*", "http://127.0.0.2:6379/", False),
        ("https://example.org/feeds/*", "https://example.org/feeds/a.xml", True),
        ("https://example.org/feeds/*", "https://example.org/admin", False),
        ("https://example.org/*", "https://user@evil.test/", False),
    ],
)
def test_an_allow_pattern_matches_host_port_and_path_apart(
    pattern: str, url: str, admitted: bool
) -> None:
    assert url_matches(pattern, url) is admitted


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # shared address space
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("fe80::1", False),
        ("fd00::1", False),
        ("::ffff:127.0.0.1", False),
    ],
)
def test_only_global_addresses_are_public(address: str, public: bool) -> None:
    assert is_public_address(address) is public


# -- the transport -------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:6379/",
        "http://localhost/feed.xml",
        "http://[::1]/feed.xml",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/feed.xml",
    ],
)
async def test_the_transport_refuses_non_public_hosts_without_sending(url: str) -> None:
    sent: list[httpx.Request] = []
    inner = httpx.MockTransport(lambda request: sent.append(request) or httpx.Response(200))
    async with httpx.AsyncClient(transport=PublicAddressTransport(inner)) as http:
        with pytest.raises(httpx.ConnectError, match=r"^refused: not a public address$"):
            await http.get(url)
    assert sent == []


async def test_the_transport_connects_to_the_address_it_checked_keeping_the_host_name() -> None:
    sent: list[httpx.Request] = []
    inner = httpx.MockTransport(lambda request: sent.append(request) or httpx.Response(200))
    async with httpx.AsyncClient(transport=PublicAddressTransport(inner)) as http:
        response = await http.get("https://93.184.216.34/feed.xml")
    assert response.status_code == 200
    [request] = sent
    assert request.url == "https://93.184.216.34/feed.xml"
    assert request.extensions["sni_hostname"] == "93.184.216.34"


async def test_a_redirect_to_a_private_address_is_refused_too() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"Location": "http://127.0.0.1:6379/"})

    inner = httpx.MockTransport(answer)
    async with httpx.AsyncClient(
        transport=PublicAddressTransport(inner), follow_redirects=True
    ) as http:
        with pytest.raises(httpx.ConnectError, match="not a public address"):
            await http.get("https://93.184.216.34/feed.xml")


# -- the widget page -----------------------------------------------------------


async def test_a_url_that_is_neither_configured_nor_allowed_is_refused(
    feed_server: FeedServer,
) -> None:
    url = feed_server.url("/rss20.xml")
    open_port = await widget_page({}, "/widgets/feed_entries", url=url)
    closed = await widget_page(
        {}, "/widgets/feed_entries", url=f"http://127.0.0.1:{closed_port()}/rss20.xml"
    )
    assert open_port.status_code == closed.status_code == 403
    assert "this site does not show that feed" in open_port.text
    assert "moksha.feeds.allow" in open_port.text
    assert open_port.text == closed.text  # nothing tells an open port from a closed one
    assert feed_server.hits["/rss20.xml"] == 0  # refused before any connection


async def test_an_allowed_url_on_a_loopback_address_is_not_fetched_and_says_nothing(
    feed_server: FeedServer,
) -> None:
    settings = {"moksha.feeds.allow": "http://127.0.0.1:*/*"}
    served = await widget_page(settings, "/widgets/feed_entries", url=feed_server.url("/rss20.xml"))
    closed = await widget_page(
        settings, "/widgets/feed_entries", url=f"http://127.0.0.1:{closed_port()}/rss20.xml"
    )
    assert served.status_code == closed.status_code == 200
    for page in (served, closed):
        assert '<p class="moksha-problem" role="alert">This feed cannot be shown now.</p>' in (
            page.text
        )
        assert "refused" not in page.text and "answered" not in page.text
    assert feed_server.hits["/rss20.xml"] == 0


async def test_allow_private_lets_an_allowed_url_reach_a_local_feed(
    feed_server: FeedServer,
) -> None:
    settings = {"moksha.feeds.allow": "http://127.0.0.1:*/*", "moksha.feeds.allow_private": True}
    page = await widget_page(settings, "/widgets/feed_entries", url=feed_server.url("/rss20.xml"))
    assert page.status_code == 200
    assert "Release 1.0" in page.text


async def test_a_configured_feed_is_shown_wherever_it_is(feed_server: FeedServer) -> None:
    url = feed_server.url("/rss20.xml")
    page = await widget_page({"feed.urls": url}, "/widgets/live_feed_entries", url=url)
    assert page.status_code == 200
    assert "Release 1.0" in page.text


def test_a_bad_allow_private_value_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"moksha\.feeds\.allow_private"):
        load_config(overrides={"moksha.feeds.allow_private": "maybe"}, environ={}, search=False)
