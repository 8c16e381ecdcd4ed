"""Tag changes on a real library folder: previewed, applied by the batch task, undone.

The folder holds a file of every format, decorated as a library has them, some with genres
another tagger wrote; the scan is the real one, the tracks are then marked analysed as a
worker leaves them (their verdict's tag values, the file's genres as read). The batch task
runs in the test's process (its message is captured, not sent).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import mutagen
import pytest
from django.urls import reverse
from django.utils import timezone

from classifier.engine.files import sha256_of
from classifier.engine.filetags import read_tags
from classifier.models import (
    LibraryFolder,
    Status,
    TagBatch,
    TagBatchState,
    TagWrite,
    Track,
    WriteStatus,
)
from classifier.services import folders, tagchanges
from classifier.tasks import run_tag_batch, scan_library
from tests.audiofiles import FORMATS, make_audio_file
from tests.tagfiles import decorate, set_genres, whole_tags

pytestmark = pytest.mark.django_db

# What another tagger left in some files.
EXISTING = {"mp3": ["Rock"], "flac": ["Jazz"], "m4a": ["Pop"]}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "music"
    for index, fmt in enumerate(FORMATS):
        album = root / "Artist" / f"Album {index % 2}"
        album.mkdir(parents=True, exist_ok=True)
        path = make_audio_file(album, fmt, seconds=0.5, name=f"song-{fmt}", seed=index)
        decorate(path, fmt)
        if fmt in EXISTING:
            set_genres(path, fmt, EXISTING[fmt])
    return root


@pytest.fixture
def folder(tree: Path, user, django_capture_on_commit_callbacks) -> LibraryFolder:
    registered = folders.register(str(tree), user.username)
    with django_capture_on_commit_callbacks(execute=False):
        scan_library(registered.pk)
    for track in Track.objects.filter(folder=registered):
        # As a worker leaves a track: its verdict, and the genres its file holds.
        Track.objects.filter(pk=track.pk).update(
            status=Status.DONE,
            primary_genre="Blues",
            verdict={
                "genres": [{"name": "Blues", "parent": None, "confidence": 0.9}],
                "tag_values": ["Blues"],
            },
            genres_after=read_tags(track.audio_path).genres,
        )
    return registered


def files(tree: Path) -> dict[str, Path]:
    return {path.suffix: path for path in sorted(tree.rglob("song-*"))}


@pytest.fixture
def run_batches(django_capture_on_commit_callbacks) -> Callable[[Callable[[], object]], object]:
    """Run `request` (a page's POST); then the batch tasks it queued, here."""

    def run(request: Callable[[], object]) -> object:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            response = request()
        for batch in TagBatch.objects.filter(state=TagBatchState.QUEUED):
            run_tag_batch(batch.pk)
        assert len(callbacks) >= 1
        return response

    return run


def test_the_preview_counts_the_changes_and_writes_nothing(alice, folder, tree):
    before = {path: path.read_bytes() for path in files(tree).values()}
    page = alice.get(reverse("tag-preview"), {"folder": folder.pk, "policy": "fill"})
    plan = page.context["plan"]
    assert (plan.gets, plan.changes, plan.unchanged) == (4, 0, 3)  # fill keeps their genres
    assert "4 files get a genre, 0 change it, 3 unchanged" in " ".join(
        page.content.decode().split()
    ).replace("<strong>", "").replace("</strong>", "")
    replace = alice.get(reverse("tag-preview"), {"folder": folder.pk, "policy": "replace"})
    plan = replace.context["plan"]
    assert (plan.gets, plan.changes, plan.unchanged) == (4, 3, 0)
    changed = {row.source.rsplit(".", 1)[1]: (row.before, row.after) for row in plan.rows}
    assert changed["mp3"] == (["Rock"], ["Blues"]) and changed["wav"] == ([], ["Blues"])
    assert {path: path.read_bytes() for path in files(tree).values()} == before


def test_apply_writes_in_the_background_and_undo_brings_every_tag_back(
    alice, folder, tree, run_batches, django_capture_on_commit_callbacks
):
    paths = files(tree)
    originals = {suffix: whole_tags(path) for suffix, path in paths.items()}
    run_batches(
        lambda: alice.post(reverse("tag-apply"), {"folder": folder.pk, "policy": "replace"})
    )

    batch = TagBatch.objects.get(kind="apply")
    assert (batch.state, batch.processed, batch.total) == (TagBatchState.DONE, 7, 7)
    for path in paths.values():
        assert read_tags(path).genres == ["Blues"]
    write = TagWrite.objects.get(track__relative_path__endswith=".mp3")
    assert (write.status, write.genres_before) == (WriteStatus.WRITTEN, ["Rock"])
    assert write.sha256_after == sha256_of(paths[".mp3"])
    assert Track.objects.get(pk=write.track_id).genres_after == ["Blues"]
    # The scan sees the written files as they are: nothing is analysed again.
    with django_capture_on_commit_callbacks(execute=False):
        assert scan_library(folder.pk) == 0
    page = alice.get(reverse("tag-batch", args=[batch.pk]))
    assert page.context["counts"]["written"] == 7
    detail = alice.get(reverse("track-detail", args=[write.track_id])).content.decode()
    assert write.track.relative_path in detail and f"batch #{batch.pk}" in detail
    assert alice.get(reverse("tag-batch-progress", args=[batch.pk])).json()["finished"]

    run_batches(lambda: alice.post(reverse("tag-undo-batch", args=[batch.pk])))
    for suffix, path in paths.items():
        assert whole_tags(path) == originals[suffix], suffix
    assert TagWrite.objects.filter(status=WriteStatus.UNDONE).count() == 7
    assert Track.objects.get(pk=write.track_id).genres_after == ["Rock"]


def test_a_file_changed_since_the_preview_or_the_write_is_left_and_reported(
    alice, folder, tree, run_batches
):
    paths = files(tree)
    set_genres(paths[".flac"], "flac", ["Bebop"])  # after the analysis, before the apply
    run_batches(
        lambda: alice.post(reverse("tag-apply"), {"folder": folder.pk, "policy": "replace"})
    )
    skipped = TagWrite.objects.get(track__relative_path__endswith=".flac")
    assert skipped.status == WriteStatus.SKIPPED
    assert "now ['Bebop'], not the previewed ['Jazz']" in skipped.error
    assert read_tags(paths[".flac"]).genres == ["Bebop"]

    audio = mutagen.File(paths[".ogg"])  # someone edits a written file
    audio.tags["TITLE"] = ["Edited"]
    audio.save()
    edited = paths[".ogg"].read_bytes()
    batch = TagBatch.objects.get(kind="apply")
    run_batches(lambda: alice.post(reverse("tag-undo-batch", args=[batch.pk])))
    refused = TagWrite.objects.get(track__relative_path__endswith=".ogg")
    assert refused.status == WriteStatus.WRITTEN
    assert "changed on disk since Genreweb wrote it" in refused.undo_error
    assert paths[".ogg"].read_bytes() == edited
    assert read_tags(paths[".mp3"]).genres == ["Rock"]  # the others were undone
    page = alice.get(reverse("tag-batch", args=[refused.undo_batch_id])).content.decode()
    assert "Undo refused: the file changed on disk" in page


def test_undo_one_file_or_everything_since_a_date(alice, folder, tree, run_batches):
    paths = files(tree)
    run_batches(lambda: alice.post(reverse("tag-apply"), {"folder": folder.pk, "policy": "fill"}))
    first = TagBatch.objects.get()
    TagWrite.objects.filter(batch=first).update(written_at=timezone.now() - timedelta(days=2))
    run_batches(
        lambda: alice.post(reverse("tag-apply"), {"folder": folder.pk, "policy": "replace"})
    )
    assert read_tags(paths[".mp3"]).genres == ["Blues"]

    wav = TagWrite.objects.get(batch=first, track__relative_path__endswith=".wav")
    run_batches(lambda: alice.post(reverse("tag-undo-write", args=[wav.pk])))
    assert TagWrite.objects.get(pk=wav.pk).status == WriteStatus.UNDONE
    assert read_tags(paths[".wav"]).genres == []

    since = (timezone.localtime() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    run_batches(lambda: alice.post(reverse("tag-undo-since"), {"since": since}))
    assert read_tags(paths[".mp3"]).genres == ["Rock"]  # the second batch's change undone
    assert read_tags(paths[".aiff"]).genres == ["Blues"]  # the first batch's stays
    assert TagWrite.objects.filter(batch=first, status=WriteStatus.WRITTEN).count() == 3


def test_another_user_sees_and_undoes_nothing_of_mine(alice, mallory, folder, run_batches):
    run_batches(lambda: alice.post(reverse("tag-apply"), {"folder": folder.pk, "policy": "fill"}))
    batch = TagBatch.objects.get()
    write = batch.writes.first()
    plan = mallory.get(reverse("tag-preview"), {"folder": folder.pk}).context["plan"]
    assert plan.total_changes == 0 and plan.unchanged == 0
    assert mallory.get(reverse("tag-batch", args=[batch.pk])).status_code == 404
    assert mallory.get(reverse("tag-batch-progress", args=[batch.pk])).status_code == 404
    assert mallory.post(reverse("tag-undo-batch", args=[batch.pk])).status_code == 404
    assert mallory.post(reverse("tag-undo-write", args=[write.pk])).status_code == 404
    assert list(mallory.get(reverse("tag-changes")).context["batches"]) == []
    assert TagWrite.objects.filter(status=WriteStatus.WRITTEN).count() == 4


def test_the_librarys_selection_goes_to_the_preview(alice, folder):
    ids = list(Track.objects.filter(folder=folder).values_list("pk", flat=True)[:2])
    response = alice.post(
        reverse("bulk"), {"action": "write_tags", "tag_policy": "replace", "tracks": ids}
    )
    assert response.status_code == 302 and response.url.startswith(reverse("tag-preview"))
    plan = alice.get(response.url).context["plan"]
    assert plan.total_changes + plan.unchanged == 2


def test_staff_see_the_batches_in_the_admin(alice, admin_client, folder, run_batches):
    run_batches(lambda: alice.post(reverse("tag-apply"), {"folder": folder.pk, "policy": "fill"}))
    batch = TagBatch.objects.get()
    listing = admin_client.get("/admin/classifier/tagbatch/")
    assert listing.status_code == 200 and batch.description in listing.content.decode()
    assert admin_client.get(f"/admin/classifier/tagbatch/{batch.pk}/change/").status_code == 200


def test_a_long_batch_is_worked_through_in_slices(
    user, folder, monkeypatch, django_capture_on_commit_callbacks
):
    [pk] = tagchanges.start_apply(user, Track.objects.filter(folder=folder), "fill", "all")
    rounds = 0
    while tagchanges.run_batch(pk, slice_seconds=0):  # one file a slice
        rounds += 1
        assert TagBatch.objects.get(pk=pk).state == TagBatchState.QUEUED
    batch = TagBatch.objects.get(pk=pk)
    assert (rounds, batch.state, batch.processed) == (4, TagBatchState.DONE, 4)
    assert TagWrite.objects.filter(batch=batch, status=WriteStatus.WRITTEN).count() == 4

    [again] = tagchanges.start_undo(user, batch.writes.all(), "all")
    monkeypatch.setattr(tagchanges, "SLICE_SECONDS", 0.0)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert run_tag_batch(again) is True  # the task queues the rest of its batch
    assert len(callbacks) == 1


def test_a_batch_whose_worker_died_is_queued_again_and_resumed(user, folder):
    [pk] = tagchanges.start_apply(user, Track.objects.filter(folder=folder), "fill", "all")
    assert tagchanges.run_batch(pk, slice_seconds=0)  # one file written, then...
    silent = timezone.now() - timedelta(minutes=10)
    TagBatch.objects.filter(pk=pk).update(state=TagBatchState.RUNNING, heartbeat_at=silent)
    assert tagchanges.stale_batches() == [pk]  # ...its worker died mid-batch
    assert not tagchanges.run_batch(pk)
    batch = TagBatch.objects.get(pk=pk)
    assert (batch.state, batch.processed) == (TagBatchState.DONE, 4)
    assert tagchanges.stale_batches() == []


@pytest.fixture
def read_only(tree: Path) -> Iterator[Callable[[], None]]:
    """Make the tree unwritable, as a read-only mount is: chmod for a user; for root (whom
    modes do not stop) the immutable attribute, which stops root too. Undone afterwards."""
    items = [tree, *tree.rglob("*")]
    as_root = os.geteuid() == 0
    if as_root and shutil.which("chattr") is None:
        pytest.skip("root ignores file modes and chattr is not installed to make files immutable")

    def lock() -> None:
        if as_root:
            made = subprocess.run(["chattr", "+i", *map(str, items)], capture_output=True)
            if made.returncode:
                pytest.skip(f"this file system cannot make files immutable: {made.stderr!r}")
        else:
            for item in items:
                item.chmod(stat.S_IMODE(item.stat().st_mode) & ~0o222)

    yield lock
    if as_root:
        subprocess.run(["chattr", "-i", *map(str, items)], capture_output=True)
    else:
        for item in items:
            item.chmod(stat.S_IMODE(item.stat().st_mode) | 0o200)


def test_a_read_only_folder_fails_each_write_with_the_reason_and_changes_nothing(
    alice, folder, tree, read_only, run_batches
):
    before = {path: path.read_bytes() for path in files(tree).values()}
    read_only()
    run_batches(lambda: alice.post(reverse("tag-apply"), {"folder": folder.pk, "policy": "fill"}))
    batch = TagBatch.objects.get()
    assert batch.state == TagBatchState.DONE
    failed = list(batch.writes.all())
    assert len(failed) == 4 and {w.status for w in failed} == {WriteStatus.FAILED}
    assert all("may not write" in w.error and "permission denied" in w.error for w in failed)
    assert {path: path.read_bytes() for path in files(tree).values()} == before


def test_a_track_analysed_after_the_preview_is_not_written_unseen(alice, folder, run_batches):
    page = alice.get(reverse("tag-preview"), {"folder": folder.pk, "policy": "fill"})
    form = {"folder": folder.pk, "policy": "fill", "previewed_at": page.context["previewed_at"]}
    later = Track.objects.get(folder=folder, relative_path__endswith=".wav")
    Track.objects.filter(pk=later.pk).update(analysed_at=timezone.now() + timedelta(seconds=5))
    run_batches(lambda: alice.post(reverse("tag-apply"), form))
    written = TagWrite.objects.values_list("track__relative_path", flat=True)
    assert len(written) == 3 and not any(path.endswith(".wav") for path in written)
