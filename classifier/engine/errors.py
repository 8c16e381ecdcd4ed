"""Typed errors of the engine, each with a message a person understands."""
from __future__ import annotations


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


class TagError(EngineError):
    """The file's tags could not be read or written."""


class ModelError(EngineError):
    """The model's weights are missing, damaged or of the wrong shape."""
