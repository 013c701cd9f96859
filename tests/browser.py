"""Headless Chromium for the tests of pages the project writes (draw.html, DVC's plots page).

Debian's chromium (`make chromium` installs it), driven through Playwright's Python API
with executable_path: no browser download, real pointer events, and a log of every
request a page makes. The browser context is offline, and `page.requests` lists
what the page asked for, so a test can assert it stayed on file://.

    from browser import open_page          # in a test
    with open_page(path, viewport=(1280, 800)) as page:
        draw(page, "#pad", [[(0.2, 0.2), (0.8, 0.8)]])   # or page.mouse.move(...) ...
        assert page.outside() == []
"""
from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Iterator

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# As root in a container: no sandbox; and none of Chromium's own calls home.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-default-apps", "--disable-extensions"]


@contextlib.contextmanager
def open_page(path: Path, viewport=(1280, 800), scale: float = 1.0, touch: bool = False) -> Iterator:
    """The page at `path`, loaded from disk in a fresh offline browser; `page.requests` and
    `page.outside()` (the requests not to file://) are added to Playwright's Page."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM}: not found; the page tests need Debian's chromium (make chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]},
                                          device_scale_factor=scale, has_touch=touch, is_mobile=touch,
                                          offline=True)
            page = context.new_page()
            page.requests = []
            page.errors = []
            page.on("request", lambda r: page.requests.append(r.url))
            page.on("pageerror", lambda e: page.errors.append(str(e)))
            page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
            page.outside = lambda: [u for u in page.requests if not u.startswith(("file://", "data:", "blob:"))]
            page.goto(Path(path).resolve().as_uri())
            yield page
        finally:
            browser.close()


def draw(page, selector: str, strokes, touch: bool = False, steps: int = 6) -> None:
    """Draw `strokes` on the element: each a list of (u, v) in 0..1 of its box, joined by
    `steps` moves per leg. With the mouse, or with a finger through Chromium's touch input
    (CDP Input.dispatchTouchEvent: Playwright's touchscreen only taps); either way the page
    gets real pointer events, of pointerType "mouse" or "touch"."""
    box = page.locator(selector).bounding_box()
    cdp = page.context.new_cdp_session(page) if touch else None

    def finger(kind, point=None):
        cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [dict(zip("xy", point))] if point else []})

    for stroke in strokes:
        at = [(box["x"] + u * box["width"], box["y"] + v * box["height"]) for u, v in stroke]
        legs = [(x0 + (x1 - x0) * i / steps, y0 + (y1 - y0) * i / steps)
                for (x0, y0), (x1, y1) in zip(at, at[1:]) for i in range(1, steps + 1)]
        if touch:
            finger("touchStart", at[0])
            for point in legs:
                finger("touchMove", point)
            finger("touchEnd")
        else:
            page.mouse.move(*at[0])
            page.mouse.down()
            for point in legs:
                page.mouse.move(*point)
            page.mouse.up()
    if cdp:
        cdp.detach()
