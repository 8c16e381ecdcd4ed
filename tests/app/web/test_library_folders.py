"""Library folders: registering, scanning real trees in place, analysing read-only files."""

from __future__ import annotations

import io
import os
import shutil
import stat
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from classifier.engine.files import sha256_of
from classifier.models import LibraryFolder, OutsideFolder, ScanStatus, Source, Status, Track
from classifier.services import actions, folders, intake, processing
from classifier.tasks import rescan_libraries, scan_library
from tests.audiofiles import make_audio_file

pytestmark = pytest.mark.django_db


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A small library: two albums in subfolders and a loose track, plus a text file."""
    root = tmp_path / "music"
    (root / "Artist" / "Album A").mkdir(parents=True)
    (root / "Artist" / "Album B").mkdir(parents=True)
    make_audio_file(root / "Artist" / "Album A", "mp3", seconds=1, name="one", seed=1)
    make_audio_file(root / "Artist" / "Album B", "flac", seconds=1, name="two", seed=2)
    make_audio_file(root, "wav", seconds=1, name="loose", seed=3)
    (root / "notes.txt").write_text("not audio")
    return root


@pytest.fixture
def folder(tree: Path, user) -> LibraryFolder:
    return folders.register(str(tree), user.username)


@pytest.fixture
def hashes(monkeypatch) -> list[str]:
    """Every file the scan hashes (so reads), by relative path."""
    seen: list[str] = []
    real = folders.hash_in_place

    def counting(root: str, relative: str) -> str:
        seen.append(relative)
        return real(root, relative)

    monkeypatch.setattr(folders, "hash_in_place", counting)
    return seen


@pytest.fixture
def scan(django_capture_on_commit_callbacks) -> Callable[[LibraryFolder], int]:
    """Run the scan task; how many analyses it queued (on commit, counted, not run)."""

    def run(folder: LibraryFolder) -> int:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            queued = scan_library(folder.pk)
        assert len(callbacks) == queued
        folder.refresh_from_db()
        return queued

    return run


def paths(folder: LibraryFolder, **filters: object) -> set[str]:
    rows = Track.objects.filter(folder=folder, **filters)
    return set(rows.values_list("relative_path", flat=True))


def analysed(folder: LibraryFolder) -> None:
    """Mark the folder's tracks analysed, as a worker would leave them."""
    Track.objects.filter(folder=folder).update(
        status=Status.DONE,
        primary_genre="Jazz",
        verdict={"genres": [{"name": "Jazz", "parent": None, "confidence": 0.9}]},
    )


@pytest.fixture
def restore_modes(tmp_path: Path) -> Iterator[None]:
    """chmod'ed trees are made writable again, so tmp_path can be removed."""
    yield
    for dirpath, dirnames, filenames in os.walk(tmp_path):
        for name in [*dirnames, *filenames]:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                os.chmod(path, 0o755)


# ---------------------------------------------------------------- registering


def test_add_library_registers_the_real_path(
    tree, user, tmp_path, django_capture_on_commit_callbacks
):
    link = tmp_path / "link-to-music"
    link.symlink_to(tree)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        call_command("add_library", str(link), owner=user.username)
    folder = LibraryFolder.objects.get()
    assert folder.path == str(tree.resolve()) and folder.owner == user
    assert folder.scan_status == ScanStatus.QUEUED and len(callbacks) == 1  # first scan


@pytest.mark.parametrize(
    ("what", "message"),
    [("missing", "does not exist"), ("file", "is not a folder"), ("nobody", "no user named")],
)
def test_add_library_refuses_with_a_reason(tree, user, what, message):
    path = {"missing": tree / "nope", "file": tree / "notes.txt"}.get(what, tree)
    owner = "nobody" if what == "nobody" else user.username
    with pytest.raises(CommandError, match=message):
        call_command("add_library", str(path), owner=owner)
    assert not LibraryFolder.objects.exists()


# ---------------------------------------------------------------- scanning


def test_first_scan_indexes_every_audio_file_in_place(folder, tree, scan, hashes, media_root):
    assert scan(folder) == 3
    expected = {"Artist/Album A/one.mp3", "Artist/Album B/two.flac", "loose.wav"}
    assert paths(folder) == expected and sorted(hashes) == sorted(expected)
    for track in Track.objects.filter(folder=folder):
        assert track.source == Source.FOLDER and not track.file.name  # never copied
        assert track.owner == folder.owner and track.status == Status.PENDING
        assert track.sha256 == sha256_of(tree / track.relative_path)
        assert track.audio_path == str(tree / track.relative_path)
    assert not media_root.exists() or not any(media_root.rglob("*.*"))
    assert folder.scan_status == ScanStatus.DONE
    assert folder.scan_counts["found"] == 3 and folder.scan_counts["new"] == 3


def test_rescan_skips_unchanged_files_without_reading_them(folder, scan, hashes):
    scan(folder)
    hashes.clear()
    stored = dict(Track.objects.values_list("relative_path", "sha256"))
    assert scan(folder) == 0
    assert hashes == []  # not one file read again
    assert dict(Track.objects.values_list("relative_path", "sha256")) == stored
    assert folder.scan_counts["unchanged"] == 3


def test_rescan_does_not_query_per_unchanged_file(folder, scan, django_assert_max_num_queries):
    scan(folder)
    with django_assert_max_num_queries(12):  # claim, index, one batch, vanished, finish
        scan(folder)


def test_a_changed_file_is_hashed_and_analysed_again(folder, tree, scan, hashes):
    scan(folder)
    analysed(folder)
    hashes.clear()
    target = tree / "loose.wav"
    make_audio_file(tree, "wav", seconds=1.5, name="loose", seed=9)
    assert scan(folder) == 1 and hashes == ["loose.wav"]
    track = Track.objects.get(folder=folder, relative_path="loose.wav")
    assert track.sha256 == sha256_of(target) and track.status == Status.PENDING
    assert Track.objects.filter(folder=folder, status=Status.DONE).count() == 2


@pytest.mark.parametrize(
    ("old", "new"),
    [("loose.wav", "Artist/Album A/loose.wav"), ("loose.wav", "renamed.wav")],
    ids=["moved", "renamed"],
)
def test_a_moved_or_renamed_file_keeps_its_verdict(folder, tree, scan, old, new):
    scan(folder)
    analysed(folder)
    before = Track.objects.get(folder=folder, relative_path=old)
    (tree / old).rename(tree / new)
    assert scan(folder) == 0
    after = Track.objects.get(pk=before.pk)
    assert after.relative_path == new and after.status == Status.DONE
    assert after.verdict == before.verdict and not after.missing
    assert Track.objects.filter(folder=folder).count() == 3
    assert folder.scan_counts["moved"] == 1


def test_a_copy_is_a_track_of_its_own(folder, tree, scan):
    scan(folder)
    shutil.copy2(tree / "loose.wav", tree / "copy.wav")
    assert scan(folder) == 1
    assert paths(folder) >= {"loose.wav", "copy.wav"}


def test_a_vanished_file_is_marked_missing_and_comes_back(folder, tree, scan, tmp_path, hashes):
    scan(folder)
    analysed(folder)
    kept = tmp_path / "kept.wav"
    shutil.copy2(tree / "loose.wav", kept)  # same bytes, same mtime
    (tree / "loose.wav").unlink()
    assert scan(folder) == 0
    assert paths(folder, missing=True) == {"loose.wav"}
    assert Track.objects.filter(folder=folder).count() == 3  # not deleted
    assert folder.scan_counts["vanished"] == 1
    hashes.clear()
    shutil.copy2(kept, tree / "loose.wav")
    assert scan(folder) == 0 and hashes == []
    track = Track.objects.get(folder=folder, relative_path="loose.wav")
    assert not track.missing and track.status == Status.DONE
    assert folder.scan_counts["reappeared"] == 1


def test_a_folder_that_is_gone_fails_the_scan_and_marks_nothing_missing(folder, tree, scan):
    scan(folder)
    shutil.rmtree(tree)
    assert scan(folder) == 0
    assert folder.scan_status == ScanStatus.FAILED and "gone" in folder.scan_error
    assert not Track.objects.filter(missing=True).exists()


# ---------------------------------------------------------------- what the scan refuses


def test_a_link_outside_the_folder_is_refused_and_reported(folder, tree, tmp_path, scan):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    make_audio_file(outside, "mp3", seconds=1, name="secret", seed=5)
    (tree / "secret.mp3").symlink_to(outside / "secret.mp3")
    (tree / "elsewhere").symlink_to(outside)
    assert scan(folder) == 3
    assert not any("secret" in p or "elsewhere" in p for p in paths(folder))
    refused = {p["path"]: p["reason"] for p in folder.scan_problems}
    assert "outside" in refused["secret.mp3"] and "outside" in refused["elsewhere"]


def test_a_folder_file_replaced_by_a_link_outside_is_not_read(folder, tree, tmp_path, scan):
    scan(folder)
    track = Track.objects.get(folder=folder, relative_path="loose.wav")
    outside = make_audio_file(tmp_path, "wav", seconds=1, name="outside", seed=6)
    (tree / "loose.wav").unlink()
    (tree / "loose.wav").symlink_to(outside)
    with pytest.raises(OutsideFolder):
        track.audio_path  # noqa: B018
    assert processing.process_track(track.pk) == "failed"
    track.refresh_from_db()
    assert "outside" in track.error


def test_symlink_loops_end(folder, tree, scan):
    (tree / "Artist" / "again").symlink_to(tree)  # a loop back to the root
    (tree / "a").symlink_to(tree / "b")
    (tree / "b").symlink_to(tree / "a")  # a link loop
    assert scan(folder) == 3
    reasons = {p["path"]: p["reason"] for p in folder.scan_problems}
    assert reasons["a"] == reasons["b"] == "a symlink loop"
    assert "Artist/again" not in reasons  # inside: its target is scanned where it lies


def test_a_name_that_is_not_utf8_is_reported_and_the_scan_goes_on(folder, tree, scan):
    source = make_audio_file(tree, "mp3", seconds=1, name="latin1", seed=7)
    os.rename(os.fsencode(source), os.fsencode(tree) + b"/caf\xe9.mp3")
    assert scan(folder) == 3
    assert folder.scan_problems == [
        {"path": "caf\\xe9.mp3", "reason": "its name is not valid UTF-8; rename it"}
    ]


def test_an_unreadable_file_is_reported_and_the_scan_goes_on(folder, tree, scan, restore_modes):
    if os.geteuid() == 0:
        pytest.skip("root reads a chmod 000 file; the next test covers the refusal as root")
    (tree / "loose.wav").chmod(0)
    (tree / "Artist" / "Album B").chmod(0)
    assert scan(folder) == 1
    reasons = {p["path"]: p["reason"] for p in folder.scan_problems}
    assert "permission denied" in reasons["loose.wav"]
    assert "permission denied" in reasons["Artist/Album B"]


def test_permission_denied_and_vanishing_files_are_reported(folder, tree, scan, monkeypatch):
    """As root nothing is unreadable, so the kernel's answers are given here instead: the
    file denied, and the file removed between the listing and the read."""
    real = folders.hash_in_place

    def hostile(root: str, relative: str) -> str:
        if relative == "loose.wav":
            raise PermissionError(13, "Permission denied")
        if relative.endswith("two.flac"):
            os.unlink(os.path.join(root, relative))
        return real(root, relative)

    monkeypatch.setattr(folders, "hash_in_place", hostile)
    assert scan(folder) == 1
    reasons = {p["path"]: p["reason"] for p in folder.scan_problems}
    assert reasons == {
        "loose.wav": "permission denied: the file cannot be read",
        "Artist/Album B/two.flac": "the file vanished during the scan",
    }
    assert folder.scan_status == ScanStatus.DONE


# ---------------------------------------------------------------- analysis in place


def test_a_read_only_folder_is_analysed_and_left_unchanged(folder, tree, scan, restore_modes):
    scan(folder)
    track = Track.objects.get(folder=folder, relative_path="Artist/Album A/one.mp3")
    path = tree / track.relative_path
    before = path.read_bytes()
    for item in [path, path.parent, path.parent.parent, tree]:
        mode = item.stat().st_mode
        item.chmod(stat.S_IMODE(mode) & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    assert processing.process_track(track.pk) == "done"
    track.refresh_from_db()
    assert track.status == Status.DONE and track.verdict and not track.error
    assert path.read_bytes() == before
    assert not [p for p in path.parent.iterdir() if p.name != path.name]  # no temporary


def test_an_upload_of_a_folder_files_content_is_still_an_upload(folder, tree, scan, user):
    scan(folder)
    data = (tree / "loose.wav").read_bytes()
    taken = intake.accept_upload(user, SimpleUploadedFile("loose.wav", data))
    assert taken.created and taken.track.source == Source.UPLOAD and taken.track.file.name


# ---------------------------------------------------------------- who sees what


def test_the_owner_sees_their_folder_with_live_counts(folder, scan, alice):
    scan(folder)
    analysed(folder)
    page = alice.get("/folders/")
    assert page.status_code == 200
    body = page.content.decode()
    assert folder.path in body and "Scan now" in body
    assert page.context["rows"] == [
        (folder, {"indexed": 3, "queued": 0, "analysed": 3, "failed": 0, "missing": 0})
    ]
    Track.objects.filter(folder=folder, relative_path="loose.wav").update(status=Status.PENDING)
    live = alice.get(f"/folders/{folder.pk}/status/").json()  # what the page polls
    assert (live["scan_status"], live["found"], live["analysed"]) == ("done", 3, 2)
    assert live["queued"] == 1 and live["busy"] is True


def test_another_user_cannot_see_scan_or_open_my_folder(folder, scan, mallory):
    scan(folder)
    assert folder.path not in mallory.get("/folders/").content.decode()
    assert mallory.post(f"/folders/{folder.pk}/scan/").status_code == 404
    assert mallory.get(f"/folders/{folder.pk}/status/").status_code == 404
    track = Track.objects.filter(folder=folder).first()
    assert mallory.get(f"/tracks/{track.pk}/").status_code == 404
    assert mallory.get(f"/tracks/{track.pk}/download/").status_code == 404


def test_the_library_shows_each_tracks_source_and_hides_missing_files(
    folder, tree, scan, alice, user
):
    scan(folder)
    data = (tree / "loose.wav").read_bytes()
    intake.accept_upload(user, SimpleUploadedFile("uploaded.wav", data + b"\0"))
    analysed(folder)
    (tree / "Artist" / "Album A" / "one.mp3").unlink()
    scan(folder)

    def listed(query: str = "") -> list[str]:
        page = alice.get(f"/{query}")
        assert page.status_code == 200
        return sorted(t.original_name for t in page.context["tracks"])

    assert listed() == ["loose.wav", "two.flac", "uploaded.wav"]
    body = alice.get("/").content.decode()
    assert "Artist/Album B/two.flac" in body and ">upload<" in body
    assert listed("?source=upload") == ["uploaded.wav"]
    assert listed("?source=folder") == ["loose.wav", "two.flac"]
    assert listed("?source=folder&missing=show") == ["loose.wav", "one.mp3", "two.flac"]
    assert listed(f"?folder={folder.pk}") == ["loose.wav", "two.flac"]
    assert alice.get(f"/?folder={folder.pk}").context["page"].paginator.count == 2
    assert ">missing</span>" in alice.get("/?missing=show").content.decode()
    chart = alice.get("/").context["distribution"]
    assert sum(row.count for row in chart) == 2  # the vanished file is not counted either
    api = alice.get("/api/tracks/?source=folder").json()
    results = api["results"] if isinstance(api, dict) else api
    assert sorted(t["original_name"] for t in results) == ["loose.wav", "two.flac"]


def test_the_owner_scans_now_and_downloads_a_folder_track(
    folder, scan, alice, tree, django_capture_on_commit_callbacks
):
    scan(folder)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert alice.post(f"/folders/{folder.pk}/scan/").status_code == 302
    assert len(callbacks) == 1
    track = Track.objects.get(folder=folder, relative_path="loose.wav")
    response = alice.get(f"/tracks/{track.pk}/download/")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == (tree / "loose.wav").read_bytes()


def test_staff_see_every_folder(folder, django_user_model):
    staff = django_user_model.objects.create_user("root", password="x" * 20, is_staff=True)
    assert list(folders.visible_to(staff)) == [folder]


# ---------------------------------------------------------------- periodic rescan


def test_celery_beat_rescans_every_folder(folder, django_capture_on_commit_callbacks):
    schedule = settings.CELERY_BEAT_SCHEDULE["rescan-libraries"]
    assert schedule["task"] == "classifier.rescan_libraries"
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert rescan_libraries() == [folder.pk]
    assert len(callbacks) == 1
    folder.refresh_from_db()
    assert folder.scan_status == ScanStatus.QUEUED


def test_a_folder_tracks_page_api_and_zip(folder, scan, alice, tree):
    scan(folder)
    track = Track.objects.get(folder=folder, relative_path="loose.wav")
    page = alice.get(f"/tracks/{track.pk}/").content.decode()
    assert "In library folder" in page and "loose.wav" in page
    shown = alice.get(f"/api/tracks/{track.pk}/").json()
    assert (shown["source"], shown["relative_path"], shown["missing"]) == (
        "folder",
        "loose.wav",
        False,
    )
    (tree / "loose.wav").unlink()  # gone since the scan: left out of a zip, 404 alone
    assert alice.get(f"/tracks/{track.pk}/download/").status_code == 404
    ids = list(Track.objects.filter(folder=folder).values_list("pk", flat=True))
    response = alice.post("/library/bulk/", {"action": "download", "tracks": ids})
    assert response.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert len(archive.namelist()) == 2


def test_writing_tags_and_deleting_leave_folder_files_alone(folder, scan, tree):
    scan(folder)
    Track.objects.filter(folder=folder).update(
        status=Status.DONE, verdict={"genres": [], "tag_values": ["Jazz"]}
    )
    before = {p: (tree / p).read_bytes() for p in paths(folder)}
    result = actions.retag(Track.objects.filter(folder=folder), "replace")
    assert (result.written, result.skipped) == (0, 3)
    assert actions.delete_tracks(Track.objects.filter(folder=folder)) == 3
    assert {p: (tree / p).read_bytes() for p in before} == before


def test_a_scan_commits_and_queues_batch_by_batch(folder, scan, monkeypatch):
    monkeypatch.setattr(folders, "BATCH", 2)
    batches = [list(ids) for ids in folders.scan(folder.pk)]
    assert [len(ids) for ids in batches] == [2, 1]  # the last, partial batch at the end
    assert sorted(sum(batches, [])) == sorted(Track.objects.values_list("pk", flat=True))
