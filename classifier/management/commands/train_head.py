"""`manage.py train_head DIR`: the engine's `train-head`, with the web app's configuration."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from classifier.engine import cli
from classifier.services.active_model import engine_config


class Command(BaseCommand):
    help = cli.COMMANDS["train-head"][2]

    def add_arguments(self, parser: CommandParser) -> None:
        cli.add_train_head_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            cli.train_head(options, engine_config(), self.stdout, self.stderr)
        except cli.UsageError as exc:
            raise CommandError(str(exc)) from None
