"""The recommender's services: building the catalog step by step, and "songs like this".

A service never talks to Celery: where work should be queued it returns what to queue (or,
while harvesting, hands each committed page's new tracks to the caller), and the caller
passes that to `recommender.tasks`.
"""
