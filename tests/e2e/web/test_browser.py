"""Chromium (Debian's, through Playwright) signs up, uploads two files, watches them finish,
reads the genres on the dashboard and downloads a tagged file.

Set GENREWEB_SCREENSHOTS=<folder> to keep screenshots of the pages it visits.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.db import connections

from classifier.engine.filetags import read_tags
from classifier.models import Status, Track
from tests.app.web.conftest import PASSWORD
from tests.audiofiles import clip_excerpt
from tests.e2e.web.conftest import WAIT_SECONDS

pytestmark = pytest.mark.django_db(transaction=True)


def screenshot(page, name: str) -> None:
    folder = os.environ.get("GENREWEB_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def test_sign_up_upload_watch_and_download(live_server, celery_worker, page, gtzan_dir, tmp_path):
    files = [
        clip_excerpt(gtzan_dir, tmp_path / "clips", "classical", 1),
        clip_excerpt(gtzan_dir, tmp_path / "clips", "reggae", 3),
    ]

    page.goto(f"{live_server.url}/accounts/signup/")
    page.fill("input[name=username]", "listener")
    page.fill("input[name=password1]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/upload/")

    page.set_input_files("#file-input", [str(f) for f in files])
    items = page.locator(".upload-item")
    assert items.count() == 2
    page.wait_for_function(
        "document.querySelectorAll('.upload-item[data-state=done]').length === 2",
        timeout=WAIT_SECONDS * 1000,
    )
    results = sorted(items.locator(".ui-genre").all_inner_texts())
    assert results[0].startswith("Classical") and results[1].startswith("Reggae")
    screenshot(page, "upload")

    page.click("nav >> text=Library")
    rows = page.locator("table.library tbody tr")
    assert rows.count() == 2
    assert sorted(rows.locator(".genre-bars li.primary .g-name").all_inner_texts()) == [
        "Classical",
        "Reggae",
    ]
    assert rows.locator(".badge-done").count() == 2
    chart = page.locator(".dist-list")
    assert chart.locator("li").count() == 2
    screenshot(page, "dashboard")

    page.click("a.title >> text=classical.00001")
    page.wait_for_selector("img.plot")
    with page.expect_download() as info:
        page.click("#download-link")
    saved = tmp_path / "download.flac"
    info.value.save_as(saved)
    screenshot(page, "track")

    try:
        track = Track.objects.select_related("owner").get(original_name="classical.00001.flac")
    finally:
        # Code under Playwright's sync API runs in its own context, with its own database
        # connection, which would otherwise stay open and block dropping the test database.
        connections.close_all()
    assert track.status == Status.DONE and track.owner.username == "listener"
    assert read_tags(saved).genres == ["Classical"] == track.genres_after
