"""Typed errors of the engine, each with a message a person understands."""

from __future__ import annotations

import logging


class EngineError(Exception):
    """Base class: anything the engine refuses or cannot do, explained."""


class AudioError(EngineError):
    """The file could not be read as audio."""


class NotAudioError(AudioError):
    """The file is not an audio file (or has no audio stream)."""


class EmptyAudioError(AudioError):
    """The file holds no audio samples, or too few to analyse."""


class TruncatedAudioError(AudioError):
    """The file is damaged or cut short part way through."""


class UnsupportedAudioError(AudioError):
    """The file holds audio the decoder has no codec for (or describes it impossibly)."""


class TagError(EngineError):
    """The file's tags could not be read or written."""


class TagBoundsError(TagError):
    """The file's tags are too large or too many to parse safely; they are not read."""


class ModelError(EngineError):
    """The model's weights are missing, damaged or of the wrong shape."""


def unexpected_error(
    log: logging.Logger, name: str, exc: BaseException, verb: str = "analysed"
) -> str:
    """Log a failure nobody foresaw on one file (or sample) `name` with its traceback, and
    return the one-line error to report for it, so that a run over many files goes on."""
    log.error("%s could not be %s: unexpected %s", name, verb, type(exc).__name__, exc_info=exc)
    return f"{name} could not be {verb}: an internal error occurred ({type(exc).__name__}: {exc})"
