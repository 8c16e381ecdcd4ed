"""Fuzzing the decoder and the tag reader (bench/fuzz.py), bounded for CI.

The fuzzer runs in its own process, each input in a forked child of it: a crash, a hang or
an exception other than AudioError / TagError is a finding, never the end of this run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import fuzz

REPO = Path(__file__).resolve().parents[2]
FUZZ_SECONDS = 30
# On a busy two-core machine the fuzzer still gets through a few inputs a second.
AT_LEAST = 60


def test_fuzzing_the_decoder_and_the_tag_reader_finds_nothing(tmp_path):
    findings = tmp_path / "findings"
    result = subprocess.run(
        [
            sys.executable,
            "bench/fuzz.py",
            "--seconds",
            str(FUZZ_SECONDS),
            "--timeout",
            "20",
            "--json",
            "--findings",
            str(findings),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=FUZZ_SECONDS + 240,
    )
    lines = result.stdout.strip().splitlines()
    assert lines, f"no figures (exit status {result.returncode}):\n{result.stderr[-3000:]}"
    figures = json.loads(lines[-1])
    found = {
        key: figures[key] for key in ("crashes", "hangs", "unexpected_exceptions", "out_of_memory")
    }
    assert not any(found.values()), (
        found,
        figures["findings"],
        sorted(p.name for p in findings.glob("*")) if findings.exists() else [],
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert figures["files_tried"] >= AT_LEAST, figures
    assert figures["typed_errors"] > 0 and figures["ok"] > 0, figures  # it reached both


# --- the harness itself: what a child's end counts as ------------------------------------


def fake_exercise(path: Path) -> list[str]:
    """Stands in for the targets: behaves as the input's content says."""
    content = path.read_bytes()
    if content == b"segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    if content == b"hang":
        time.sleep(60)
    if content == b"boom":
        raise ValueError("not a typed error")
    if content == b"typed":
        return ["TruncatedAudioError"]
    return []


@pytest.fixture
def runner(tmp_path, monkeypatch) -> fuzz.Runner:
    monkeypatch.setattr(fuzz, "exercise", fake_exercise)
    (tmp_path / "work").mkdir()
    return fuzz.Runner(tmp_path / "work", tmp_path / "findings", timeout=2.0, memory_mb=512)


def test_each_way_a_child_can_end_is_counted(runner, tmp_path):
    wav = bytes([fuzz.SUFFIXES.index(".wav")])
    kinds = {
        content: runner.run(wav + content).kind
        for content in (b"fine", b"typed", b"segv", b"hang", b"boom")
    }
    assert kinds == {
        b"fine": "ok",
        b"typed": "typed",
        b"segv": "crash",
        b"hang": "hang",
        b"boom": "unexpected",
    }
    figures = runner.figures.as_json("test", runner.findings_dir, 0)
    assert figures["files_tried"] == 5 and figures["crashes"] == figures["hangs"] == 1
    assert any("SIGSEGV" in s for s in figures["findings"])
    assert any("ValueError: not a typed error" in s for s in figures["findings"])
    saved = sorted(p.suffix for p in (tmp_path / "findings").iterdir())
    assert saved == [".txt"] * 3 + [".wav"] * 3  # each finding's input and its story


def test_mutations_are_seeded_and_bounded():
    import random

    seeds = [bytes([1]) + bytes(range(256)) * 8]

    def mutations(seed: int) -> list[bytes]:
        rng = random.Random(seed)
        return [fuzz.mutate(bytearray(seeds[0]), rng, seeds) for _ in range(50)]

    first = mutations(5)
    assert first == mutations(5) and first != mutations(6)
    assert len(set(first)) > 40 and all(len(data) <= fuzz.MAX_LEN for data in first)
