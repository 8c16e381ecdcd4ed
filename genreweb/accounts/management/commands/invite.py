"""`manage.py invite [--email E] [--days N] [--base-url URL]`: print a new invitation link."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from genreweb.accounts.models import Invitation


class Command(BaseCommand):
    help = "Make an invitation link that signs up one account, and print it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--email", default="", help="whom it is for (the account's e-mail)")
        parser.add_argument(
            "--days",
            type=int,
            default=settings.GENREWEB_INVITE_DAYS,
            help="days until the link expires (default GENREWEB_INVITE_DAYS, %(default)s)",
        )
        parser.add_argument(
            "--base-url",
            default="",
            help="the site's address (default: the first CSRF_TRUSTED_ORIGINS "
            "entry, else http://127.0.0.1:8000)",
        )

    def handle(
        self, *args: object, email: str, days: int, base_url: str, **options: object
    ) -> None:
        invitation = Invitation.objects.create(
            email=email, expires_at=timezone.now() + timedelta(days=max(days, 1))
        )
        base = base_url or next(iter(settings.CSRF_TRUSTED_ORIGINS), "http://127.0.0.1:8000")
        self.stdout.write(base.rstrip("/") + invitation.get_absolute_url())
        if settings.GENREWEB_SIGNUP == "closed":
            self.stderr.write(
                "GENREWEB_SIGNUP is closed: the link works only once it is 'invite' (or 'open')."
            )
        else:
            self.stderr.write(
                f"It signs up one account until {invitation.expires_at:%Y-%m-%d %H:%M %Z}."
            )
