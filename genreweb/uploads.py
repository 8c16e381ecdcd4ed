"""Request bodies: how much a client may send, refused before anything spools it to disk.

A client that is not logged in may send `GENREWEB_ANONYMOUS_MAX_KB` (a login form is far
smaller); a logged-in one (session, or a valid `Authorization: Token ...`) an upload of
`GENREWEB_MAX_UPLOAD_MB` plus the multipart framing around it. Three guards:

- `RequestBodyLimitMiddleware` answers 413 from the Content-Length, before the CSRF check
  or a view reads the body, and 411 to a chunked body (Django never reads one);
- `BodyCapUploadHandler`, first in FILE_UPLOAD_HANDLERS, stops a file the moment it passes
  the limit, so what reaches the temporary file is never more than that;
- `SafeNameMultiPartParser` keeps a file sent under a name Django would drop (".", "..")
  and shortens names the filesystem cannot hold.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import PurePosixPath
from typing import Any

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParser as DjangoMultiPartParser
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import render
from django.utils.datastructures import ImmutableList
from rest_framework import parsers
from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import APIException, ParseError

# Multipart boundaries, part headers and the small form fields around the file itself.
MULTIPART_SLACK = 64 * 1024
# The name a file sent under an unusable one (".", "..", only separators) is kept under.
UNNAMED = "unnamed"
# Longest upload name kept, in UTF-8 bytes (a file name on disk may hold 255), and the
# longest part after its last dot still taken for an extension.
MAX_NAME_BYTES = 200
MAX_EXTENSION_CHARS = 16


def upload_file_limit() -> int:
    """The largest file a logged-in client may upload, in bytes."""
    return settings.GENREWEB_MAX_UPLOAD_MB * 1024 * 1024


def anonymous_limit() -> int:
    return settings.GENREWEB_ANONYMOUS_MAX_KB * 1024


def may_upload(request: HttpRequest) -> bool:
    """Whether the client is logged in: by session, or by a valid API token.

    The API authenticates inside its views, after the body could have been read, so the
    token is checked here too (and the answer kept on the request).
    """
    known = getattr(request, "_genreweb_may_upload", None)
    if known is None:
        user = getattr(request, "user", None)
        known = bool(user is not None and user.is_authenticated) or _has_valid_token(request)
        request._genreweb_may_upload = known
    return known


def _has_valid_token(request: HttpRequest) -> bool:
    try:
        return TokenAuthentication().authenticate(request) is not None
    except APIException:  # a malformed header, an unknown or inactive token
        return False


def body_limit(request: HttpRequest) -> int:
    """The largest request body this client may send, in bytes."""
    return upload_file_limit() + MULTIPART_SLACK if may_upload(request) else anonymous_limit()


def file_limit(request: HttpRequest) -> int:
    """The largest single uploaded file this client may send, in bytes."""
    return upload_file_limit() if may_upload(request) else anonymous_limit()


def too_large_message(request: HttpRequest, size: int | None, what: str = "This request") -> str:
    """Why a body is refused; `size` None where it was stopped part way."""
    if may_upload(request):
        limit = f"{settings.GENREWEB_MAX_UPLOAD_MB} MB per file"
        if size is None:
            return f"{what} is over the limit of {limit}."
        return f"{what} is {_readable(size)}; the limit is {limit}."
    limit = f"{settings.GENREWEB_ANONYMOUS_MAX_KB} KB"
    if size is None:
        return (
            f"{what} is over the {limit} a request may send without logging in. "
            "Log in to upload music."
        )
    return (
        f"{what} is {_readable(size)}; without logging in a request may send at most "
        f"{limit}. Log in to upload music."
    )


def _readable(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / 1024 / 1024:.0f} MB"
    return f"{size / 1024:.0f} KB"


def refusal(request: HttpRequest, status: int, message: str) -> HttpResponse:
    """A readable refusal: JSON for the API and scripts, a page for a browser."""
    if request.path_info.startswith("/api/") or "application/json" in request.headers.get(
        "Accept", ""
    ):
        response: HttpResponse = JsonResponse({"error": message}, status=status)
    else:
        response = render(request, "refused.html", {"message": message}, status=status)
    # (No "Connection: close": WSGI leaves hop-by-hop headers to the server, and gunicorn
    # drains an unread body for at most a few seconds before it drops the connection.)
    return response


class RequestBodyLimitMiddleware:
    """Answers a body over the client's limit 413 (411 when chunked) without reading it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        answer = self.check(request)
        if answer is not None:
            return answer
        # Django's parse of multipart bodies, with names it would drop kept (see below).
        request.parse_file_upload = partial(_parse_file_upload, request)
        response = self.get_response(request)
        refused = getattr(request, "_genreweb_body_refused", None)
        if refused is not None:  # the upload handler stopped a body part way
            return refusal(request, 413, refused)
        return response

    def check(self, request: HttpRequest) -> HttpResponse | None:
        raw = request.META.get("CONTENT_LENGTH") or ""
        if not raw.strip():
            if "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
                return refusal(
                    request,
                    411,
                    "Send the request with a Content-Length header: "
                    "this server does not take chunked bodies.",
                )
            return None
        try:
            length = int(raw)
        except ValueError:
            return refusal(request, 400, "The Content-Length header is not a number.")
        # Checked cheaply first: most bodies are far under even the anonymous limit.
        if length > anonymous_limit() and length > body_limit(request):
            return refusal(request, 413, too_large_message(request, length))
        return None


class BodyTooLarge(MultiPartParserError):
    """Raised by the upload handler: the view never sees a body that was cut short."""


class BodyCapUploadHandler(FileUploadHandler):
    """Stops an upload as soon as a file, or all files together, pass the client's limit.

    First in FILE_UPLOAD_HANDLERS: each chunk reaches the temporary file only once it is
    known to fit, so no more than the limit is ever written. The request is marked, and
    the middleware answers 413.
    """

    def __init__(self, request: HttpRequest) -> None:  # Django always hands the request
        super().__init__(request)
        self.total_limit = body_limit(request)
        self.per_file_limit = file_limit(request)
        self.total = self.file_size = 0

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        self.file_size = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.file_size += len(raw_data)
        self.total += len(raw_data)
        if self.file_size > self.per_file_limit or self.total > self.total_limit:
            name = PurePosixPath(self.file_name or "").name or "This upload"
            self.request._genreweb_body_refused = too_large_message(self.request, None, what=name)
            self._discard_partial_files()
            raise BodyTooLarge(f"an uploaded file passed the limit of {self.per_file_limit} bytes")
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None  # the next handler (the temporary file) makes the uploaded file

    def _discard_partial_files(self) -> None:
        for handler in self.request.upload_handlers:
            partial_file = getattr(handler, "file", None)
            if handler is not self and partial_file is not None:
                partial_file.close()  # a temporary upload file deletes itself on close


# ---------------------------------------------------------------- names of uploaded files


class SafeNameMultiPartParser(DjangoMultiPartParser):
    """Django's multipart parser, keeping files it would drop and shortening long names.

    Django drops a file part named ".", ".." or "/" without a word, so the view would say
    no file was sent; here it arrives as UNNAMED. A name longer than the filesystem takes
    (the temporary file's name ends like the upload's) is shortened, its extension kept.
    """

    def sanitize_file_name(self, file_name: str) -> str | None:
        clean = super().sanitize_file_name(file_name)
        if clean is None:
            return UNNAMED if file_name.strip() else None
        return shorten_name(clean)


def shorten_name(name: str, limit: int = MAX_NAME_BYTES) -> str:
    """`name` cut to `limit` UTF-8 bytes, keeping a short extension."""
    if len(name.encode("utf-8")) <= limit:
        return name
    path = PurePosixPath(name)
    suffix = path.suffix if len(path.suffix) <= MAX_EXTENSION_CHARS else ""
    stem = name[: len(name) - len(suffix)] if suffix else name
    room = limit - len(suffix.encode("utf-8"))
    stem = stem.encode("utf-8")[:room].decode("utf-8", errors="ignore")
    return (stem or UNNAMED) + suffix


def _parse_file_upload(request: HttpRequest, META: dict, post_data: Any) -> tuple:  # noqa: N803 - Django's name
    """HttpRequest.parse_file_upload, with SafeNameMultiPartParser."""
    request.upload_handlers = ImmutableList(
        request.upload_handlers,
        warning="You cannot alter upload handlers after the upload has been processed.",
    )
    return SafeNameMultiPartParser(
        META, post_data, request.upload_handlers, request.encoding
    ).parse()


class MultiPartParser(parsers.MultiPartParser):
    """REST framework's multipart parser, on SafeNameMultiPartParser."""

    def parse(
        self, stream: Any, media_type: str | None = None, parser_context: dict | None = None
    ) -> parsers.DataAndFiles:
        parser_context = parser_context or {}
        request = parser_context["request"]
        encoding = parsers.get_encoding(parser_context)
        meta = request.META.copy()
        meta["CONTENT_TYPE"] = media_type
        try:
            data, files = SafeNameMultiPartParser(
                meta, stream, request.upload_handlers, encoding
            ).parse()
        except MultiPartParserError as exc:
            raise ParseError(f"Multipart form parse error - {exc}") from exc
        return parsers.DataAndFiles(data, files)
