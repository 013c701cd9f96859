"""The page tests' browser (tests/browser.py) itself: it sees a page's requests, and pointer events reach it."""
from __future__ import annotations

from browser import open_page


def test_requests_off_the_disk_are_caught_and_pointer_events_arrive(tmp_path):
    page_file = tmp_path / "page.html"
    page_file.write_text(
        "<!doctype html><canvas id=c width=200 height=200></canvas>"
        "<img src='https://cdn.example.com/x.png'>"
        "<script>let n = 0; c.addEventListener('pointermove', () => document.title = 'moves ' + (++n));</script>")
    with open_page(page_file, viewport=(300, 300)) as page:
        page.mouse.move(20, 20)
        page.mouse.down()
        page.mouse.move(120, 120, steps=5)
        page.mouse.up()
        assert page.title() == "moves 6"
        assert page.outside() == ["https://cdn.example.com/x.png"]  # asked for, refused: the context is offline
        assert page.requests[0] == page_file.resolve().as_uri()
