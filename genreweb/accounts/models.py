"""An invitation: a link that signs up one account, until it expires."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone


def new_token() -> str:
    return secrets.token_urlsafe(32)


def default_expiry() -> datetime:
    return timezone.now() + timedelta(days=settings.GENREWEB_INVITE_DAYS)


class Invitation(models.Model):
    token = models.CharField(max_length=64, unique=True, default=new_token, editable=False)
    email = models.EmailField(
        blank=True, help_text="Optional: whom it is for; the new account gets this e-mail address."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(default=default_expiry)
    used_at = models.DateTimeField(null=True, blank=True)
    used_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"invitation for {self.email or 'anyone'} ({self.state})"

    def get_absolute_url(self) -> str:
        return reverse("signup-invited", args=[self.token])

    @property
    def state(self) -> str:
        if self.used_at is not None:
            return "used"
        if self.expires_at <= timezone.now():
            return "expired"
        return "open"

    def claim(self) -> bool:
        """Use the invitation up; False where it was used or expired meanwhile."""
        now = timezone.now()
        claimed = Invitation.objects.filter(
            pk=self.pk, used_at__isnull=True, expires_at__gt=now
        ).update(used_at=now)
        if claimed:
            self.used_at = now
        return bool(claimed)
