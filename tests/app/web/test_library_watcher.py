"""Watching library folders: a real watchdog Observer on real trees asks for the right scans.

The watcher only looks at names and events, never at contents, so the files here are a few
bytes each. Waits are bounded polls of `Watcher.step`; proving that nothing is asked for
takes a short window of a few quiet periods.
"""

from __future__ import annotations

import io
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import call_command

from classifier.models import LibraryFolder, ScanStatus
from classifier.services import folders
from classifier.services.watcher import Debouncer, Watcher

pytestmark = pytest.mark.django_db

QUIET = 0.25  # the tests' quiet period; the default is 2 s
REFRESH = 0.2
POLL_LIMIT = 10.0
SETTLE = 2 * QUIET  # how long "nothing was asked for" is watched


@pytest.fixture
def user(django_user_model):
    """The folders' owner, without a password: hashing one would cost most of a test."""
    return django_user_model.objects.create_user("alice")


def make_tree(root: Path) -> Path:
    """A folder with one album of two (pretend) tracks and a text file."""
    (root / "Album").mkdir(parents=True)
    for name in ("one.mp3", "two.flac"):
        (root / "Album" / name).write_bytes(b"audio")
    (root / "notes.txt").write_text("not audio")
    return root


@pytest.fixture
def music(tmp_path: Path, user) -> LibraryFolder:
    return folders.register(str(make_tree(tmp_path / "music")), user.username)


@pytest.fixture
def other(tmp_path: Path, user) -> LibraryFolder:
    return folders.register(str(make_tree(tmp_path / "other")), user.username)


@pytest.fixture
def lines() -> list[str]:
    """What the watcher reports and warns, in order."""
    return []


@pytest.fixture
def watcher(music, other, lines) -> Iterator[Watcher]:
    with Watcher(quiet=QUIET, refresh=REFRESH, report=lines.append, warn=lines.append) as w:
        yield w


def requested(watcher: Watcher, limit: float = POLL_LIMIT) -> list[int]:
    """Step the watcher until it asks for scans (at most `limit` seconds): what it asked."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if folder_ids := watcher.step():
            return folder_ids
        time.sleep(0.02)
    return []


def requested_within(watcher: Watcher, seconds: float) -> list[int]:
    """Every scan the watcher asks for in the next `seconds`."""
    asked: list[int] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        asked += watcher.step()
        time.sleep(0.02)
    return asked


def until(condition, watcher: Watcher) -> None:
    """Step the watcher (so it reads the folder table) until `condition()` holds."""
    deadline = time.monotonic() + POLL_LIMIT
    while not condition():
        assert time.monotonic() < deadline, "the watcher never got there"
        watcher.step()
        time.sleep(0.02)


def root(folder: LibraryFolder) -> Path:
    return Path(folder.path)


# ---------------------------------------------------------------- what changes ask for a scan


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda r: (r / "Album" / "three.ogg").write_bytes(b"new"), id="added"),
        pytest.param(lambda r: (r / "Album" / "one.mp3").open("ab").write(b"more"), id="modified"),
        pytest.param(lambda r: (r / "Album" / "one.mp3").rename(r / "uno.mp3"), id="moved"),
        pytest.param(lambda r: (r / "Album" / "two.flac").unlink(), id="deleted"),
        pytest.param(lambda r: shutil.rmtree(r / "Album"), id="folder-deleted"),
        pytest.param(lambda r: (r / "Album").rename(r.parent / "elsewhere"), id="folder-moved-out"),
    ],
)
def test_a_change_to_an_audio_file_asks_for_its_folders_scan(watcher, music, other, change):
    change(root(other))
    assert requested(watcher) == [other.pk]
    other.refresh_from_db()
    music.refresh_from_db()
    assert other.scan_status == ScanStatus.QUEUED and music.scan_status == ScanStatus.NEVER


def test_a_finished_download_renamed_from_part_counts(watcher, music):
    partial = root(music) / "Album" / "three.mp3.part"
    partial.write_bytes(b"half")
    assert requested_within(watcher, SETTLE) == []
    partial.rename(partial.with_suffix(""))
    assert requested(watcher) == [music.pk]


def test_a_burst_of_files_is_one_scan_after_the_quiet_period(watcher, music):
    album = root(music) / "New album"
    album.mkdir()
    started = time.monotonic()
    for number in range(20):  # the burst lasts longer than the quiet period, in small steps
        (album / f"{number:02}.flac").write_bytes(b"audio")
        time.sleep(0.02)
    assert requested(watcher) == [music.pk]
    assert time.monotonic() - started >= 20 * 0.02 + QUIET
    assert requested_within(watcher, SETTLE) == []


def test_what_a_scan_would_not_index_asks_for_nothing(watcher, music, other, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "elsewhere.mp3").write_bytes(b"audio")
    here = root(music)
    (here / "cover.jpg").write_bytes(b"image")
    (here / "notes.txt").write_text("changed")
    (here / "three.mp3.part").write_bytes(b"half")
    (here / ".hidden.mp3").write_bytes(b"audio")
    (here / ".sync").mkdir()
    (here / ".sync" / "copy.mp3").write_bytes(b"audio")
    (here / "link.mp3").symlink_to(outside / "elsewhere.mp3")
    (here / "linked").symlink_to(outside)
    (outside / "through-the-link.mp3").write_bytes(b"audio")  # links are not followed
    # A change in the other folder, made last, shows the events were flowing meanwhile.
    (root(other) / "fresh.mp3").write_bytes(b"audio")
    assert requested(watcher) == [other.pk]
    assert requested_within(watcher, SETTLE) == []


def test_a_change_during_a_running_scan_is_asked_for_again_after_it(watcher, music):
    assert folders.claim_scan(music.pk) is not None  # a live scan holds the folder
    (root(music) / "late.mp3").write_bytes(b"audio")
    assert requested_within(watcher, SETTLE) == []
    LibraryFolder.objects.filter(pk=music.pk).update(scan_status=ScanStatus.DONE)
    assert requested(watcher) == [music.pk]


# ---------------------------------------------------------------- the folder table


def test_folders_registered_or_removed_after_the_start_are_followed(watcher, music, tmp_path, user):
    late = folders.register(str(make_tree(tmp_path / "late")), user.username)
    until(lambda: late.pk in watcher.watches, watcher)
    (root(late) / "Album" / "new.opus").write_bytes(b"audio")
    assert requested(watcher) == [late.pk]

    music.delete()
    until(lambda: music.pk not in watcher.watches, watcher)
    (root(music) / "Album" / "new.opus").write_bytes(b"audio")
    assert requested_within(watcher, SETTLE) == []


def test_a_folder_that_cannot_be_watched_is_reported_and_tried_again(watcher, music, other, lines):
    shutil.rmtree(root(other))
    until(lambda: other.pk not in watcher.watches, watcher)  # its watch died with it
    until(lambda: any("cannot be watched" in line for line in lines), watcher)
    (root(music) / "still.mp3").write_bytes(b"audio")  # the others are still watched
    assert music.pk in requested(watcher)

    make_tree(root(other))
    until(lambda: other.pk in watcher.watches, watcher)
    (root(other) / "back.mp3").write_bytes(b"audio")
    assert other.pk in requested(watcher)
    assert sum("cannot be watched" in line for line in lines) == 1  # said once, not per try


def test_a_copy_that_never_pauses_is_scanned_after_the_longest_wait():
    now = [0.0]
    changes = Debouncer(quiet=2.0, longest=60.0, clock=lambda: now[0])
    for _ in range(70):  # a change every second for 70 s: never quiet
        changes.note(7)
        now[0] += 1.0
        if changes.due():
            break
    assert now[0] == 60.0 and changes.due() == []


# ---------------------------------------------------------------- the command


def test_watch_libraries_queues_the_scan_of_the_changed_folder(
    music, other, django_capture_on_commit_callbacks
):
    out, err = io.StringIO(), io.StringIO()

    def add_a_file_once_watched() -> None:  # the command holds this thread while it runs
        deadline = time.monotonic() + POLL_LIMIT
        while "Watching" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
        (root(music) / "new.mp3").write_bytes(b"audio")

    writer = threading.Thread(target=add_a_file_once_watched)
    writer.start()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        call_command("watch_libraries", quiet=0.1, seconds=1.0, stdout=out, stderr=err)
    writer.join()
    assert len(callbacks) == 1  # scan_library.delay(music.pk), once committed
    music.refresh_from_db()
    assert music.scan_status == ScanStatus.QUEUED
    assert f"Watching {music.path} (folder {music.pk})." in out.getvalue()
    assert f"[{music.pk}]: scan requested" in out.getvalue() and not err.getvalue()


def test_watch_libraries_says_when_there_is_nothing_to_watch(tmp_path, user):
    err = io.StringIO()
    call_command("watch_libraries", seconds=0.1, stdout=io.StringIO(), stderr=err)
    assert "No library folders are registered" in err.getvalue()

    gone = folders.register(str(make_tree(tmp_path / "gone")), user.username)
    shutil.rmtree(gone.path)
    err = io.StringIO()
    call_command("watch_libraries", seconds=0.1, stdout=io.StringIO(), stderr=err)
    assert f"{gone.path} (folder {gone.pk}) cannot be watched" in err.getvalue()
