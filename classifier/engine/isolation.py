"""Checking a file in a child process, so that a crash inside FFmpeg or PyAV cannot take
the caller down.

Decoding runs native code on bytes a stranger sent. A segmentation fault there ends the
whole process: in the web app that is a worker and every request it serves. check_isolated()
decodes the file's first block in a child, reads its tags there from the same open (mutagen
parses a stranger's bytes too), and turns what happened to it into the typed error the
caller would have seen in process, or into an AudioError that says the decoder crashed or
took too long.

The children fork from a server process that has imported the decoder once (multiprocessing's
forkserver): a check costs a fork, 30-50 ms, where a fresh interpreter importing PyAV and
numpy took 200-250 ms of every upload. The server holds no file and no state of the caller,
so a child sees only the one path it is given. As with every multiprocessing program, a
script that calls check_isolated keeps its own work under `if __name__ == "__main__":`
(the server imports the caller's main module once, as the children would).
"""

from __future__ import annotations

import faulthandler
import logging
import multiprocessing
import signal
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from classifier.engine import errors
from classifier.engine.audio import AudioInfo, check_open, open_audio
from classifier.engine.errors import AudioError, EngineError, TagError
from classifier.engine.filetags import TagInfo, read_tags

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Checked:
    """What a file holds where it decodes, and what its tags say."""

    info: AudioInfo
    tags: TagInfo | None  # None where they cannot be read
    tag_problem: str | None = None  # why not


def check_and_read(path: str) -> Checked:
    """audio.check(path), and the file's tags, in one open of it."""
    with open_audio(Path(path)) as audio:
        info = check_open(audio)
        try:
            return Checked(info, read_tags(audio.path, handle=audio.handle))
        except TagError as exc:
            return Checked(info, None, str(exc))
        except Exception as exc:  # damaged tags must never refuse audio that decodes
            return Checked(info, None, f"{audio.path.name}: {type(exc).__name__}: {exc}")


# A check decodes one block (4 s of audio): anything past this is a decoder that hangs.
CHECK_TIMEOUT = 60.0
# How long a child that has answered may take to exit before it is killed.
EXIT_GRACE = 5.0
# What a child runs on the path: check_and_read (a stand-in replaces it in the tests, where
# it must be a module-level function, the child importing it by name).
CHECK: Callable[[str], Checked] = check_and_read
# The typed errors a child may report, by class name.
_TYPED: dict[str, type[EngineError]] = {
    cls.__name__: cls
    for cls in vars(errors).values()
    if isinstance(cls, type) and issubclass(cls, EngineError)
}


_CONTEXT = multiprocessing.get_context("forkserver")
# "__main__" too: otherwise every child would import the caller's main script again.
_CONTEXT.set_forkserver_preload(["__main__", __name__])


def check_isolated(path: str | Path, timeout: float = CHECK_TIMEOUT) -> Checked:
    """check_and_read(path) in a child process: what the file holds where it decodes, else raises
    the AudioError subclass the check raised, or AudioError when the child crashed, hung
    or failed unexpectedly (logged with the child's Python stack where it crashed)."""
    path = Path(path)
    with tempfile.NamedTemporaryFile(prefix="genreweb-check-", suffix=".log") as trace:
        answer, exitcode = _run_child(path, timeout, trace.name)
        stack = Path(trace.name).read_text(errors="replace")[-4000:]
    if answer is None:
        log.warning("checking %s: no answer after %.0f s", path, timeout)
        raise AudioError(
            f"{path.name} could not be checked: decoding its first seconds took "
            f"longer than {timeout:.0f} s"
        )
    if exitcode is not None and exitcode < 0 and not answer:
        name = _signal_name(-exitcode)
        log.error("checking %s: the decoder died of %s\n%s", path, name, stack)
        raise AudioError(
            f"{path.name} cannot be decoded: the decoder crashed on it ({name}); "
            "the file is damaged or in a form the decoder mishandles"
        )
    return _result(path, answer, exitcode)


def _run_child(
    path: Path, timeout: float, trace: str
) -> tuple[dict[str, object] | None, int | None]:
    """The child's answer ({} where it gave none, None where it hung) and its exit code."""
    receive, send = _CONTEXT.Pipe(duplex=False)
    child = _CONTEXT.Process(
        target=_child, args=(str(path.resolve()), send, CHECK, trace), name="genreweb-check"
    )
    child.start()
    send.close()  # the child holds the only sending end: its death is an end of file here
    try:
        answer = _receive(receive, timeout)
    finally:
        receive.close()
    child.join(EXIT_GRACE if answer is not None else 0)
    if child.exitcode is None:
        child.kill()
        child.join()
    return answer, child.exitcode


def _receive(receive: Connection, timeout: float) -> dict[str, object] | None:
    if not receive.poll(timeout):
        return None
    try:
        answer = receive.recv()
    except EOFError:  # the child died before answering
        return {}
    return answer if isinstance(answer, dict) else {}


def _result(path: Path, answer: dict[str, object], exitcode: int | None) -> Checked:
    checked = answer.get("checked")
    if isinstance(checked, Checked):
        return checked
    kind, message = str(answer.get("error", "")), str(answer.get("message", ""))
    typed = _TYPED.get(kind)
    if typed is not None and issubclass(typed, AudioError) and message:
        raise typed(message)
    log.error("checking %s: the check failed unexpectedly (exit status %s)", path, exitcode)
    detail = f" ({message})" if message else ""
    raise AudioError(
        f"{path.name} could not be checked: an internal error stopped the decoder{detail}"
    )


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _child(path: str, send: Connection, run: Callable[[str], Checked], trace: str) -> None:
    """In the child: check one file, send one answer."""
    with open(trace, "a", encoding="utf-8") as stack:
        faulthandler.enable(stack)  # a crash leaves its Python stack for the caller's log
        try:
            checked = run(path)
        except EngineError as exc:
            answer: dict[str, object] = {"error": type(exc).__name__, "message": str(exc)}
        except Exception as exc:
            log.error("unexpected error checking %s", path, exc_info=exc)
            answer = {"error": "unexpected", "message": f"{type(exc).__name__}: {exc}"}
        else:
            answer = {"checked": checked}
        send.send(answer)
        send.close()
