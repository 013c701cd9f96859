"""Headless Chromium for the tests of pages the project writes (draw.html, DVC's plots page).

Debian's chromium (`make chromium` installs it), driven through Playwright's Python API
with executable_path: no browser download, real pointer events, and a log of every
request a page makes. The browser context is offline, and `page.requests` lists
what the page asked for, so a test can assert it stayed on file://.

    from browser import open_page          # in a test
    with open_page(path, viewport=(1280, 800)) as page:
        page.mouse.move(...); ...
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
