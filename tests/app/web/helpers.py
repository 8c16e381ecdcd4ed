"""Helpers of the hardening tests (tests/app/web): bodies built by hand, real audio."""

from __future__ import annotations

import uuid
from pathlib import Path

from tests.audiofiles import make_audio_file

PASSWORD = "a-long-test-password-9"


def audio_bytes(folder: Path, fmt: str = "mp3", seconds: float = 3.0, seed: int = 0) -> bytes:
    """A real audio file's bytes (a tone with a little noise), made with PyAV."""
    folder.mkdir(parents=True, exist_ok=True)
    return make_audio_file(
        folder, fmt, seconds=seconds, name=f"tone-{seed}", seed=seed
    ).read_bytes()


def multipart(
    filename: str, content: bytes, field: str = "file", **fields: str
) -> tuple[bytes, str]:
    """A multipart/form-data body whose file part carries exactly `filename`.

    Django's test client takes a file's basename and refuses names like "..", which are
    just what these tests send.
    """
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
        f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
        + content
        + b"\r\n"
    )
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"
