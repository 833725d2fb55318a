"""The original embed when a browser cuts its pattern at '#': the page's console says why."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from conftest import Site, StartHub


def test_a_pattern_cut_at_hash_tells_the_page_author_to_write_23(
    start_hub: StartHub, page: Page, other_origin: Site
) -> None:
    hub = start_hub({"moksha.livesocket.allowed_origins": other_origin.url})
    base = hub.livesocket_url
    url = other_origin.page(
        "embed.html",
        f"""<!doctype html>
        <script>function f(json) {{}}</script>
        <script src="{base}/livesocket?topic=moksha.demo.#&callback=f"></script>
        """,
    )
    errors: list[str] = []
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.goto(url)
    page.wait_for_load_state("load")
    assert len(errors) == 1, errors
    assert "%23" in errors[0] and "'moksha.demo.'" in errors[0]
    assert "/livesocket?topic=moksha.demo.%23&callback=functionName" in errors[0]
    # What a script or curl sees: the same sentence, in the body.
    body = httpx.get(f"{base}/livesocket?topic=moksha.demo.").text
    assert "%23" in body and body.startswith("console.error(")


def test_the_embed_with_23_works(start_hub: StartHub, page: Page, other_origin: Site) -> None:
    hub = start_hub({"moksha.livesocket.allowed_origins": other_origin.url})
    base = hub.livesocket_url
    url = other_origin.page(
        "embed.html",
        f"""<!doctype html>
        <script>window.got = []; function f(json) {{ got.push(json); }}</script>
        <script src="{base}/livesocket?topic=moksha.demo.%23&callback=f"></script>
        """,
    )
    page.goto(url)
    assert hub.livesocket is not None
    page.wait_for_function("moksha.state === 'open'")
    hub.send_message("moksha.demo.counter", {"n": 1})
    page.wait_for_function("got.length >= 1")
    assert page.evaluate("got") == [{"n": 1}]
