"""The atomic writer's clean-up of temporary files killed writers left (no Django)."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from classifier.engine.files import (
    STALE_TEMP_SECONDS,
    TEMP_SUFFIX,
    atomic_write,
    is_temporary,
    remove_stale_files,
    temporaries_of,
)
from tests.lockholder import Holder, age

OLD = STALE_TEMP_SECONDS + 60


def temporaries(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if is_temporary(path.name))


def write(target: Path, content: bytes) -> None:
    with atomic_write(target) as temp:
        temp.write_bytes(content)


def test_a_killed_writer_leaves_a_temporary_that_the_next_write_removes(tmp_path):
    target = tmp_path / "song.flac"
    target.write_bytes(b"original")
    killed = Holder.writing(target)
    killed.kill()
    assert target.read_bytes() == b"original"  # the file stays whole
    assert temporaries(tmp_path) == [killed.path.name]  # the defect: a copy beside it

    write(tmp_path / "other.flac", b"other")  # a write soon after: the copy may be young
    assert temporaries(tmp_path) == [killed.path.name]
    age(killed.path, OLD)
    write(tmp_path / "other.flac", b"again")
    assert temporaries(tmp_path) == []
    assert target.read_bytes() == b"original"


def test_a_temporary_another_live_process_is_writing_stays(tmp_path):
    target = tmp_path / "song.flac"
    target.write_bytes(b"original")
    writer = Holder.writing(target)
    try:
        age(writer.path, OLD)  # however old it looks: its writer holds it
        write(tmp_path / "other.flac", b"other")
        assert remove_stale_files(tmp_path, is_temporary, older_than=0) == []
        assert writer.path.exists()
    finally:
        assert writer.release() == 0
    assert target.read_bytes() == b"written by the holder"
    assert temporaries(tmp_path) == []


def old_file(path: Path, content: bytes = b"x") -> Path:
    path.write_bytes(content)
    return age(path, OLD)


def test_only_the_writers_own_names_are_removed(tmp_path):
    stale = old_file(tmp_path / f".song.flac.abc123{TEMP_SUFFIX}")
    others = [
        old_file(tmp_path / name)
        for name in (f"visible{TEMP_SUFFIX}", ".song.flac.abc123.tmp", ".hidden", "song.flac")
    ]
    write(tmp_path / "new.flac", b"new")
    assert not stale.exists()
    assert all(path.exists() for path in others)


def test_a_matching_folder_or_link_is_never_removed(tmp_path):
    folder = tmp_path / f".folder{TEMP_SUFFIX}"
    folder.mkdir()
    outside = old_file(tmp_path / "outside.flac", b"keep")
    link = tmp_path / f".link{TEMP_SUFFIX}"
    link.symlink_to(outside)
    assert remove_stale_files(tmp_path, is_temporary, older_than=0) == []
    assert folder.is_dir() and link.is_symlink() and outside.read_bytes() == b"keep"


def test_a_sweep_of_a_tree(tmp_path):
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    left = [
        old_file(deep / f".x.flac.1{TEMP_SUFFIX}"),
        old_file(tmp_path / f".y.flac.2{TEMP_SUFFIX}"),
    ]
    assert remove_stale_files(deep.parent, is_temporary) == []  # not recursive: none there
    assert sorted(remove_stale_files(tmp_path, is_temporary, recursive=True)) == sorted(left)
    assert remove_stale_files(tmp_path / "missing", is_temporary, recursive=True) == []


def test_a_files_own_temporaries(tmp_path):
    mine = tmp_path / f".x.flac.1{TEMP_SUFFIX}"
    theirs = tmp_path / f".xy.flac.1{TEMP_SUFFIX}"
    for path in (mine, theirs):
        path.write_bytes(b"")
    assert remove_stale_files(tmp_path, temporaries_of(tmp_path / "x.flac"), older_than=0) == [mine]
    assert theirs.exists()


def test_the_written_file_is_not_left_locked(tmp_path):
    target = tmp_path / "song.flac"
    write(target, b"new")
    fd = os.open(target, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises if the writer still held it
    finally:
        os.close(fd)
    assert target.read_bytes() == b"new" and temporaries(tmp_path) == []
