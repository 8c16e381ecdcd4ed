"""Checking a file in a child process, so that a crash inside FFmpeg or PyAV cannot take
the caller down.

Decoding runs native code on bytes a stranger sent. A segmentation fault there ends the
whole process: in the web app that is a worker and every request it serves. check_isolated()
decodes the file's first block in a child (`python -m classifier.engine.isolation PATH`)
and turns what happened to it into the typed error the caller would have seen in process,
or into an AudioError that says the decoder crashed or took too long.

The child imports the decoder only (no Django, no torch): it starts in well under a second.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import signal
import subprocess
import sys
from pathlib import Path

from classifier.engine import errors
from classifier.engine.audio import AudioInfo, check
from classifier.engine.errors import AudioError, EngineError

log = logging.getLogger(__name__)

# A check decodes one block (4 s of audio): anything past this is a decoder that hangs.
CHECK_TIMEOUT = 60.0
# The repository (or site-packages) folder that holds the `classifier` package.
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]
# The typed errors a child may report, by class name.
_TYPED: dict[str, type[EngineError]] = {
    cls.__name__: cls
    for cls in vars(errors).values()
    if isinstance(cls, type) and issubclass(cls, EngineError)
}


def check_isolated(path: str | Path, timeout: float = CHECK_TIMEOUT) -> AudioInfo:
    """audio.check(path) in a child process: what the file holds where it decodes, else raises
    the AudioError subclass the check raised, or AudioError when the child crashed, hung
    or failed unexpectedly (logged with the child's output)."""
    path = Path(path)
    try:
        child = subprocess.run(
            _command(path),
            cwd=_PACKAGE_ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        log.warning("checking %s: no answer after %.0f s", path, timeout)
        raise AudioError(
            f"{path.name} could not be checked: decoding its first seconds took "
            f"longer than {timeout:.0f} s"
        ) from None
    if child.returncode < 0:
        name = _signal_name(-child.returncode)
        log.error("checking %s: the decoder died of %s\n%s", path, name, child.stderr[-4000:])
        raise AudioError(
            f"{path.name} cannot be decoded: the decoder crashed on it ({name}); "
            "the file is damaged or in a form the decoder mishandles"
        )
    answer = _answer(child.stdout)
    info = answer.get("info")
    if answer.get("ok") is True and child.returncode == 0 and isinstance(info, dict):
        return AudioInfo(**info)
    kind, message = str(answer.get("error", "")), str(answer.get("message", ""))
    typed = _TYPED.get(kind)
    if typed is not None and issubclass(typed, AudioError) and message:
        raise typed(message)
    log.error(
        "checking %s: the check failed unexpectedly (exit status %s)\n%s",
        path,
        child.returncode,
        child.stderr[-4000:],
    )
    detail = f" ({message})" if message else ""
    raise AudioError(
        f"{path.name} could not be checked: an internal error stopped the decoder{detail}"
    )


def _command(path: Path) -> list[str]:
    return [sys.executable, "-m", "classifier.engine.isolation", str(path.resolve())]


def _answer(stdout: str) -> dict[str, object]:
    lines = stdout.strip().splitlines()
    try:
        answer = json.loads(lines[-1]) if lines else {}
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def main(argv: list[str] | None = None) -> int:
    """The child: check one file, answer one JSON line on stdout."""
    import faulthandler

    faulthandler.enable()  # a crash leaves its Python stack on stderr, for the log
    arguments = sys.argv[1:] if argv is None else argv
    if len(arguments) != 1:
        sys.stderr.write("usage: python -m classifier.engine.isolation PATH\n")
        return 2
    try:
        info = check(arguments[0])
    except EngineError as exc:
        answer: dict[str, object] = {"error": type(exc).__name__, "message": str(exc)}
    except Exception as exc:
        log.error("unexpected error checking %s", arguments[0], exc_info=exc)
        answer = {"error": "unexpected", "message": f"{type(exc).__name__}: {exc}"}
    else:
        answer = {"ok": True, "info": dataclasses.asdict(info)}
    sys.stdout.write(json.dumps(answer) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
