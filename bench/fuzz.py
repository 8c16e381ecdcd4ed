"""Fuzzing the decoder (`probe`, `iter_decode`, `extract_chunks`) and the tag reader
(`read_tags`) with damaged files.

Seeds: small real files in every format tests/audiofiles.py writes, some with tags, and the
files that once broke the decoder (tests/engine/hostile.py), made at run time in a temporary
folder. Each input is written to a file and run through the four functions in a forked child,
so a crash (a signal), a hang (past --timeout), running out of memory (--memory-mb) or an
exception other than the typed AudioError (decoder) or TagError (tag reader) is a finding,
saved to --findings, and fuzzing goes on.

Engines: `atheris` (libFuzzer's mutator, with coverage of the engine's and mutagen's Python
code: an input the child survived is run again in this process so libFuzzer sees what it
reached) or `random` (a seeded mutator of our own, for where atheris is not installed).
An input's first byte picks the file's suffix (mutagen reads the name as well as the bytes).

    python bench/fuzz.py --seconds 300            # figures on stdout, libFuzzer's on stderr
    python bench/fuzz.py --seconds 30 --json      # last line: the figures as JSON

Exit status 1 when anything was found.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import resource
import select
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SUFFIXES = (".aiff", ".flac", ".m4a", ".mp3", ".ogg", ".opus", ".wav")
MAX_LEN = 64 * 1024
# Exit statuses of the child, besides 0.
UNEXPECTED_STATUS, OOM_STATUS = 3, 4
# Signals whose handlers (libFuzzer's, Python's) the child resets, so it dies of them.
_DEADLY = (
    signal.SIGSEGV,
    signal.SIGBUS,
    signal.SIGILL,
    signal.SIGFPE,
    signal.SIGABRT,
    signal.SIGALRM,
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)
SAVED_PER_SIGNATURE = 3


def import_targets(instrument: bool) -> None:
    """Import the fuzzed modules (instrumented for atheris' coverage where asked)."""
    if instrument:
        import atheris

        with atheris.instrument_imports(include=["classifier.engine", "mutagen"]):
            import classifier.engine.audio
            import classifier.engine.features
            import classifier.engine.filetags
    else:
        import classifier.engine.features
        import classifier.engine.filetags  # noqa: F401


def exercise(path: Path) -> list[str]:
    """Every target on `path`: the typed errors they raised; anything else propagates."""
    from classifier.engine.audio import iter_decode, probe
    from classifier.engine.errors import AudioError, TagError
    from classifier.engine.features import extract_chunks
    from classifier.engine.filetags import read_tags

    def decode_all(p: Path) -> int:
        return sum(block.size for block in iter_decode(p, warnings=[]))

    targets: list[tuple[Callable[[Path], object], type[Exception]]] = [
        (probe, AudioError),
        (decode_all, AudioError),
        (extract_chunks, AudioError),
        (read_tags, TagError),
    ]
    typed = []
    for target, allowed in targets:
        try:
            target(path)
        except allowed as exc:
            typed.append(type(exc).__name__)
    return typed


# ------------------------------------------------------------------ seeds


def make_seeds(folder: Path) -> list[bytes]:
    """Small files of every format (a suffix byte first), some tagged, and the hostile ones."""
    from classifier.engine.filetags import write_genres
    from tests.audiofiles import FORMATS, make_audio_file
    from tests.engine import hostile

    files = [
        make_audio_file(folder, fmt, seconds=0.6, sample_rate=8000, name=f"seed-{fmt}")
        for fmt in FORMATS
    ]
    for fmt in ("mp3", "flac", "ogg", "m4a"):
        tagged = make_audio_file(folder, fmt, seconds=0.4, sample_rate=8000, name="tagged", seed=1)
        with contextlib.suppress(Exception):
            write_genres(tagged, ["Rock", "Jazz"], "replace", provenance={"model": "seed"})
        files.append(tagged)
    files += [
        hostile.write_multichannel(
            folder / "surround.wav", hostile.channel_signals(8, 8000, 0.3), 8000
        ),
        hostile.write_multichannel(
            folder / "surround.flac", hostile.channel_signals(8, 8000, 0.3), 8000
        ),
        *hostile.impossible_wavs(folder),
        hostile.with_tail(files[list(FORMATS).index("mp3")], b"\0" * 8, "zeros"),
        hostile.rate_change_mp3(folder, (0.4, 0.4), (8000, 16_000)),
    ]
    return [bytes([SUFFIXES.index(path.suffix)]) + path.read_bytes() for path in files]


def warm_up(folder: Path) -> None:
    """Run the plain seeds here once, so that every child starts with librosa's lazy
    imports, its compiled functions and the mel filterbank ready (seconds otherwise)."""
    for path in sorted(folder.glob("seed-*")):
        exercise(path)


# ------------------------------------------------------------------ running one input


@dataclass
class Outcome:
    kind: str  # ok, typed, unexpected, crash, hang, oom
    detail: str = ""  # the typed errors, the signal, or the traceback
    max_rss_kb: int = 0


@dataclass
class Figures:
    tried: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    typed: Counter[str] = field(default_factory=Counter)
    findings: Counter[str] = field(default_factory=Counter)  # signature -> count
    child_peak_rss_kb: int = 0
    started: float = field(default_factory=time.monotonic)

    def as_json(self, engine: str, findings_dir: Path, corpus: int) -> dict[str, Any]:
        seconds = time.monotonic() - self.started
        return {
            "engine": engine,
            "seconds": round(seconds, 1),
            "files_tried": self.tried,
            "per_second": round(self.tried / seconds, 1) if seconds else 0.0,
            "ok": self.kinds["ok"],
            "typed_errors": self.kinds["typed"],
            "crashes": self.kinds["crash"],
            "hangs": self.kinds["hang"],
            "unexpected_exceptions": self.kinds["unexpected"],
            "out_of_memory": self.kinds["oom"],
            "child_peak_rss_mb": round(self.child_peak_rss_kb / 1024, 1),
            "fuzzer_peak_rss_mb": round(
                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
            ),
            "typed": dict(self.typed.most_common()),
            "findings": dict(self.findings),
            "findings_dir": str(findings_dir),
            "corpus_files": corpus,
        }

    @property
    def found(self) -> int:
        return sum(self.kinds[k] for k in ("crash", "hang", "unexpected", "oom"))


class Runner:
    """Runs inputs in forked children and keeps the figures and the findings."""

    def __init__(self, workdir: Path, findings: Path, timeout: float, memory_mb: int) -> None:
        self.workdir, self.findings_dir, self.timeout = workdir, findings, timeout
        self.memory_limit = _virtual_size() + memory_mb * 1024 * 1024
        self.figures = Figures()

    def path_for(self, data: bytes) -> Path:
        return self.workdir / f"input{SUFFIXES[data[0] % len(SUFFIXES)]}"

    def run(self, data: bytes) -> Outcome:
        if len(data) < 2:
            return Outcome("ok")
        path = self.path_for(data)
        path.write_bytes(data[1:])
        outcome = self._in_child(path)
        self._count(data, outcome)
        return outcome

    def _in_child(self, path: Path) -> Outcome:
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            os.close(read_end)
            _child(path, write_end, self.memory_limit)
        os.close(write_end)
        message, finished = b"", False
        deadline = time.monotonic() + self.timeout
        try:
            while (left := deadline - time.monotonic()) > 0:
                if not select.select([read_end], [], [], left)[0]:
                    break
                chunk = os.read(read_end, 65536)
                if not chunk:
                    finished = True
                    break
                message += chunk
        finally:
            os.close(read_end)
        if not finished:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _, status, usage = os.wait4(pid, 0)
        rss = usage.ru_maxrss
        text = message.decode(errors="replace")
        if not finished:
            return Outcome("hang", f"no answer after {self.timeout:.0f} s", rss)
        if os.WIFSIGNALED(status):
            return Outcome("crash", signal.Signals(os.WTERMSIG(status)).name, rss)
        code = os.WEXITSTATUS(status)
        if code == 0:
            return Outcome("typed" if text else "ok", text, rss)
        if code in (UNEXPECTED_STATUS, OOM_STATUS):
            return Outcome("unexpected" if code == UNEXPECTED_STATUS else "oom", text, rss)
        return Outcome("crash", f"exit status {code}", rss)

    def _count(self, data: bytes, outcome: Outcome) -> None:
        figures = self.figures
        figures.tried += 1
        figures.kinds[outcome.kind] += 1
        figures.child_peak_rss_kb = max(figures.child_peak_rss_kb, outcome.max_rss_kb)
        if outcome.kind == "typed":
            figures.typed.update(outcome.detail.split(","))
        elif outcome.kind != "ok":
            signature = f"{outcome.kind}: {_signature(outcome.detail)}"
            figures.findings[signature] += 1
            if figures.findings[signature] <= SAVED_PER_SIGNATURE:
                self._save(data, outcome)

    def _save(self, data: bytes, outcome: Outcome) -> None:
        self.findings_dir.mkdir(parents=True, exist_ok=True)
        name = f"{outcome.kind}-{hashlib.sha1(data).hexdigest()[:12]}"
        (self.findings_dir / (name + self.path_for(data).suffix)).write_bytes(data[1:])
        (self.findings_dir / (name + ".txt")).write_text(outcome.detail)
        sys.stderr.write(
            f"FINDING {outcome.kind}: {_signature(outcome.detail)} (saved as {name})\n"
        )


def _child(path: Path, pipe: int, memory_limit: int) -> None:
    status = 0
    try:
        for number in _DEADLY:
            signal.signal(number, signal.SIG_DFL)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
        message = ",".join(exercise(path))
    except MemoryError:
        message, status = traceback.format_exc(), OOM_STATUS
    except BaseException:
        message, status = traceback.format_exc(), UNEXPECTED_STATUS
    with contextlib.suppress(BaseException):
        data = message.encode(errors="replace")[-60000:]
        while data:
            data = data[os.write(pipe, data) :]
    os._exit(status)


def _signature(detail: str) -> str:
    """A finding's kind: the signal, or the exception and the innermost line it came from."""
    lines = [line.strip() for line in detail.strip().splitlines() if line.strip()]
    if not lines or not lines[0].startswith("Traceback"):
        return detail.strip()[:200]
    where = next((line for line in reversed(lines) if line.startswith("File ")), "")
    return f"{lines[-1][:160]} at {where[:200]}"


def _virtual_size() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


# ------------------------------------------------------------------ engines


def fuzz_with_atheris(
    runner: Runner,
    corpus: Path,
    seconds: float,
    seed: int,
    report: Callable[[], int],
    coverage: bool,
) -> None:
    """libFuzzer over the corpus folder; never returns (report() runs at the deadline)."""
    import atheris

    deadline = time.monotonic() + seconds

    def one_input(data: bytes) -> None:
        outcome = runner.run(data)
        if coverage and outcome.kind in ("ok", "typed"):
            # The child survived it: run it here too, so libFuzzer sees the code it reached.
            with contextlib.suppress(Exception):
                exercise(runner.path_for(data))
        if time.monotonic() >= deadline:
            os._exit(report())

    argv = [
        sys.argv[0],
        f"-seed={seed}",
        f"-max_len={MAX_LEN}",
        "-rss_limit_mb=0",
        f"-timeout={int(runner.timeout * 3 + 60)}",
        f"-max_total_time={int(seconds) + 600}",
        "-print_final_stats=0",
        str(corpus),
    ]
    atheris.Setup(argv, one_input)
    atheris.Fuzz()


def fuzz_at_random(runner: Runner, seeds: list[bytes], seconds: float, seed: int) -> None:
    """The seeds, then seeded random mutations of them until the time is up."""
    rng = random.Random(seed)
    deadline = time.monotonic() + seconds
    for data in seeds:
        runner.run(data)
    while time.monotonic() < deadline:
        runner.run(mutate(bytearray(rng.choice(seeds)), rng, seeds))


_INTERESTING = (
    b"\x00",
    b"\xff",
    b"\x7f",
    b"\x80",
    b"\x00\x00",
    b"\xff\xff",
    b"\x00\x80",
    b"\xff\xff\xff\xff",
    b"\x00\x00\x00\x00",
    b"\xff\xff\xff\x7f",
    b"\x00\x00\x00\x80",
    b"\x01\x00\x00\x00",
    b"\x10\x00",
    b"\x08\x00",
)


def mutate(data: bytearray, rng: random.Random, seeds: list[bytes]) -> bytes:
    """A few random edits of `data` (byte 0, the suffix, is kept most of the time)."""
    for _ in range(rng.randint(1, 8)):
        if len(data) < 3:
            break
        at = rng.randrange(1, len(data))
        choice = rng.randrange(8)
        if choice == 0:
            data[at] ^= 1 << rng.randrange(8)
        elif choice == 1:
            data[at] = rng.randrange(256)
        elif choice == 2:
            value = rng.choice(_INTERESTING)
            data[at : at + len(value)] = value
        elif choice == 3:
            del data[at : at + rng.randint(1, 256)]
        elif choice == 4:
            end = min(len(data), at + rng.randint(1, 512))
            data[at:at] = data[at:end]
        elif choice == 5:
            data[at:at] = rng.randbytes(rng.randint(1, 64))
        elif choice == 6:
            del data[rng.randrange(1, len(data)) :]
        else:
            other = rng.choice(seeds)
            start = rng.randrange(1, len(other))
            data[at:] = other[start : start + rng.randint(1, 4096)]
    if rng.random() < 0.05 and data:
        data[0] = rng.randrange(len(SUFFIXES))
    return bytes(data[:MAX_LEN])


# ------------------------------------------------------------------ main


def print_figures(figures: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(figures), flush=True)
        return
    print(
        f"{figures['files_tried']} files in {figures['seconds']} s "
        f"({figures['per_second']}/s, engine {figures['engine']})"
    )
    for key in (
        "ok",
        "typed_errors",
        "crashes",
        "hangs",
        "unexpected_exceptions",
        "out_of_memory",
        "child_peak_rss_mb",
        "fuzzer_peak_rss_mb",
        "corpus_files",
    ):
        print(f"  {key}: {figures[key]}")
    print(f"  typed errors by class: {figures['typed']}")
    for signature, count in figures["findings"].items():
        print(f"  FOUND {count}x {signature}")
    print(
        f"  findings saved in {figures['findings_dir']}"
        if figures["findings"]
        else "  nothing found",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="how long (default 300)")
    parser.add_argument(
        "--engine",
        choices=("atheris", "random"),
        default=None,
        help="default: atheris where it is installed",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        help="seconds one input may take before it counts as a hang",
    )
    parser.add_argument(
        "--memory-mb",
        type=int,
        default=2048,
        help="memory one input may take on top of the fuzzer's own",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--findings",
        type=Path,
        default=None,
        help="where crashing inputs are saved (default: a temporary folder)",
    )
    parser.add_argument(
        "--no-coverage",
        action="store_true",
        help="atheris: do not re-run inputs in this process for coverage",
    )
    parser.add_argument("--json", action="store_true", help="the figures as one JSON line")
    options = parser.parse_args(argv)
    engine = options.engine or _default_engine()
    import_targets(instrument=engine == "atheris" and not options.no_coverage)

    work = Path(tempfile.mkdtemp(prefix="genreweb-fuzz-"))
    corpus, inputs = work / "corpus", work / "input"
    corpus.mkdir()
    inputs.mkdir()
    findings = options.findings or work / "findings"
    seeds_dir = work / "seeds"
    seeds_dir.mkdir()
    seeds = make_seeds(seeds_dir)
    warm_up(seeds_dir)
    for n, data in enumerate(seeds):
        (corpus / f"seed-{n:02d}").write_bytes(data)
    runner = Runner(inputs, findings, options.timeout, options.memory_mb)

    def report() -> int:
        figures = runner.figures.as_json(engine, findings, len(list(corpus.iterdir())))
        print_figures(figures, options.json)
        for folder in (corpus, inputs, seeds_dir):
            shutil.rmtree(folder, ignore_errors=True)
        if not any(work.iterdir()):
            work.rmdir()
        return 1 if runner.figures.found else 0

    if engine == "atheris":
        fuzz_with_atheris(
            runner, corpus, options.seconds, options.seed, report, coverage=not options.no_coverage
        )
    fuzz_at_random(runner, seeds, options.seconds, options.seed)
    return report()


def _default_engine() -> str:
    try:
        import atheris  # noqa: F401
    except ImportError:
        return "random"
    return "atheris"


if __name__ == "__main__":
    sys.exit(main())
