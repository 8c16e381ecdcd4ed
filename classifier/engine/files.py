"""File helpers shared by the engine and the app: the one hasher, the one atomic writer and
the clean-up of temporary files their writers left behind."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

_BLOCK = 1 << 20
# Every temporary file the atomic writer leaves while it works ends so: hidden (a leading dot)
# and recognisable, so library scanners skip it and a clean-up can find it.
TEMP_SUFFIX = ".genreweb-tmp"
# A temporary file nobody holds is left alone this long all the same: it may have been
# created a moment ago by a writer that has not taken its lock yet.
STALE_TEMP_SECONDS = 5 * 60


def sha256_of(source: str | os.PathLike[str] | IO[bytes]) -> str:
    """The SHA-256 of a file, or of an open binary handle read from its start (then rewound)."""
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as handle:
            return _digest(handle)
    source.seek(0)
    try:
        return _digest(source)
    finally:
        source.seek(0)


def _digest(handle: IO[bytes]) -> str:
    digest = hashlib.sha256()
    while block := handle.read(_BLOCK):
        digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_write(
    target: str | os.PathLike[str],
    *,
    mode: int | None = None,
    like: os.stat_result | None = None,
) -> Iterator[Path]:
    """A temporary path beside `target`; once the block ends, it replaces `target` durably.

    The caller writes the new content to the yielded path. On success the file is synced,
    given `like`'s owner and mode (or `mode`), renamed over `target` and the folder synced,
    so a crash leaves either the old file or the new one, never half of either. On any
    exception the temporary file is removed and `target` is untouched. Each call gets its
    own unique name, so concurrent writers never collide.

    The temporary file is locked (`flock`) while it is written, and each write first removes
    the temporary files a killed writer left in the folder: those older than
    STALE_TEMP_SECONDS whose lock it can take, never one a live process is writing.
    """
    target = Path(target)
    remove_stale_files(target.parent, is_temporary)
    # Same folder, so the rename cannot cross file systems.
    fd, name = tempfile.mkstemp(
        prefix=temporary_prefix(target), suffix=TEMP_SUFFIX, dir=target.parent
    )
    temp = Path(name)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # held until the rename, released with the descriptor
        yield temp
        _fsync_file(temp)
        if like is not None:
            _copy_owner_and_mode(like, temp)
        elif mode is not None:
            os.chmod(temp, mode)
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)
    fsync_directory(target.parent)


def temporary_prefix(target: Path) -> str:
    """How the atomic writer's temporary files for `target` begin (the name cut to stay under
    NAME_MAX)."""
    return f".{target.name[:80]}."


def is_temporary(name: str) -> bool:
    """Whether `name` is one of the atomic writer's temporary files."""
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)


def temporaries_of(target: Path) -> Callable[[str], bool]:
    """A name test for the atomic writer's temporary files of `target` only."""
    prefix = temporary_prefix(target)
    return lambda name: name.startswith(prefix) and name.endswith(TEMP_SUFFIX)


def remove_stale_files(
    folder: str | os.PathLike[str],
    matches: Callable[[str], bool],
    *,
    older_than: float = STALE_TEMP_SECONDS,
    recursive: bool = False,
) -> list[Path]:
    """Remove the files of `folder` whose name `matches`, not modified for `older_than`
    seconds, that no process holds: the removed paths.

    "Holds" is an `flock` on the file, as the atomic writer (and the web app, on its upload
    files) keeps while writing; a file whose lock is taken is never touched, whatever its
    age. A missing or unreadable folder removes nothing.
    """
    removed = []
    for root, names in _listings(Path(folder), recursive):
        removed += [
            root / name
            for name in names
            if matches(name) and remove_unheld(root / name, older_than)
        ]
    return removed


def _listings(folder: Path, recursive: bool) -> Iterator[tuple[Path, list[str]]]:
    """(folder, file names) for `folder`, and with `recursive` for each folder below it."""
    if recursive:
        for root, _, names in os.walk(folder):
            yield Path(root), names
        return
    try:
        names = [entry.name for entry in os.scandir(folder) if entry.is_file(follow_symlinks=False)]
    except OSError:
        return
    yield folder, names


def remove_unheld(path: Path, older_than: float = STALE_TEMP_SECONDS) -> bool:
    """Remove the regular file `path` if it is `older_than` seconds and its lock is free."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:  # gone already, a link, or not ours to read
        return False
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode) or time.time() - opened.st_mtime < older_than:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # a live process holds it
            return False
        # Still the file we locked under that name (not renamed away and replaced meanwhile)?
        current = os.lstat(path)
        if (current.st_dev, current.st_ino) != (opened.st_dev, opened.st_ino):
            return False
        os.unlink(path)
        return True
    except OSError:  # gone meanwhile, or not ours to remove
        return False
    finally:
        os.close(fd)


def hold(handle: IO[bytes]) -> None:
    """Lock an open temporary file for as long as it stays open, so that remove_stale_files
    never takes it for one left behind."""
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def _copy_owner_and_mode(original: os.stat_result, path: Path) -> None:
    # Only root may give a file away; otherwise the copy belongs to whoever writes it.
    with contextlib.suppress(PermissionError):
        os.chown(path, original.st_uid, original.st_gid)
    # After chown, which may clear set-id bits.
    os.chmod(path, stat.S_IMODE(original.st_mode))


def fsync_directory(directory: Path) -> None:
    """Make a rename in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:
        # Some file systems cannot sync a folder; the rename has happened all the same.
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)
