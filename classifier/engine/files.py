"""File helpers shared by the engine and the app: the one hasher and the one atomic writer."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

_BLOCK = 1 << 20
# Every temporary file the atomic writer leaves while it works ends so: hidden (a leading dot)
# and recognisable, so library scanners skip it and a clean-up can find it.
TEMP_SUFFIX = ".genreweb-tmp"


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
    """
    target = Path(target)
    # Same folder, so the rename cannot cross file systems; the name is cut to stay
    # under NAME_MAX.
    fd, name = tempfile.mkstemp(prefix=f".{target.name[:80]}.", suffix=TEMP_SUFFIX,
                                dir=target.parent)
    os.close(fd)
    temp = Path(name)
    try:
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
    fsync_directory(target.parent)


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
