"""`manage.py classify PATH...`: genres for audio files and folders, optionally written as tags."""
from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from classifier.config import AUDIO_SUFFIXES
from classifier.errors import EngineError
from classifier.tags import POLICIES, write_genres
from classifier.verdict import Analysis


def audio_files(paths: list[str]) -> Iterator[Path]:
    """The files named, and every audio file below the folders named, in a stable order."""
    for name in paths:
        path = Path(name)
        if path.is_dir():
            yield from sorted(f for f in path.rglob("*")
                              if f.is_file() and f.suffix.lower() in AUDIO_SUFFIXES)
        else:
            yield path  # a missing or odd file is reported as that file's error


class Command(BaseCommand):
    help = "Tell the genres of audio files (folders are walked recursively)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="+", metavar="PATH")
        parser.add_argument("--json", action="store_true",
                            help="one JSON object per file on stdout, nothing else")
        parser.add_argument("--write-tags", action="store_true",
                            help="write the genres into each file's tags")
        parser.add_argument("--policy", choices=POLICIES, default="fill",
                            help="fill: only where no genre is set (default); replace; merge")
        parser.add_argument("--id3v23", action="store_true",
                            help="write MP3 tags as ID3v2.3, genres joined by '; '")
        parser.add_argument("--record-model", action="store_true",
                            help="also record the model version and confidence in the tags")
        parser.add_argument("--top-k", type=int, default=3, help="genres to report (default 3)")
        parser.add_argument("--full", action="store_true",
                            help="analyse every 3-second chunk, not at most 16")
        parser.add_argument("--min-confidence", type=float, default=None,
                            help="below this the verdict is 'uncertain' (default 0.35)")

    def handle(self, *args, **options) -> None:
        from classifier.analysis import get_engine

        if options["top_k"] < 1:
            raise CommandError("--top-k must be at least 1")
        files = list(audio_files(options["paths"]))
        if not files:
            raise CommandError("No audio files found in the paths given.")
        try:
            engine = get_engine()
        except EngineError as exc:
            raise CommandError(str(exc)) from None
        failed = sum(not self.classify_one(engine, path, options) for path in self.progress(files))
        if failed:
            self.stderr.write(f"{failed} of {len(files)} files failed.")
            sys.exit(1)

    def progress(self, files: list[Path]) -> Iterator[Path]:
        if not sys.stderr.isatty():
            yield from files
            return
        from tqdm import tqdm

        yield from tqdm(files, unit="file", file=sys.stderr, dynamic_ncols=True)

    def classify_one(self, engine, path: Path, options: dict) -> bool:
        try:
            analysis = engine.analyse(path, full=options["full"], top_k=options["top_k"],
                                      min_confidence=options["min_confidence"])
            tag_note = self.write_tags(path, analysis, options) if options["write_tags"] else ""
        except EngineError as exc:
            self.report_error(path, engine.model, str(exc), options["json"])
            return False
        if options["json"]:
            self.stdout.write(json.dumps(analysis.to_json()))
        else:
            self.stdout.write(describe(analysis) + tag_note)
        return True

    def write_tags(self, path: Path, analysis: Analysis, options: dict) -> str:
        values = analysis.tag_values()
        if not values:
            return "\n    tags: left alone (verdict uncertain)"
        provenance = None
        if options["record_model"]:
            provenance = {"model": analysis.model,
                          "confidence": f"{analysis.genres[0].confidence:.3f}"}
        result = write_genres(path, values, options["policy"],
                              id3_version=3 if options["id3v23"] else 4, provenance=provenance)
        if not result.changed:
            return f"\n    tags: unchanged ({', '.join(result.before) or 'none'})"
        return f"\n    tags: {', '.join(result.before) or 'none'} -> {', '.join(result.after)}"

    def report_error(self, path: Path, model: str, message: str, as_json: bool) -> None:
        if as_json:
            self.stdout.write(json.dumps({"path": str(path), "genres": [], "styles": [],
                                          "chunks": 0, "duration": 0.0, "model": model,
                                          "error": message}))
        self.stderr.write(f"{path}: error: {message}")


def describe(analysis: Analysis) -> str:
    """Two human lines: the ranked genres, then the styles."""
    genres = ", ".join(f"{g.name} {g.confidence:.0%}" for g in analysis.genres)
    verdict = f"uncertain (best guess: {genres})" if analysis.uncertain else genres
    styles = ", ".join(f"{s.name} {s.score:.2f}" for s in analysis.styles)
    return (f"{analysis.path}: {verdict}\n    {analysis.chunks} chunks of "
            f"{analysis.duration:.1f} s; styles: {styles}")
