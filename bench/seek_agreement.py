"""Seeking against streaming: do budgeted chunks found by seeking give the streamed verdict?

For each file, the default analysis is run twice: with seeking (the engine's way for long
tracks) and with the whole file streamed (features.SEEKING off). Reported per format: tracks,
how many share the top genre, and the largest difference of any genre probability.
Files: the shared MP3 previews (mer4q, emotify; 20-30 s, so every chunk is sought there:
SPARSE_FROM is set to 0), and 4-minute tracks of GTZAN clips encoded as MP3 (192 kbps), M4A
(AAC), Ogg Vorbis and Opus.
Last line: agreement=<fraction> max_probability_difference=<x>
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.tracks import FORMATS, make_tracks  # noqa: E402
from classifier.engine import features  # noqa: E402
from classifier.engine.runner import get_engine  # noqa: E402

SHARED = Path(os.environ.get("GENREWEB_SHARED_DIR", REPO.parent / "shared")) / "data"


class FallbackCounter(logging.Handler):
    """Counts the engine's "cannot be sought" warnings: a track that fell back was not sought."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        print(record.getMessage(), flush=True)
        self.count += 1


FALLBACKS = FallbackCounter()
logging.getLogger("classifier.engine.features").addHandler(FALLBACKS)


def compare(engine, path: Path) -> tuple[bool, float]:
    """(same top genre, largest probability difference) of seeking against streaming."""
    features.SEEKING = True
    sought = engine.analyse(path)
    features.SEEKING = False
    streamed = engine.analyse(path)
    features.SEEKING = True
    diff = max(
        abs(sought.probabilities[g] - streamed.probabilities[g]) for g in sought.probabilities
    )
    return sought.genres[0].name == streamed.genres[0].name, diff


def report(name: str, results: list[tuple[bool, float]]) -> None:
    global_fallbacks, FALLBACKS.count = FALLBACKS.count, 0
    same = sum(r[0] for r in results)
    diffs = np.array([r[1] for r in results])
    print(
        f"{name}: {len(results)} tracks, same top genre {same}/{len(results)}, probability "
        f"difference max {diffs.max():.4f} mean {diffs.mean():.4f}; {global_fallbacks} streamed "
        "instead (could not seek)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=8, help="4-minute tracks per format")
    parser.add_argument("--previews", type=int, default=0, help="shared MP3s (0: all)")
    args = parser.parse_args()
    engine = get_engine()
    everything: list[tuple[bool, float]] = []
    previews = sorted((SHARED / "mer4q").rglob("*.mp3")) + sorted(
        (SHARED / "emotify").rglob("*.mp3")
    )
    if args.previews:
        previews = previews[:: max(1, len(previews) // args.previews)][: args.previews]
    sparse_from, features.SPARSE_FROM = features.SPARSE_FROM, 0
    results = [compare(engine, p) for p in previews]
    features.SPARSE_FROM = sparse_from
    report("shared MP3 previews (every chunk sought)", results)
    everything += results
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in ("mp3", "m4a", "ogg", "opus"):
            tracks = make_tracks(Path(tmp), args.tracks, fmt)
            results = [compare(engine, p) for p in tracks]
            report(f"4-minute {FORMATS[fmt]}", results)
            everything += results
            for p in tracks:
                p.unlink()
    same = sum(r[0] for r in everything) / len(everything)
    print(f"agreement={same:.4f} max_probability_difference={max(r[1] for r in everything):.4f}")


if __name__ == "__main__":
    main()
