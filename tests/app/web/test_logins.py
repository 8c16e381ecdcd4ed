"""Brute force: lockouts per account and per address (django-axes), API throttling.

The limits are lowered here (3 failures per account, 5 per address) to keep the tests
short; the defaults are 5 and 20.
"""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, RequestFactory
from rest_framework.authtoken.models import Token
from rest_framework.throttling import UserRateThrottle

from genreweb.env import env_rate
from genreweb.logins import client_address
from tests.app.web.helpers import PASSWORD

pytestmark = pytest.mark.django_db
LOCKED = "Too many failed logins"


@pytest.fixture(autouse=True)
def limits(settings):
    settings.GENREWEB_LOGIN_FAILURES_PER_ACCOUNT = settings.AXES_FAILURE_LIMIT = 3
    settings.GENREWEB_LOGIN_FAILURES_PER_ADDRESS = 5
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast
    cache.clear()  # the API's throttling counts
    yield
    cache.clear()


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", password=PASSWORD)


def log_in(client: Client, username: str, password: str, path: str = "/accounts/login/"):
    return client.post(path, {"username": username, "password": password})


def logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def test_the_login_page_locks_an_account_out_even_for_the_right_password(alice):
    client = Client()
    for _ in range(2):
        assert log_in(client, "alice", "wrong").status_code == 200  # the form, with its error
    third = log_in(client, "alice", "wrong")
    assert third.status_code == 429 and LOCKED in third.content.decode()
    right = log_in(Client(), "alice", PASSWORD)
    assert right.status_code == 429 and LOCKED in right.content.decode()
    assert 0 < int(right["Retry-After"]) <= 15 * 60
    assert "registration/locked_out.html" in [t.name for t in right.templates]
    assert not logged_in(client)


def test_the_token_endpoint_locks_out_with_a_json_error(alice):
    client = Client()
    for _ in range(3):
        response = client.post("/api/token/", {"username": "alice", "password": "wrong"})
    assert response.status_code == 429 and LOCKED in response.json()["error"]
    right = client.post("/api/token/", {"username": "alice", "password": PASSWORD})
    assert right.status_code == 429 and LOCKED in right.json()["error"]
    assert right.json()["retry_after"] == int(right["Retry-After"])
    assert not Token.objects.filter(user=alice).exists()


def test_the_admin_login_is_covered(django_user_model):
    django_user_model.objects.create_superuser("boss", password=PASSWORD)
    client = Client()
    for _ in range(3):
        response = log_in(client, "boss", "wrong", "/admin/login/")
    assert response.status_code == 429
    right = log_in(client, "boss", PASSWORD, "/admin/login/")
    assert right.status_code == 429 and LOCKED in right.content.decode()


def test_an_address_is_limited_across_accounts(django_user_model):
    django_user_model.objects.create_user("bob", password=PASSWORD)
    client = Client()
    for n in range(5):  # one guess at each of five accounts: no account reaches its limit
        log_in(client, f"guess{n}", "wrong")
    refused = log_in(client, "bob", PASSWORD)
    assert refused.status_code == 429 and not logged_in(client)
    elsewhere = Client(REMOTE_ADDR="192.0.2.7")
    assert log_in(elsewhere, "bob", PASSWORD).status_code == 302 and logged_in(elsewhere)


def test_a_successful_login_forgets_that_accounts_failures(alice, django_user_model):
    client = Client()
    for _ in range(2):
        log_in(client, "alice", "wrong")
    assert log_in(client, "alice", PASSWORD).status_code == 302
    client.post("/accounts/logout/")
    for _ in range(2):
        log_in(client, "alice", "wrong")
    assert log_in(client, "alice", PASSWORD).status_code == 302  # 4 failures, 2 since


def test_logging_in_to_ones_own_account_keeps_the_count_on_another(alice, django_user_model):
    django_user_model.objects.create_user("mallory", password=PASSWORD)
    client = Client()
    for _ in range(2):
        log_in(client, "alice", "wrong")
    assert log_in(Client(), "mallory", PASSWORD).status_code == 302
    assert log_in(client, "alice", "wrong").status_code == 429  # the third failure counts


def test_the_token_endpoint_is_throttled_with_retry_after(alice):
    client = Client()
    for _ in range(10):
        response = client.post("/api/token/", {"username": "alice", "password": PASSWORD})
        assert response.status_code == 200
    throttled = client.post("/api/token/", {"username": "alice", "password": PASSWORD})
    assert throttled.status_code == 429 and int(throttled["Retry-After"]) > 0
    assert "throttled" in throttled.json()["detail"].lower()


def test_the_api_is_throttled_per_user(alice, monkeypatch):
    monkeypatch.setattr(UserRateThrottle, "rate", "3/minute", raising=False)
    token = Token.objects.create(user=alice)
    client = Client(HTTP_AUTHORIZATION=f"Token {token.key}")
    for _ in range(3):
        assert client.get("/api/tracks/").status_code == 200
    throttled = client.get("/api/tracks/")
    assert throttled.status_code == 429 and int(throttled["Retry-After"]) > 0


def test_a_forwarded_address_counts_only_behind_the_proxy(settings):
    request = RequestFactory().get(
        "/", REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="203.0.113.9, 198.51.100.4"
    )
    settings.BEHIND_PROXY = False
    assert client_address(request) == "10.0.0.5"  # a client cannot pick its own address
    settings.BEHIND_PROXY = True
    assert client_address(request) == "198.51.100.4"  # the entry the proxy added


def test_rates_are_read_strictly(monkeypatch):
    monkeypatch.setenv("GENREWEB_API_RATE_TOKEN", " 5/hour ")
    assert env_rate("GENREWEB_API_RATE_TOKEN", "10/minute") == "5/hour"
    for bad in ("5", "five/minute", "0/minute", "5/week"):
        monkeypatch.setenv("GENREWEB_API_RATE_TOKEN", bad)
        with pytest.raises(ImproperlyConfigured, match="GENREWEB_API_RATE_TOKEN"):
            env_rate("GENREWEB_API_RATE_TOKEN", "10/minute")
