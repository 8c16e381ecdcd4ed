"""Chromium scans a library folder prepared for it, previews the genre tag changes for one
genre, applies them and undoes them, with a real worker doing the scan, the analyses and
the writes.

The folder is registered before the browser starts (as an administrator would); the browser
only scans, reads, previews, applies and undoes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.db import connections

from classifier.engine.filetags import read_tags
from classifier.services import folders
from tests.app.web.conftest import PASSWORD
from tests.audiofiles import clip_excerpt
from tests.e2e.web.conftest import WAIT_SECONDS
from tests.e2e.web.test_browser import screenshot
from tests.tagfiles import decorate, whole_tags

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def prepared(tmp_path: Path, gtzan_dir: Path, user) -> tuple[Path, Path]:
    """A registered folder of two real songs, one tagged by another tagger: its path and the
    classical song's file."""
    root = tmp_path / "music"
    classical = clip_excerpt(gtzan_dir, root / "Orchestra", "classical", 1)
    reggae = clip_excerpt(gtzan_dir, root / "Band", "reggae", 3)
    for path in (classical, reggae):
        decorate(path, "flac")
    folders.register(str(root), user.username)
    connections.close_all()  # the live server's thread opens its own
    return root, classical


def test_scan_preview_apply_and_undo_a_genres_tags(
    live_server, celery_worker, page, user, prepared
):
    root, classical = prepared
    original = whole_tags(classical)
    page.on("dialog", lambda dialog: dialog.accept())

    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")

    page.click("nav >> text=Folders")
    page.click("text=Scan now")
    row = page.locator("tr[data-folder]")
    # The counts follow the scan and the analyses live, without a reload.
    row.locator("[data-count=analysed]").filter(has_text="2").wait_for(timeout=WAIT_SECONDS * 1000)
    assert row.locator("[data-count=indexed]").inner_text() == "2"
    screenshot(page, "folders")

    page.click("nav >> text=Library")
    page.select_option("select[name=genre]", "Classical")
    page.click("form.filters button[type=submit]")
    page.click("#preview-tags")
    totals = page.locator("#tag-totals").inner_text()
    assert "1 file gets a genre, 0 change it, 0 unchanged" in " ".join(totals.split())
    assert page.locator("table.tag-changes tbody tr").count() == 1
    assert "Orchestra/classical.00001.flac" in page.locator("table.tag-changes").inner_text()
    assert read_tags(classical).genres == []  # a preview writes nothing
    screenshot(page, "tag-preview")

    page.click("#tag-apply")
    page.wait_for_selector("#batch-progress[data-state=done]")
    assert "1 written" in page.locator("#batch-progress").inner_text()
    assert read_tags(classical).genres == ["Classical"]
    screenshot(page, "tag-batch")

    page.click("#undo-batch")
    page.wait_for_selector("#batch-progress[data-state=done]")
    assert "1 undone" in page.locator("#batch-progress").inner_text()
    assert whole_tags(classical) == original
    page.click("nav >> text=Tag changes")
    assert page.locator("tr[data-batch]").count() == 2
    connections.close_all()
