"""The web app's services: plain functions the views, the API and the tasks call.

A service never talks to Celery: where work should be queued it returns what to queue,
and the caller hands that to a `tasks` module.
"""
