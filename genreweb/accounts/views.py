"""Sign-up (open, by invitation or closed: GENREWEB_SIGNUP) and the account page."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import UserCreationForm
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from rest_framework.authtoken.models import Token

from genreweb.accounts.models import Invitation

CLOSED = {
    "invite": "Sign-up on this site is by invitation only: ask its staff for an invitation link.",
    "closed": "Sign-up is closed on this site: no new accounts are made.",
}


def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("dashboard")
    if settings.GENREWEB_SIGNUP != "open":
        return _refused(request, CLOSED[settings.GENREWEB_SIGNUP], 403)
    return _signup(request, invitation=None)


def signup_invited(request: HttpRequest, token: str) -> HttpResponse:
    """The page an invitation link opens: signs up one account, then the link is used up."""
    if request.user.is_authenticated:
        return redirect("dashboard")
    if settings.GENREWEB_SIGNUP == "closed":
        return _refused(request, CLOSED["closed"], 403)
    invitation = Invitation.objects.filter(token=token).first()
    if invitation is None:
        return _refused(request, "This invitation link is not valid.", 404)
    if invitation.state != "open":
        return _refused(
            request,
            f"This invitation link was {invitation.state} "
            "(each signs up one account, until it expires).",
            410,
        )
    return _signup(request, invitation)


def _signup(request: HttpRequest, invitation: Invitation | None) -> HttpResponse:
    form = UserCreationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            if invitation is not None and not invitation.claim():
                return _refused(request, "This invitation link was used meanwhile.", 410)
            user = form.save(commit=False)
            if invitation is not None:
                user.email = invitation.email
            user.save()
            if invitation is not None:
                Invitation.objects.filter(pk=invitation.pk).update(used_by=user)
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, f"Welcome, {user.username}. Upload some music to begin.")
        return redirect("upload")
    return render(request, "registration/signup.html", {"form": form, "invitation": invitation})


def _refused(request: HttpRequest, message: str, status: int) -> HttpResponse:
    return render(request, "registration/signup_closed.html", {"message": message}, status=status)


@login_required
def profile(request: HttpRequest) -> HttpResponse:
    """The account page: shows the API token, makes or replaces it on POST."""
    if request.method == "POST":
        Token.objects.filter(user=request.user).delete()
        Token.objects.create(user=request.user)
        messages.success(request, "A new API token was made; the old one no longer works.")
        return redirect("profile")
    token = Token.objects.filter(user=request.user).first()
    return render(request, "registration/profile.html", {"token": token})
