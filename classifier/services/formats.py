"""What an accepted upload is stored and served as: an extension and an audio MIME type
that follow what FFmpeg found in the file, never the name it was uploaded under.

An MP3 uploaded as `song.html` is stored as `song.mp3` and downloaded as `audio/mpeg`.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from classifier.engine.audio import AudioInfo

# FFmpeg's demuxer name -> (extension, MIME type). Ogg and Matroska depend on the codec.
_BY_CONTAINER = {
    "mp3": (".mp3", "audio/mpeg"),
    "flac": (".flac", "audio/flac"),
    "wav": (".wav", "audio/wav"),
    "aiff": (".aiff", "audio/aiff"),
    "mov,mp4,m4a,3gp,3g2,mj2": (".m4a", "audio/mp4"),
    "aac": (".aac", "audio/aac"),
    "asf": (".wma", "audio/x-ms-wma"),
    "ape": (".ape", "audio/x-ape"),
    "wv": (".wv", "audio/x-wavpack"),
    "ac3": (".ac3", "audio/ac3"),
    "amr": (".amr", "audio/amr"),
    "caf": (".caf", "audio/x-caf"),
    "au": (".au", "audio/basic"),
}
_OGG = {"opus": (".opus", "audio/ogg"), "flac": (".oga", "audio/ogg")}
_WEBM_CODECS = {"opus", "vorbis"}
# Audio that FFmpeg reads but that has no entry above: served as bytes, never as a page.
UNKNOWN = (".bin", "application/octet-stream")

_MIME_BY_EXTENSION = dict(
    [
        *_BY_CONTAINER.values(),
        *_OGG.values(),
        (".ogg", "audio/ogg"),
        (".webm", "audio/webm"),
        (".mka", "audio/x-matroska"),
        (".mp2", "audio/mpeg"),
    ]
)


def audio_type(info: AudioInfo) -> tuple[str, str]:
    """(extension, MIME type) of audio FFmpeg probed as `info`."""
    if info.container == "ogg":
        return _OGG.get(info.codec, (".ogg", "audio/ogg"))
    if info.container == "matroska,webm":
        return (
            (".webm", "audio/webm") if info.codec in _WEBM_CODECS else (".mka", "audio/x-matroska")
        )
    if info.container == "mp3" and info.codec == "mp2":
        return ".mp2", "audio/mpeg"
    return _BY_CONTAINER.get(info.container, UNKNOWN)


def content_type(stored_name: str) -> str:
    """The MIME type a stored file is served with, from the extension it was stored under
    (anything else, such as a file stored before this rule, goes out as plain bytes)."""
    return _MIME_BY_EXTENSION.get(PurePosixPath(stored_name).suffix.lower(), UNKNOWN[1])
