"""Failed logins: a lockout per account and per address (django-axes), and the token view.

Every login — the login page, the admin's, `POST /api/token/` — authenticates through
`django.contrib.auth.authenticate` with the request, so axes counts each failure. An
account is locked after GENREWEB_LOGIN_FAILURES_PER_ACCOUNT failures from anywhere, an
address after GENREWEB_LOGIN_FAILURES_PER_ADDRESS failures on any accounts, both for
GENREWEB_LOGIN_LOCKOUT_MINUTES after the last failure. While locked even the right
password is refused; a successful login forgets that account's failures.
"""

from __future__ import annotations

import math
from typing import Any

from axes.attempts import get_cool_off_threshold
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Max, Q, Sum
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.settings import api_settings


def client_address(request: HttpRequest) -> str:
    """The client's address: the connection's, or behind the proxy the one it forwarded.

    The proxy appends the address it saw to X-Forwarded-For, so its last entry is the only
    one a client cannot forge (the same rule as REST framework's NUM_PROXIES = 1).
    """
    if settings.BEHIND_PROXY:
        last = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")[-1].strip()
        if last:
            return last
    return request.META.get("REMOTE_ADDR", "")


class LoginAttemptsHandler(AxesDatabaseHandler):
    """axes' database handler with separate limits for an account and for an address."""

    def get_failures(self, request: HttpRequest, credentials: dict | None = None) -> int:
        """The account's recent failures, or the account's limit where the address is over
        its own (axes compares this number with AXES_FAILURE_LIMIT, the account's limit)."""
        recent = AccessAttempt.objects.filter(attempt_time__gte=get_cool_off_threshold(request))
        by_account = _failures(recent.filter(username=get_client_username(request, credentials)))
        by_address = _failures(recent.filter(ip_address=request.axes_ip_address))
        if by_address >= settings.GENREWEB_LOGIN_FAILURES_PER_ADDRESS:
            return max(by_account, settings.GENREWEB_LOGIN_FAILURES_PER_ACCOUNT)
        return by_account

    def reset_user_attempts(self, request: HttpRequest, credentials: dict | None = None) -> int:
        """After a successful login: that account's failures only. (axes would also forget
        the address's, so a login to one's own account would wipe the count of guesses at
        someone else's.)"""
        username = get_client_username(request, credentials)
        count, _ = AccessAttempt.objects.filter(username=username).delete()
        return count


def _failures(attempts: Any) -> int:
    return attempts.aggregate(n=Sum("failures_since_start"))["n"] or 0


def lockout_response(
    request: HttpRequest,
    original_response: HttpResponse | None = None,
    credentials: dict | None = None,
) -> HttpResponse:
    """429 with Retry-After: a page for a person, JSON for the API."""
    wait = _seconds_left(request, credentials)
    minutes = max(1, math.ceil(wait / 60))
    message = (
        f"Too many failed logins for this account or from your address. Logging in is "
        f"refused for {minutes} more minute{'s' if minutes != 1 else ''}, even with the "
        "right password; try again then."
    )
    if request.path_info.startswith("/api/"):
        response: HttpResponse = JsonResponse({"error": message, "retry_after": wait}, status=429)
    else:
        response = render(request, "registration/locked_out.html", {"message": message}, status=429)
    response["Retry-After"] = str(wait)
    return response


def _seconds_left(request: HttpRequest, credentials: dict | None) -> int:
    """Until the lockout ends: the cool-off after the latest failure that counts."""
    cool_off = settings.AXES_COOLOFF_TIME
    latest = AccessAttempt.objects.filter(
        Q(username=get_client_username(request, credentials))
        | Q(ip_address=getattr(request, "axes_ip_address", None))
    ).aggregate(latest=Max("attempt_time"))["latest"]
    if latest is None:
        return int(cool_off.total_seconds())
    return max(1, math.ceil((latest + cool_off - timezone.now()).total_seconds()))


class ObtainToken(ObtainAuthToken):
    """`POST /api/token/` with username and password: the user's API token.

    Throttled (the strict `token` scope) and watched by axes like any login: the
    credentials are checked through `authenticate` with the Django request, whose lockout
    flag the axes middleware turns into the JSON 429.
    """

    throttle_classes = api_settings.DEFAULT_THROTTLE_CLASSES
    throttle_scope = "token"

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "request": self.request._request}
