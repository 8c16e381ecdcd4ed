"""Another live process holding a temporary file, for the clean-up tests: one writing through
the atomic writer (stopped inside its block), or one holding an upload file as the web app
does. It holds until released, or is killed to leave its file behind as a crash would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

_SCRIPT = r"""
import sys
from pathlib import Path
from classifier.engine.files import atomic_write

mode, path = sys.argv[1], Path(sys.argv[2])
if mode == "write":
    with atomic_write(path) as temp:
        temp.write_bytes(b"written by the holder")
        print(temp, flush=True)
        sys.stdin.readline()
else:
    from classifier.engine.files import hold
    with path.open("ab") as handle:
        hold(handle)
        print(path, flush=True)
        sys.stdin.readline()
"""


class Holder:
    """`Holder.writing(target)`: a process inside `atomic_write(target)`, `.path` its
    temporary file; `Holder.holding(path)`: a process holding `path` locked."""

    def __init__(self, mode: str, path: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _SCRIPT, mode, str(path)],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.process.stdout.readline().strip()
        assert line, f"the holder exited with {self.process.wait()}"
        self.path = Path(line)

    @classmethod
    def writing(cls, target: Path) -> Holder:
        return cls("write", target)

    @classmethod
    def holding(cls, path: Path) -> Holder:
        return cls("hold", path)

    def release(self) -> int:
        """Let it finish (the writer renames its file over the target): its exit status."""
        self.process.communicate("\n", timeout=30)
        return self.process.returncode

    def kill(self) -> None:
        """Kill it as a crash would, leaving its file where it was."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.communicate(timeout=30)


def age(path: Path, seconds: float) -> Path:
    """Make `path` look untouched for `seconds`."""
    stat = path.stat()
    os.utime(path, (stat.st_atime - seconds, stat.st_mtime - seconds))
    return path
