"""Sign-up modes (GENREWEB_SIGNUP): open, by invitation, closed."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from genreweb.accounts.models import Invitation
from tests.app.web.helpers import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_hashes(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def sign_up(client: Client, path: str = "/accounts/signup/", username: str = "newcomer"):
    return client.post(path, {"username": username, "password1": PASSWORD, "password2": PASSWORD})


def signup_link_shown() -> bool:
    return 'href="/accounts/signup/"' in Client().get("/accounts/login/").content.decode()


def invite(*args: str) -> str:
    out = io.StringIO()
    call_command("invite", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue().strip()


def test_open_is_the_default_and_signs_anyone_up(settings):
    assert settings.GENREWEB_SIGNUP == "open"
    assert Client().get("/accounts/signup/").status_code == 200
    assert sign_up(Client()).status_code == 302
    assert get_user_model().objects.filter(username="newcomer").exists()
    assert signup_link_shown()


def test_closed_refuses_every_sign_up_and_hides_the_link(settings):
    settings.GENREWEB_SIGNUP = "closed"
    page = Client().get("/accounts/signup/")
    assert page.status_code == 403 and "Sign-up is closed" in page.content.decode()
    assert sign_up(Client()).status_code == 403
    link = invite("--base-url", "https://music.example.org")
    assert sign_up(Client(), link.removeprefix("https://music.example.org")).status_code == 403
    assert not get_user_model().objects.filter(username="newcomer").exists()
    assert not signup_link_shown()


def test_invite_mode_signs_up_one_account_per_link(settings):
    settings.GENREWEB_SIGNUP = "invite"
    page = Client().get("/accounts/signup/")
    assert page.status_code == 403 and "by invitation only" in page.content.decode()
    assert sign_up(Client()).status_code == 403
    assert not signup_link_shown()

    link = invite("--email", "new@example.org", "--base-url", "https://music.example.org/")
    assert link.startswith("https://music.example.org/accounts/signup/")
    path = link.removeprefix("https://music.example.org")
    assert Client().get(path).status_code == 200
    assert sign_up(Client(), path).status_code == 302
    user = get_user_model().objects.get(username="newcomer")
    assert user.email == "new@example.org"
    invitation = Invitation.objects.get()
    assert invitation.used_by == user and invitation.state == "used"

    again = sign_up(Client(), path, username="second")
    assert again.status_code == 410 and "used" in again.content.decode()
    assert not get_user_model().objects.filter(username="second").exists()


def test_an_expired_or_unknown_invitation_is_refused(settings):
    settings.GENREWEB_SIGNUP = "invite"
    old = Invitation.objects.create(expires_at=timezone.now() - timedelta(minutes=1))
    expired = Client().get(old.get_absolute_url())
    assert expired.status_code == 410 and "expired" in expired.content.decode()
    assert Client().get("/accounts/signup/not-a-token/").status_code == 404
    fresh = Invitation.objects.create()
    assert fresh.expires_at - timezone.now() > timedelta(days=6)  # GENREWEB_INVITE_DAYS=7


def test_staff_make_an_invitation_in_the_admin(settings, django_user_model):
    settings.GENREWEB_SIGNUP = "invite"
    staff = django_user_model.objects.create_superuser("boss", password=PASSWORD)
    client = Client()
    client.force_login(staff)
    expires = timezone.localtime() + timedelta(days=3)
    response = client.post(
        "/admin/accounts/invitation/add/",
        {
            "email": "",
            "expires_at_0": expires.strftime("%Y-%m-%d"),
            "expires_at_1": expires.strftime("%H:%M:%S"),
        },
        follow=True,
    )
    assert response.status_code == 200
    invitation = Invitation.objects.get()
    assert invitation.created_by == staff
    shown = " ".join(str(m) for m in response.context["messages"])
    assert f"http://testserver{invitation.get_absolute_url()}" in shown
    assert sign_up(Client(), invitation.get_absolute_url()).status_code == 302
