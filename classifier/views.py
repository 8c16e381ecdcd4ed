"""The library's pages: dashboard, upload, track page, downloads and bulk actions.

Every view looks tracks up through `owned()`, so another user's track answers 404.
"""

from __future__ import annotations

import tempfile
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from classifier import charts
from classifier.curation.services.versions import active_model_string, reanalyse_older_tracks
from classifier.forms import BulkForm, LibraryFilterForm, RetagForm, ReviewForm, UploadForm
from classifier.models import OutsideFolder, TagPolicy, Track
from classifier.services import actions, downloads, evidence, folders, review, taxonomy
from classifier.services import intake as intake_service
from classifier.services.library import filter_tracks, summarise
from classifier.tasks import queue_analyses, queue_refusing, queue_scans


def owned(request: HttpRequest, pk: int) -> Track:
    """The user's track `pk`, or 404 (also for someone else's track)."""
    return get_object_or_404(Track, pk=pk, owner=request.user)


def owned_many(request: HttpRequest, ids: list[int]) -> QuerySet[Track]:
    """The user's tracks with these ids, or 404 where any of them is not theirs."""
    tracks = Track.objects.filter(owner=request.user, pk__in=set(ids))
    if tracks.count() != len(set(ids)):
        raise Http404("No such track.")
    return tracks


def wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


# ---------------------------------------------------------------- pages


@login_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    mine = Track.objects.filter(owner=request.user)
    form = LibraryFilterForm(request.GET or None)
    filters = form.filters() if request.GET else {"sort": "added"}
    # One grouped query counts the library for the header, the chart and (unless a search,
    # a genre, a review queue or one folder narrows it) the pages; the page is one more.
    summary = summarise(mine)
    listed = filter_tracks(mine, **filters)
    size = settings.GENREWEB_PAGE_SIZE
    # A search is matched against every row's words (no index holds them): its pages are
    # read without counting every match as well.
    paginator = (
        SearchPaginator(listed, size)
        if filters.get("q")
        else CountedPaginator(listed, size, summary.matching(filters))
    )
    page = paginator.get_page(request.GET.get("page"))
    distribution = summary.distribution
    return render(
        request,
        "classifier/dashboard.html",
        {
            "form": form,
            "filters": filters,
            "page": page,
            "tracks": page.object_list,
            "distribution": distribution,
            "chart_max": max((c.count for c in distribution), default=1),
            "total": summary.total,
            "policies": TagPolicy.choices,
            "busy": summary.busy,
            "outdated": summary.outdated(active_model_string()),
        },
    )


class CountedPaginator(Paginator):
    """A paginator told how many objects there are, where that is known (no COUNT query)."""

    counted = True

    def __init__(self, object_list: Any, per_page: int, count: int | None = None) -> None:
        super().__init__(object_list, per_page)
        if count is not None:
            self.__dict__["count"] = count  # what the cached property would have stored


class SearchPaginator(Paginator):
    """Pages that never count the matches: each reads one row more than it shows, to know
    whether another page follows."""

    counted = False

    def get_page(self, number: Any) -> Page:
        try:
            wanted = max(1, int(number))
        except (TypeError, ValueError):
            wanted = 1
        start = (wanted - 1) * self.per_page
        rows = list(self.object_list[start : start + self.per_page + 1])
        if not rows and wanted > 1:  # past the end: the first page, as Paginator does
            return self.get_page(1)
        return SearchPage(rows[: self.per_page], wanted, self, more=len(rows) > self.per_page)


class SearchPage(Page):
    def __init__(self, rows: list[Track], number: int, paginator: Paginator, more: bool) -> None:
        super().__init__(rows, number, paginator)
        self.more = more

    def has_next(self) -> bool:
        return self.more

    def has_previous(self) -> bool:
        return self.number > 1

    def next_page_number(self) -> int:
        return self.number + 1

    def previous_page_number(self) -> int:
        return self.number - 1


@login_required
@require_POST
def reanalyse_outdated(request: HttpRequest) -> HttpResponse:
    """Queue the user's tracks whose verdict an older model version made."""
    queued = reanalyse_older_tracks(request.user)
    queue_analyses(queued)
    messages.success(
        request, f"{len(queued)} track(s) made by an older model queued for a new analysis."
    )
    return HttpResponseRedirect(reverse("dashboard"))


@login_required
def upload(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return render(
            request,
            "classifier/upload.html",
            {"form": UploadForm(), "max_mb": settings.GENREWEB_MAX_UPLOAD_MB},
        )
    try:
        intake_service.check_request_size(request.META.get("CONTENT_LENGTH"))
        form = UploadForm(request.POST, request.FILES)
        if not form.is_valid():
            raise intake_service.UploadRefused(_first_error(form))
        intake = intake_service.accept_upload(
            request.user, form.cleaned_data["file"], form.cleaned_data["tag_policy"]
        )
        queue_analyses(intake.to_analyse)
    except intake_service.UploadRefused as exc:
        if wants_json(request):
            return JsonResponse({"error": str(exc)}, status=exc.status)
        messages.error(request, str(exc))
        return redirect("upload")
    if wants_json(request):
        return JsonResponse(
            {**status_payload(intake.track), "duplicate": not intake.created},
            status=201 if intake.created else 200,
        )
    if intake.created:
        messages.success(request, f"{intake.track.original_name} is queued for analysis.")
    else:
        messages.info(request, f"{intake.track.original_name} is already in your library.")
    return redirect("dashboard")


def _first_error(form: UploadForm) -> str:
    if "file" in form.errors:
        return "Choose an audio file to upload."
    return "; ".join(str(e) for errors in form.errors.values() for e in errors)


@login_required
@require_GET
def track_detail(request: HttpRequest, pk: int) -> HttpResponse:
    track = owned(request, pk)
    return render(
        request,
        "classifier/track_detail.html",
        {
            "track": track,
            "retag_form": RetagForm(initial={"tag_policy": track.tag_policy}),
            "evidence_svg": charts.evidence_svg(track),
            "file_tag": track.evidence_of("file_tag"),
            "album_evidence": track.evidence_of("album"),
            "artist_evidence": track.evidence_of("artist"),
            "tag_writes": track.tag_writes.select_related("batch").order_by("-pk")[:10],
        },
    )


@login_required
@require_GET
def track_status(request: HttpRequest, pk: int) -> JsonResponse:
    return JsonResponse(status_payload(owned(request, pk)))


def status_payload(track: Track) -> dict[str, Any]:
    """What the upload page polls for: where the analysis is, and its verdict once done."""
    names = taxonomy.current()
    return {
        "id": track.pk,
        "name": track.original_name,
        "title": track.display_title,
        "status": track.status,
        "stage": track.stage,
        "progress": track.progress,
        "error": track.error,
        "primary_genre": track.primary_genre,
        "uncertain": track.uncertain,
        "genres": [{**g, "label": names.label(g["name"])} for g in track.genres],
        "genres_after": track.genres_after,
        "url": reverse("track-detail", args=[track.pk]),
        "status_url": reverse("track-status", args=[track.pk]),
    }


# ---------------------------------------------------------------- files and pictures


@login_required
@require_GET
def track_download(request: HttpRequest, pk: int) -> FileResponse:
    try:
        return downloads.file_response(owned(request, pk))
    except (OSError, OutsideFolder) as exc:  # a folder file gone, or no longer inside it
        raise Http404("The file is not there any more.") from exc


@login_required
@require_GET
def library_folders(request: HttpRequest) -> HttpResponse:
    """The user's library folders (staff: everyone's) with their scans' live counts."""
    shown = list(folders.visible_to(request.user))
    counts = folders.live_counts(shown)
    rows = [(folder, counts[folder.pk]) for folder in shown]
    return render(request, "classifier/folders.html", {"rows": rows})


@login_required
@require_GET
def folder_status(request: HttpRequest, pk: int) -> JsonResponse:
    """What the folders page polls while a scan or its analyses run."""
    folder = get_object_or_404(folders.visible_to(request.user), pk=pk)
    live = folders.live_counts([folder])[folder.pk]
    return JsonResponse(
        {
            "scan_status": folder.scan_status,
            "scan_label": folder.get_scan_status_display(),
            "found": folder.scan_counts.get("found", 0),
            "busy": folder.is_scanning or live["queued"] > 0,
            **live,
        }
    )


@login_required
@require_POST
def folder_scan(request: HttpRequest, pk: int) -> HttpResponse:
    """Scan now: another user's folder answers 404 (staff may scan any)."""
    folder = get_object_or_404(folders.visible_to(request.user), pk=pk)
    queued = folders.request_scan(folder.pk)
    queue_scans(queued)
    if queued:
        messages.success(request, f"A scan of {folder.path} is queued.")
    else:
        messages.info(request, f"{folder.path} is being scanned right now.")
    return redirect("library-folders")


@login_required
@require_GET
def track_spectrogram(request: HttpRequest, pk: int) -> HttpResponse:
    track = owned(request, pk)
    try:
        return _png(charts.spectrogram_png(track))
    except charts.PictureUnavailable as exc:
        response = HttpResponse(charts.placeholder_png(str(exc)), content_type="image/png")
        response["Cache-Control"] = "private, no-store"  # the picture comes once it can
        return response


@login_required
@require_GET
def track_timeline(request: HttpRequest, pk: int) -> FileResponse:
    return _png(charts.timeline_png(owned(request, pk)))


def _png(path: Any) -> FileResponse:
    response = FileResponse(open(path, "rb"), content_type="image/png")  # noqa: SIM115
    response["Cache-Control"] = "private, max-age=3600"
    return response


# ---------------------------------------------------------------- changes


@login_required
@require_POST
def track_reanalyse(request: HttpRequest, pk: int) -> HttpResponse:
    track = owned(request, pk)
    queued = actions.reanalyse(Track.objects.filter(pk=track.pk))
    queue_analyses(queued)
    if queued:
        messages.success(request, f"{track.display_title} is queued for a new analysis.")
    else:
        messages.info(request, f"{track.display_title} is being analysed right now.")
    return redirect("track-detail", pk=track.pk)


@login_required
@require_POST
def track_retag(request: HttpRequest, pk: int) -> HttpResponse:
    track = owned(request, pk)
    form = RetagForm(request.POST)
    if form.is_valid():
        result = actions.retag(Track.objects.filter(pk=track.pk), form.cleaned_data["tag_policy"])
        _report_retag(request, result)
    else:
        messages.error(request, "Choose how to write the tags.")
    return redirect("track-detail", pk=track.pk)


@login_required
@require_POST
def track_delete(request: HttpRequest, pk: int) -> HttpResponse:
    track = owned(request, pk)
    name = track.display_title
    _delete(Track.objects.filter(pk=track.pk))
    messages.success(request, f"{name} was deleted.")
    return redirect("dashboard")


@login_required
@require_POST
def track_review(request: HttpRequest, pk: int) -> HttpResponse:
    """The owner's answer where the audio and the file's tag disagree (or it is uncertain)."""
    track = owned(request, pk)
    form = ReviewForm(request.POST)
    if form.is_valid():
        _report_review(
            request, review.review(Track.objects.filter(pk=track.pk), form.cleaned_data["choice"])
        )
    else:
        messages.error(request, "Choose Genreweb's genre or the file's.")
    return redirect("track-detail", pk=track.pk)


def _report_review(request: HttpRequest, result: review.ReviewResult) -> None:
    text = f"{result.reviewed} track(s) reviewed"
    if result.samples:
        text += f"; {result.samples} offered to the dataset's curators as labelled samples"
    messages.success(request, text + ".")
    for error in result.errors:
        messages.error(request, error)


@login_required
@require_POST
def bulk(request: HttpRequest) -> HttpResponse:
    form = BulkForm(request.POST)
    back = request.POST.get("next") or reverse("dashboard")
    if not back.startswith("/") or back.startswith("//"):
        back = reverse("dashboard")
    if not form.is_valid():
        messages.error(request, " ".join(e for errs in form.errors.values() for e in errs))
        return HttpResponseRedirect(back)
    tracks = owned_many(request, form.cleaned_data["tracks"])
    action = form.cleaned_data["action"]
    if action == "download":
        return zip_response(tracks)
    if action == "reanalyse":
        queued = actions.reanalyse(tracks)
        queue_analyses(queued)
        messages.success(request, f"{len(queued)} track(s) queued for a new analysis.")
    elif action == "write_tags":  # previewed first, written from there (and undoable)
        chosen = [("tracks", pk) for pk in sorted(tracks.values_list("pk", flat=True))]
        query = urlencode([*chosen, ("policy", form.cleaned_data["tag_policy"])])
        return HttpResponseRedirect(f"{reverse('tag-preview')}?{query}")
    elif action == "delete":
        messages.success(request, f"{_delete(tracks)} track(s) deleted.")
    elif action in ("review_accept", "review_keep"):
        _report_review(request, review.review(tracks, action.removeprefix("review_")))
    return HttpResponseRedirect(back)


def _delete(tracks: QuerySet[Track]) -> int:
    """Delete the tracks; their albums' and artists' other tracks are fused again without them."""
    mates = evidence.mates_of(tracks)
    deleted = actions.delete_tracks(tracks)
    queue_refusing(mates)
    return deleted


def zip_response(tracks: QuerySet[Track]) -> FileResponse:
    # An anonymous temporary file: gone once the response is sent and closed.
    handle = tempfile.TemporaryFile()  # noqa: SIM115
    downloads.write_zip(tracks.order_by("id"), handle)
    handle.seek(0)
    return FileResponse(
        handle, as_attachment=True, filename="genreweb-tracks.zip", content_type="application/zip"
    )


def _report_retag(request: HttpRequest, result: actions.RetagResult) -> None:
    parts = [f"{result.written} file(s) tagged"]
    if result.unchanged:
        parts.append(f"{result.unchanged} already had these genres")
    if result.skipped:
        parts.append(f"{result.skipped} skipped (not analysed, or uncertain)")
    messages.success(request, "; ".join(parts) + ".")
    for error in result.errors or []:
        messages.error(request, error)
