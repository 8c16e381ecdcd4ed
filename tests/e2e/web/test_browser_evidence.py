"""Chromium reads "Why this genre" on a track page, filters the library to the tracks whose
audio disagrees with their tag, and keeps a file's genre with one click.

The tracks are stored as a worker stores them (tests/app/web/evidence_helpers.py), so no
worker runs: the page, not the analysis, is what this test is about.
"""

from __future__ import annotations

import pytest
from django.db import connections

from tests.app.web.conftest import PASSWORD
from tests.app.web.evidence_helpers import arrive, audio_analysis, tagged_file
from tests.e2e.web.test_browser import screenshot

pytestmark = pytest.mark.django_db(transaction=True)


def test_why_this_genre_and_the_review_queue(live_server, user, page, tmp_path):
    for n in range(2):
        path = tagged_file(tmp_path, "flac", f"rock{n}", n, album=["Tones"], artist=["Sine"])
        arrive(user, path, audio_analysis({"Rock": 0.7, "Blues": 0.2}))
    odd = tagged_file(
        tmp_path, "flac", "odd", 7, album=["Tones"], artist=["Sine"], genre=["Jazz", "Sad Jazz+"]
    )
    arrive(user, odd, audio_analysis({"Metal": 0.95, "Jazz": 0.05}))
    connections.close_all()  # the live server's thread opens its own

    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")

    page.select_option("select[name=review]", "disagrees")
    page.click("form.filters button[type=submit]")
    rows = page.locator("table.library tbody tr")
    assert rows.count() == 1
    assert rows.locator(".review-disagrees").count() == 1
    screenshot(page, "review-queue")

    rows.locator("a.title").click()
    card = page.locator("#why-this-genre")
    assert "Metal" in card.locator("#why-audio").inner_text()
    file_tag = card.locator("#why-file").inner_text()
    assert "Jazz" in file_tag and "Sad Jazz+ (unknown spelling)" in file_tag
    assert "2 other tracks of Tones" in card.locator("#why-album").inner_text()
    assert card.locator("svg.evidence-chart rect").count() > 0
    screenshot(page, "why-this-genre")

    card.locator("button[value=keep]").click()
    page.wait_for_selector("#review-choice")
    assert "Kept the file's genre" in page.locator("#review-choice").inner_text()
    assert page.locator("#why-result").inner_text().startswith("Jazz")

    page.goto(f"{live_server.url}/?review=disagrees")
    assert page.locator("table.library tbody tr").count() == 0
    connections.close_all()
