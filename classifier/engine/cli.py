"""The engine's command line: `python -m classifier.engine classify|train-head|train-default|...`.

The same argument definitions and runs serve `manage.py classify` and `manage.py train_head`,
which only hand in the web app's configuration. Standing alone, the engine reads its
configuration from GENREWEB_MODEL_DIR, GENREWEB_HEAD_PATH and GENREWEB_TORCH_THREADS.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from classifier.engine.analysis import Analysis
from classifier.engine.config import AUDIO_SUFFIXES, TagChoice
from classifier.engine.errors import EngineError, unexpected_error
from classifier.engine.evidence import TrackEvidence, read_evidence
from classifier.engine.filetags import POLICIES, write_genres
from classifier.engine.fusion import load_weights
from classifier.engine.library import LibraryTrack, evidence_json, fuse_library, fused_analysis
from classifier.engine.registry import (
    DEFAULT_HEAD,
    MULTIGENRE_HEAD,
    NOVELTY_MODEL,
    default_model_dir,
)
from classifier.engine.runner import Engine, EngineConfig, get_engine

log = logging.getLogger(__name__)


class UsageError(Exception):
    """A run that cannot start: the message says why (exit status 2)."""


# ---------------------------------------------------------------- classify


def add_classify_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH")
    parser.add_argument(
        "--json", action="store_true", help="one JSON object per file on stdout, nothing else"
    )
    parser.add_argument(
        "--write-tags", action="store_true", help="write the genres into each file's tags"
    )
    parser.add_argument(
        "--policy",
        choices=POLICIES,
        default="fill",
        help="fill: only where no genre is set (default); replace; merge",
    )
    parser.add_argument(
        "--id3v23", action="store_true", help="write MP3 tags as ID3v2.3, genres joined by '; '"
    )
    parser.add_argument(
        "--record-model",
        action="store_true",
        help="also record the model version and confidence in the tags",
    )
    parser.add_argument(
        "--tag-styles",
        action="store_true",
        help='write each genre with its styles ("Electronic; House"), not top-level genres only',
    )
    parser.add_argument(
        "--tag-max", type=int, default=TagChoice.max_count, help="most genre values written (3)"
    )
    parser.add_argument(
        "--tag-min-confidence",
        type=float,
        default=None,
        help="a genre is written at or above this (default: --min-confidence)",
    )
    parser.add_argument("--top-k", type=int, default=3, help="genres to report (default 3)")
    parser.add_argument(
        "--full", action="store_true", help="analyse every 3-second chunk, not at most 16"
    )
    parser.add_argument(
        "--min-confidence",
        type=float,
        default=None,
        help="below this the verdict is 'uncertain' (default 0.35)",
    )


def audio_files(paths: Sequence[str | Path]) -> Iterator[Path]:
    """The files named, and every audio file below the folders named, in a stable order."""
    for name in paths:
        path = Path(name)
        if path.is_dir():
            yield from sorted(
                f for f in path.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO_SUFFIXES
            )
        else:
            yield path  # a missing or odd file is reported as that file's error


def classify(options: dict[str, Any], config: EngineConfig, out: TextIO, err: TextIO) -> int:
    """Classify the files named in `options`; the exit status (1 if any file failed).

    Two passes: every file is analysed first, then each verdict is fused with its evidence
    (its own genre tags, the other tracks of its album and of its artist among the files
    named), so a folder's albums are pooled whatever order the files come in."""
    if options["top_k"] < 1:
        raise UsageError("--top-k must be at least 1")
    tag_choice(options)  # refused before any file is read
    files = list(audio_files(options["paths"]))
    if not files:
        raise UsageError("No audio files found in the paths given.")
    try:
        engine = get_engine(config)
    except EngineError as exc:
        raise UsageError(str(exc)) from None
    found = [_analyse(engine, path, options) for path in _progress(files)]
    fused = _fuse([f for f in found if isinstance(f, _Found)])
    failed = 0
    for path, result in zip(files, found, strict=True):
        if isinstance(result, str):
            _report_error(path, engine.model, result, options["json"], out, err)
            failed += 1
        else:
            failed += not _report_one(path, result, fused[path], options, out, err)
    if failed:
        err.write(f"{failed} of {len(files)} files failed.\n")
        return 1
    return 0


def _progress(files: list[Path]) -> Iterator[Path]:
    if not sys.stderr.isatty():
        yield from files
        return
    from tqdm import tqdm

    yield from tqdm(files, unit="file", file=sys.stderr, dynamic_ncols=True)


@dataclass
class _Found:
    path: Path
    analysis: Analysis
    evidence: TrackEvidence


def _analyse(engine: Engine, path: Path, options: dict[str, Any]) -> _Found | str:
    """The file's audio verdict and tag evidence, or why it failed."""
    try:
        analysis = engine.analyse(
            path,
            full=options["full"],
            top_k=options["top_k"],
            min_confidence=options["min_confidence"],
        )
    except EngineError as exc:
        return str(exc)
    except Exception as exc:  # one file's unforeseen failure must not end the run
        return unexpected_error(log, path.name, exc)
    # The second pass needs only the verdict: the timeline and embedding would pile up.
    analysis.timeline, analysis.embedding = [], None
    found = analysis.evidence if analysis.evidence is not None else read_evidence(path)
    return _Found(path, analysis, found)


def _fuse(found: list[_Found]) -> dict[Path, tuple[Analysis, list[dict[str, Any]]]]:
    """Each analysed file's fused verdict and its evidence as JSON; the audio's verdict alone
    where the fusion weights cannot be loaded."""
    if not found:
        return {}
    try:
        weights = load_weights()
    except (OSError, ValueError, KeyError) as exc:
        log.warning("fusion weights not loaded (%s): audio verdicts only", exc)
        return {f.path: (f.analysis, []) for f in found}
    result = {}
    by_head: dict[str, list[_Found]] = {}
    for f in found:  # one run uses one head, but the rule needs tracks of the same genres
        by_head.setdefault(f.analysis.model, []).append(f)
    for group in by_head.values():
        parents = group[0].analysis.parents
        tracks = [
            LibraryTrack(f.analysis.probabilities, f.evidence, str(f.path.parent)) for f in group
        ]
        for f, fused in zip(group, fuse_library(tracks, weights, parents), strict=True):
            top_k = len(f.analysis.genres)
            result[f.path] = (
                fused_analysis(f.analysis, fused, top_k),
                evidence_json(f.evidence, fused, parents),
            )
    return result


def _report_one(
    path: Path,
    found: _Found,
    fused: tuple[Analysis, list[dict[str, Any]]],
    options: dict[str, Any],
    out: TextIO,
    err: TextIO,
) -> bool:
    analysis, evidence = fused
    tag_note, tag_error = _tag_outcome(path, analysis, options)
    if options["json"]:
        line = analysis.to_json()
        line["audio_genres"] = found.analysis.to_json()["genres"]
        line["evidence"] = evidence
        if tag_error is not None:
            line["tag_error"] = tag_error
        out.write(json.dumps(line) + "\n")
    else:
        out.write(describe(analysis) + _evidence_note(found.analysis, analysis) + tag_note + "\n")
    if tag_error is not None:
        err.write(f"{path}: error: the tags were not written: {tag_error}\n")
    return tag_error is None


def _evidence_note(audio: Analysis, fused: Analysis) -> str:
    """A line with the audio's own verdict, where the evidence changed it."""
    if [g.name for g in audio.genres] == [g.name for g in fused.genres]:
        return ""
    genres = ", ".join(f"{g.name} {g.confidence:.0%}" for g in audio.genres)
    return f"\n    audio alone: {genres}"


def _tag_outcome(path: Path, analysis: Analysis, options: dict[str, Any]) -> tuple[str, str | None]:
    """(the line saying what happened to the file's tags, the error where writing failed);
    the genres found are reported either way."""
    if not options["write_tags"]:
        return "", None
    try:
        return _write_tags(path, analysis, options), None
    except EngineError as exc:
        message = str(exc)
    except Exception as exc:  # the verdict stands; only the write failed
        message = unexpected_error(log, path.name, exc, verb="tagged")
    return f"\n    tags: not written ({message})", message


def tag_choice(options: dict[str, Any]) -> TagChoice:
    """The tag options of a run (absent ones at their defaults); UsageError when out of range."""
    try:
        return TagChoice(
            styles=bool(options.get("tag_styles", False)),
            max_count=int(options.get("tag_max", TagChoice.max_count)),
            min_confidence=options.get("tag_min_confidence"),
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _write_tags(path: Path, analysis: Analysis, options: dict[str, Any]) -> str:
    values = analysis.tag_values(tag_choice(options))
    if not values:
        return "\n    tags: left alone (verdict uncertain)"
    provenance = None
    if options["record_model"]:
        provenance = {"model": analysis.model, "confidence": f"{analysis.genres[0].confidence:.3f}"}
    result = write_genres(
        path,
        values,
        options["policy"],
        id3_version=3 if options["id3v23"] else 4,
        provenance=provenance,
    )
    if not result.changed:
        return f"\n    tags: unchanged ({', '.join(result.before) or 'none'})"
    return f"\n    tags: {', '.join(result.before) or 'none'} -> {', '.join(result.after)}"


def _report_error(
    path: Path, model: str, message: str, as_json: bool, out: TextIO, err: TextIO
) -> None:
    if as_json:
        out.write(
            json.dumps(
                {
                    "path": str(path),
                    "genres": [],
                    "styles": [],
                    "chunks": 0,
                    "duration": 0.0,
                    "model": model,
                    "warnings": [],
                    "audio_genres": [],
                    "evidence": [],
                    "error": message,
                }
            )
            + "\n"
        )
    err.write(f"{path}: error: {message}\n")


def describe(analysis: Analysis) -> str:
    """Two human lines: the ranked genres, then the styles."""
    genres = ", ".join(f"{g.name} {g.confidence:.0%}" for g in analysis.genres)
    verdict = f"uncertain (best guess: {genres})" if analysis.uncertain else genres
    styles = ", ".join(f"{s.name} {s.score:.2f}" for s in analysis.styles)
    notes = "".join(f"\n    warning: {warning}" for warning in analysis.warnings)
    return (
        f"{analysis.path}: {verdict}\n    {analysis.chunks} chunks of "
        f"{analysis.duration:.1f} s; styles: {styles}{notes}"
    )


# ---------------------------------------------------------------- train-head


def add_train_head_arguments(parser: argparse.ArgumentParser) -> None:
    from classifier.engine.head import TrainConfig

    parser.add_argument("directory", metavar="DIR")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="head file to write (default: genre_head.safetensors in the "
        "models folder; a committed head is replaced only when named here)",
    )
    parser.add_argument(
        "--feature",
        default="penultimate",
        help="CNN outputs the head reads, joined by '+' "
        "(penultimate, taggram, max_pool, mean_pool)",
    )
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    parser.add_argument("--hidden", type=int, default=0, help="hidden units (0: linear)")
    parser.add_argument("--weight-decay", type=float, default=TrainConfig.weight_decay)
    parser.add_argument(
        "--card", action="store_true", help="write MODEL_CARD.md and confusion.png beside the head"
    )


def train_head(options: dict[str, Any], config: EngineConfig, out: TextIO, err: TextIO) -> int:
    """Train, cross-validate and write a head on a folder of genre subfolders."""
    from classifier.engine.headcard import TrainingError, train_from_folder

    target = options["out"] or (Path(config.model_dir) / "genre_head.safetensors")
    try:
        train_from_folder(Path(options["directory"]), target, options, config, out, err)
    except TrainingError as exc:
        raise UsageError(str(exc)) from None
    return 0


# ---------------------------------------------------------------- train-default


def add_train_default_arguments(parser: argparse.ArgumentParser) -> None:
    from classifier.engine.config import CALIBRATION, DEFAULT_FEATURE, L2_GRID
    from classifier.engine.datasets import default_shared_dir
    from classifier.engine.featurecache import default_cache_dir

    parser.add_argument(
        "--shared",
        type=Path,
        default=default_shared_dir(),
        help="the shared folder holding data/gtzan_mini, data/mer4q and data/emotify "
        "(default: GENREWEB_SHARED_DIR, else ../shared beside the repository)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=MULTIGENRE_HEAD,
        help="head file to write; MODEL_CARD.md, confusion.png and reliability.png go beside it",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=default_cache_dir(),
        help="where the CNN's outputs per clip are kept (default: GENREWEB_FEATURE_CACHE, "
        "else genreweb-features in the temporary folder)",
    )
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--feature", default=DEFAULT_FEATURE)
    parser.add_argument(
        "--l2",
        type=lambda text: tuple(float(v) for v in text.split(",")),
        default=L2_GRID,
        help="L2 strengths to choose from by nested CV, comma-separated "
        f"(default {','.join(map(str, L2_GRID))}; one value: no choice)",
    )
    parser.add_argument(
        "--calibration", choices=("none", "temperature", "platt"), default=CALIBRATION
    )
    parser.add_argument("--no-card", action="store_true", help="write the head only")
    parser.add_argument(
        "--compare",
        action="store_true",
        help="also compare feature sets and calibrations by CV (a table in the card)",
    )


def train_default(options: dict[str, Any], config: EngineConfig, out: TextIO, err: TextIO) -> int:
    """Train the default multi-genre head on the three labelled sources, with its card."""
    from classifier.engine.defaulthead import Options
    from classifier.engine.defaulthead import train_default as run

    if options["folds"] < 3:
        raise UsageError("--folds must be at least 3")
    try:
        run(
            Options(
                shared=options["shared"],
                out=options["out"],
                cache=options["cache"],
                folds=options["folds"],
                feature=options["feature"],
                l2=options["l2"],
                calibration=options["calibration"],
                card=not options["no_card"],
                compare=options["compare"],
            ),
            config,
            out,
            err,
        )
    except (FileNotFoundError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    return 0


# ---------------------------------------------------------------- train-novelty


def add_train_novelty_arguments(parser: argparse.ArgumentParser) -> None:
    from classifier.engine.datasets import default_shared_dir
    from classifier.engine.featurecache import default_cache_dir

    parser.add_argument("--shared", type=Path, default=default_shared_dir())
    parser.add_argument("--out", type=Path, default=NOVELTY_MODEL)
    parser.add_argument("--cache", type=Path, default=default_cache_dir())
    parser.add_argument("--folds", type=int, default=5)


def train_novelty(options: dict[str, Any], config: EngineConfig, out: TextIO, err: TextIO) -> int:
    """Fit the novelty model (does it sound like music at all?) on the shared sources."""
    from classifier.engine.noveltyfit import train_novelty as run

    if options["folds"] < 2:
        raise UsageError("--folds must be at least 2")
    try:
        run(options["shared"], options["out"], options["cache"], config, out, options["folds"])
    except (FileNotFoundError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    return 0


# ---------------------------------------------------------------- fusion-report


def add_fusion_report_arguments(parser: argparse.ArgumentParser) -> None:
    from classifier.engine.datasets import default_shared_dir
    from classifier.engine.featurecache import default_cache_dir
    from classifier.engine.fusion import FUSION_FILE

    parser.add_argument("--shared", type=Path, default=default_shared_dir())
    parser.add_argument("--cache", type=Path, default=default_cache_dir())
    parser.add_argument(
        "--seeds", type=int, default=5, help="simulated libraries per scenario and fold (5)"
    )
    parser.add_argument(
        "--write",
        action="store_true",
        help="also learn the weights on every clip and write them, with the figures",
    )
    parser.add_argument("--out", type=Path, default=FUSION_FILE, help="where --write writes")


def fusion_report(options: dict[str, Any], config: EngineConfig, out: TextIO, err: TextIO) -> int:
    """Learn and judge the fusion rule's weights on simulated libraries; print the table."""
    from classifier.engine.fusionsim import run_report
    from classifier.engine.runner import Engine

    if options["seeds"] < 1:
        raise UsageError("--seeds must be at least 1")
    try:
        run_report(
            options["shared"],
            options["cache"],
            lambda: Engine.cnn_only(config),
            out,
            err,
            seeds=options["seeds"],
            write=options["out"] if options["write"] else None,
        )
    except (FileNotFoundError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    return 0


# ---------------------------------------------------------------- the engine's own entry


def config_from_environment() -> EngineConfig:
    """The standalone engine's configuration, from the environment."""
    threads = os.environ.get("GENREWEB_TORCH_THREADS", "0")
    if not threads.isdigit():
        raise UsageError(f"GENREWEB_TORCH_THREADS must be a whole number, not {threads!r}")
    novelty = os.environ.get("GENREWEB_NOVELTY_CHECK", "true").strip().lower()
    if novelty not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
        raise UsageError(f"GENREWEB_NOVELTY_CHECK must be true or false, not {novelty!r}")
    return EngineConfig(
        model_dir=Path(os.environ.get("GENREWEB_MODEL_DIR") or default_model_dir()),
        head_path=Path(os.environ.get("GENREWEB_HEAD_PATH") or DEFAULT_HEAD),
        threads=int(threads),
        novelty_path=NOVELTY_MODEL if novelty in ("true", "1", "yes", "on") else None,
    )


COMMANDS = {
    "classify": (
        add_classify_arguments,
        classify,
        "Tell the genres of audio files (folders are walked recursively).",
    ),
    "train-head": (
        add_train_head_arguments,
        train_head,
        "Train a genre head on DIR/<genre>/*.audio, cross-validate it and write a model card.",
    ),
    "train-default": (
        add_train_default_arguments,
        train_default,
        "Train the bundled multi-genre head on GTZAN, mer4q and emotify (from the shared "
        "folder), judge it by artist-disjoint cross-validation and write its model card.",
    ),
    "train-novelty": (
        add_train_novelty_arguments,
        train_novelty,
        "Fit the novelty model that makes non-music (speech, noise, test tones) come out "
        "uncertain, on the shared sources, and report how much music it wrongly flags.",
    ),
    "fusion-report": (
        add_fusion_report_arguments,
        fusion_report,
        "Learn the weights that fuse the audio's verdict with file tags, albums and artists "
        "on libraries simulated from the shared sources, judge them by nested artist-disjoint "
        "cross-validation and print the table (--write saves them).",
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m classifier.engine", description="Genreweb's genre engine."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, (add_arguments, _, help_text) in COMMANDS.items():
        add_arguments(commands.add_parser(name, help=help_text, description=help_text))
    options = vars(parser.parse_args(argv))
    run = COMMANDS[options["command"]][1]
    try:
        return run(options, config_from_environment(), sys.stdout, sys.stderr)
    except UsageError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
