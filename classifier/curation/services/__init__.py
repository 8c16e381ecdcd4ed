"""The curation app's work, as plain functions the admin, the command and the tasks call."""


class CurationError(Exception):
    """Something staff asked for cannot be done; the message says why."""
