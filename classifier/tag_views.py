"""Tag changes: preview a selection's genre changes, apply them, follow the batch, undo.

Every lookup is by the signed-in user's own tracks, batches and writes: another user's
answers 404.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import formats, timezone
from django.views.decorators.http import require_GET, require_POST

from classifier.forms import LibraryFilterForm, TagPreviewForm, UndoSinceForm
from classifier.models import LibraryFolder, TagBatch, TagBatchKind, TagWrite, Track
from classifier.services import tagchanges
from classifier.services.library import SHOW_MISSING, UNCERTAIN, filter_tracks
from classifier.tasks import queue_tag_batches

WRITES_PER_PAGE = 100


def _selection(request: HttpRequest, params: QueryDict) -> tuple[QuerySet[Track], str, str]:
    """The tracks the parameters choose (a ticked selection, else the library's filters;
    none analysed after `previewed_at`), the policy, and the choice in words."""
    form = TagPreviewForm(params)
    form.is_valid()
    data = getattr(form, "cleaned_data", {})
    policy = data.get("policy") or "fill"
    mine = Track.objects.filter(owner=request.user)
    if data.get("previewed_at"):
        mine = mine.exclude(analysed_at__gt=data["previewed_at"])
    ids = data.get("tracks") or []
    if ids:
        return mine.filter(pk__in=ids), policy, f"{len(ids)} selected track(s)"
    filters = LibraryFilterForm(params).filters()
    return filter_tracks(mine, **filters), policy, _described(request, filters)


def _described(request: HttpRequest, filters: dict[str, str]) -> str:
    words = []
    if filters["genre"] == UNCERTAIN:
        words.append("uncertain tracks")
    elif filters["genre"]:
        words.append(f"genre {filters['genre']}")
    if filters["folder"]:
        folder = LibraryFolder.objects.filter(pk=filters["folder"], owner=request.user).first()
        words.append(f"folder {folder.path if folder else '?'}")
    if filters["source"]:
        words.append(f"{filters['source']}s only")
    if filters["status"]:
        words.append(f"status {filters['status']}")
    if filters["q"]:
        words.append(f"matching “{filters['q']}”")
    if filters["missing"] == SHOW_MISSING:
        words.append("missing files included")
    return ", ".join(words) or "the whole library"


@login_required
@require_GET
def preview(request: HttpRequest) -> HttpResponse:
    tracks, policy, described = _selection(request, request.GET)
    plan = tagchanges.preview(tracks, policy)
    return render(
        request,
        "classifier/tag_preview.html",
        {
            "plan": plan,
            "described": described,
            "form": TagPreviewForm(initial={"policy": policy}),
            "params": [
                (k, v) for k, values in request.GET.lists() for v in values if k != "policy"
            ],
            "previewed_at": timezone.now().isoformat(),
        },
    )


@login_required
@require_POST
def apply(request: HttpRequest) -> HttpResponse:
    tracks, policy, described = _selection(request, request.POST)
    queued = tagchanges.start_apply(request.user, tracks, policy, f"{described}, {policy}")
    if not queued:
        messages.info(request, "Nothing to write: every file already holds these genres.")
        return redirect("tag-changes")
    queue_tag_batches(queued)
    messages.success(request, "The genre changes are being written.")
    return redirect("tag-batch", pk=queued[0])


@login_required
@require_GET
def changes(request: HttpRequest) -> HttpResponse:
    batches = TagBatch.objects.filter(owner=request.user)[:50]
    return render(
        request, "classifier/tag_changes.html", {"batches": batches, "since_form": UndoSinceForm()}
    )


@login_required
@require_GET
def batch_detail(request: HttpRequest, pk: int) -> HttpResponse:
    batch = get_object_or_404(TagBatch, pk=pk, owner=request.user)
    writes = batch.writes if batch.kind == TagBatchKind.APPLY else batch.undoes
    page = Paginator(writes.select_related("track").order_by("pk"), WRITES_PER_PAGE).get_page(
        request.GET.get("page")
    )
    return render(
        request,
        "classifier/tag_batch.html",
        {"batch": batch, "counts": tagchanges.batch_counts(batch), "page": page},
    )


@login_required
@require_GET
def batch_progress(request: HttpRequest, pk: int) -> JsonResponse:
    batch = get_object_or_404(TagBatch, pk=pk, owner=request.user)
    return JsonResponse(_progress(batch))


def _progress(batch: TagBatch) -> dict[str, Any]:
    return {
        "state": batch.state,
        "processed": batch.processed,
        "total": batch.total,
        "finished": batch.is_finished,
        "counts": tagchanges.batch_counts(batch),
        "error": batch.error,
    }


@login_required
@require_POST
def undo_write(request: HttpRequest, pk: int) -> HttpResponse:
    write = get_object_or_404(TagWrite, pk=pk, batch__owner=request.user)
    writes = TagWrite.objects.filter(pk=write.pk)
    return _undo(request, writes, f"{write.track.display_title} (batch #{write.batch_id})")


@login_required
@require_POST
def undo_batch(request: HttpRequest, pk: int) -> HttpResponse:
    batch = get_object_or_404(TagBatch, pk=pk, owner=request.user, kind=TagBatchKind.APPLY)
    return _undo(request, batch.writes.all(), f"batch #{batch.pk}: {batch.description}")


@login_required
@require_POST
def undo_since(request: HttpRequest) -> HttpResponse:
    form = UndoSinceForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(e for errs in form.errors.values() for e in errs))
        return redirect("tag-changes")
    since = form.cleaned_data["since"]
    writes = tagchanges.writes_since(request.user, since)
    return _undo(
        request, writes, f"every change since {formats.date_format(since, 'DATETIME_FORMAT')}"
    )


def _undo(request: HttpRequest, writes: QuerySet[TagWrite], described: str) -> HttpResponse:
    queued = tagchanges.start_undo(request.user, writes, described)
    if not queued:
        messages.info(request, "Nothing to undo: those changes are not in place.")
        return redirect("tag-changes")
    queue_tag_batches(queued)
    messages.success(request, f"Undoing {described}.")
    return redirect("tag-batch", pk=queued[0])
