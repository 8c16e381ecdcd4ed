from django.conf import settings
from django.http import HttpRequest


def signup(request: HttpRequest) -> dict[str, object]:
    """Whether pages may offer the sign-up link (GENREWEB_SIGNUP=open)."""
    return {"signup_open": settings.GENREWEB_SIGNUP == "open"}
