"""`manage.py classify PATH...`: the engine's `classify`, with the web app's configuration."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from classifier.engine import cli
from classifier.services.active_model import engine_config


class Command(BaseCommand):
    help = cli.COMMANDS["classify"][2]

    def add_arguments(self, parser: CommandParser) -> None:
        cli.add_classify_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            status = cli.classify(options, engine_config(), self.stdout, self.stderr)
        except cli.UsageError as exc:
            raise CommandError(str(exc)) from None
        if status:
            sys.exit(status)
