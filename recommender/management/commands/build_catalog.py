"""python manage.py build_catalog: grow the recommendation catalog from Spotify seeds.

    python manage.py build_catalog --search 'genre:"jazz"' --search 'year:1970-1979 funk' \\
        --playlist 3cEYpjA9oz9GiPac4AsH4n --album 4aawyAB9vmqN3uQ7FjRGTy \\
        --artist 0OdUWJ0sBjDrqHygGUXeCF --limit 100 --wait
    python manage.py build_catalog --status

Seeds are read on this process (Spotify, client credentials from the environment); every
new track is then sampled and analysed by Celery workers. Running it again fetches nothing
twice: finished seeds are skipped, a seed stopped half way goes on from its last page, and
tracks left pending or sampled by a stopped run are queued again.
"""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError, CommandParser

from recommender import tasks
from recommender.services import harvesting, indexing, progress
from recommender.spotify import SpotifyClient, SpotifyError


class Command(BaseCommand):
    help = "Build the recommendation catalog from Spotify seeds (see recommender/README.md)."

    def add_arguments(self, parser: CommandParser) -> None:
        seeds = parser.add_argument_group("seeds (each may be given several times)")
        seeds.add_argument(
            "--search",
            action="append",
            default=[],
            metavar="QUERY",
            help="a Spotify track search, e.g. 'genre:\"jazz\"' or "
            "'artist:\"Nina Simone\" year:1960-1969'",
        )
        for kind in ("playlist", "album", "artist", "track"):
            seeds.add_argument(
                f"--{kind}",
                action="append",
                default=[],
                metavar="ID",
                help=f"a Spotify {kind} id, spotify:{kind}: URI or link",
            )
        parser.add_argument(
            "--limit",
            type=int,
            default=50,
            help="at most this many tracks from each seed (default 50)",
        )
        parser.add_argument(
            "--wait",
            action="store_true",
            help="wait until every track is sampled and analysed (or failed)",
        )
        parser.add_argument(
            "--timeout",
            type=float,
            default=0,
            help="with --wait: give up waiting after this many seconds",
        )
        parser.add_argument(
            "--status", action="store_true", help="only report how many tracks are in each status"
        )

    def handle(self, *args: object, **options: object) -> None:
        if options["status"]:
            self.stdout.write(progress.format_progress(progress.progress()))
            return
        if options["limit"] < 1:
            raise CommandError("--limit must be at least 1")
        seeds = [
            (kind, value)
            for kind in ("search", "playlist", "album", "artist", "track")
            for value in options[kind]
        ]

        again = tasks.requeue_unfinished()
        if any(again.values()):
            self.stdout.write(
                f"going on from an earlier run: {again['pending']} to sample, "
                f"{again['sampled']} to analyse"
            )
        if seeds:
            self._harvest(seeds, options["limit"])
        self.stdout.write(progress.format_progress(progress.progress()))
        if options["wait"]:
            self._wait(options["timeout"])

    def _harvest(self, seeds: list[tuple[str, str]], limit: int) -> None:
        try:
            client = SpotifyClient.from_settings()
            result = harvesting.harvest(
                client, seeds, limit, on_new_tracks=tasks.queue_sampling, report=self.stdout.write
            )
        except (SpotifyError, ValueError) as exc:
            self.stdout.write(progress.format_progress(progress.progress()))
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"{result.new_tracks} new tracks from {result.seeds} seeds "
            f"({client.requests} Spotify requests)"
        )

    def _wait(self, timeout: float) -> None:
        started, last = time.monotonic(), ""
        while True:
            counts = progress.progress()
            line = progress.format_progress(counts)
            if line != last:
                self.stdout.write(line)
                last = line
            if progress.unfinished(counts) == 0:
                break
            if timeout and time.monotonic() - started > timeout:
                raise CommandError(
                    f"still {progress.unfinished(counts)} tracks to go after "
                    f"{timeout:.0f} s; run the build again to go on"
                )
            time.sleep(2)
        added = indexing.sync_index()
        if added:
            self.stdout.write(f"index: added {added} tracks it lacked")
