"""Genreweb's Django project; the Celery app is loaded with it so shared tasks bind to it."""

from genreweb.celery import app as celery_app

__all__ = ["celery_app"]
