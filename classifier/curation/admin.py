"""The curation admin: taxonomy, sample review, training runs and model versions."""

from __future__ import annotations

from pathlib import Path

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Exists, F, OuterRef, Q
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from classifier.curation.forms import ImportForm, RelabelForm, TrainingRunForm
from classifier.curation.models import Genre, ModelVersion, Promotion, Sample, TrainingRun
from classifier.curation.services import CurationError
from classifier.curation.services.counts import balance_warnings, genre_counts
from classifier.curation.services.importing import import_folder, import_zip
from classifier.curation.services.versions import active_version, promote, roll_back
from classifier.curation.tasks import (
    queue_verdict_refresh,
    refresh_verdicts_after_promotion,
    start_run,
)
from classifier.tasks import queue_analyses


def _counts_context() -> dict:
    counts = genre_counts()
    return {
        "genre_counts": [c for c in counts if c.total],
        "empty_genres": [c.genre for c in counts if not c.total],
        "count_warnings": balance_warnings(counts),
    }


@admin.register(Genre)
class GenreAdmin(admin.ModelAdmin):
    list_display = ("name", "tag_spelling", "aliases", "parent", "approved", "samples_total")
    search_fields = ("name", "tag_spelling", "aliases")
    list_filter = ("parent",)

    def get_queryset(self, request: HttpRequest):
        return (
            super()
            .get_queryset(request)
            .annotate(
                n_approved=Count("samples", filter=Q(samples__status=Sample.Status.APPROVED)),
                n_samples=Count("samples"),
            )
        )

    @admin.display(description="approved", ordering="n_approved")
    def approved(self, genre: Genre) -> int:
        return genre.n_approved

    @admin.display(description="samples", ordering="n_samples")
    def samples_total(self, genre: Genre) -> int:
        return genre.n_samples


def _labelled_as_verdict():
    """Whether one of the sample's genres is the model's verdict (a subquery per row)."""
    through = Sample.genres.through
    return Exists(
        through.objects.filter(sample_id=OuterRef("pk"), genre__name=OuterRef("verdict_genre"))
    )


class AgreementFilter(admin.SimpleListFilter):
    title = "model verdict"
    parameter_name = "verdict"

    def lookups(self, request, model_admin):
        return [
            ("disagrees", "disagrees with the labels"),
            ("agrees", "agrees with the labels"),
            ("none", "no verdict yet"),
        ]

    def queryset(self, request, queryset):
        if self.value() == "agrees":
            return queryset.filter(_labelled_as_verdict())
        if self.value() == "disagrees":
            return queryset.exclude(verdict_genre="").exclude(_labelled_as_verdict())
        if self.value() == "none":
            return queryset.filter(verdict_genre="")
        return queryset


@admin.register(Sample)
class SampleAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "player",
        "genre_list",
        "verdict",
        "disagreement_display",
        "uncertainty_display",
        "status",
        "split",
        "source",
        "artist",
    )
    list_display_links = ("name",)
    list_filter = ("status", AgreementFilter, "genres", "split", "source")
    search_fields = ("original_name", "artist", "notes", "source_ref")
    filter_horizontal = ("genres",)
    list_per_page = 50
    actions = [
        "approve",
        "reject",
        "mark_proposed",
        "relabel",
        "accept_verdict",
        "refresh_verdicts",
    ]
    readonly_fields = (
        "player",
        "audio",
        "source",
        "content_hash",
        "source_ref",
        "verdict",
        "verdict_model",
        "verdict_probabilities",
        "verdict_error",
        "created_at",
        "updated_at",
    )
    fieldsets = [
        (
            None,
            {"fields": ["player", "original_name", "genres", "status", "split", "artist", "notes"]},
        ),
        (
            "Where it came from",
            {
                "fields": [
                    "audio",
                    "source",
                    "source_ref",
                    "content_hash",
                    "created_at",
                    "updated_at",
                ]
            },
        ),
        (
            "The active model's verdict",
            {"fields": ["verdict", "verdict_probabilities", "verdict_model", "verdict_error"]},
        ),
    ]
    change_list_template = "admin/curation/sample/change_list.html"

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("import/", view(self.import_view), name="curation_sample_import"),
            path("<int:pk>/audio/", view(self.audio_view), name="curation_sample_audio"),
            *super().get_urls(),
        ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # samples come from imports and promoted uploads, with their hash

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).prefetch_related("genres")

    # ---- columns

    @admin.display(description="genres")
    def genre_list(self, sample: Sample) -> str:
        return ", ".join(sample.genre_names()) or "-"

    @admin.display(description="sample", ordering="original_name")
    def name(self, sample: Sample) -> str:
        return str(sample)

    @admin.display(description="listen")
    def player(self, sample: Sample) -> str:
        if not sample.pk:
            return "-"
        url = reverse("admin:curation_sample_audio", args=[sample.pk])
        return format_html(
            '<audio controls preload="none" src="{}" style="height:28px;width:220px"></audio>', url
        )

    @admin.display(description="model says", ordering="verdict_genre")
    def verdict(self, sample: Sample) -> str:
        if sample.verdict_error:
            return format_html('<span title="{}">cannot analyse</span>', sample.verdict_error)
        if not sample.verdict_genre:
            return "-"
        mark = "✔" if sample.agrees else "✘"
        colour = "green" if sample.agrees else "#ba2121"
        return format_html(
            '<span style="color:{}" title="{}">{} {} ({}%)</span>',
            colour,
            sample.verdict_model,
            mark,
            sample.verdict_genre,
            round(100 * (sample.verdict_confidence or 0)),
        )

    @admin.display(description="disagreement", ordering=F("disagreement").desc(nulls_last=True))
    def disagreement_display(self, sample: Sample) -> str:
        return "-" if sample.disagreement is None else f"{sample.disagreement:.2f}"

    @admin.display(description="uncertainty", ordering=F("uncertainty").desc(nulls_last=True))
    def uncertainty_display(self, sample: Sample) -> str:
        return "-" if sample.uncertainty is None else f"{sample.uncertainty:.2f}"

    # ---- the changelist header: per-genre counts and warnings

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None):
        context = {**_counts_context(), **(extra_context or {})}
        # The changelist numbers its columns with the action checkbox first.
        columns = (["action_checkbox"] if self.get_actions(request) else []) + list(
            self.get_list_display(request)
        )
        context["sort_disagreement"] = f"?o={columns.index('disagreement_display')}"
        context["sort_uncertainty"] = f"?o={columns.index('uncertainty_display')}"
        return super().changelist_view(request, extra_context=context)

    # ---- actions

    @admin.action(description="Approve the selected samples", permissions=["change"])
    def approve(self, request: HttpRequest, queryset) -> None:
        self._set_status(request, queryset, Sample.Status.APPROVED)

    @admin.action(description="Reject the selected samples", permissions=["change"])
    def reject(self, request: HttpRequest, queryset) -> None:
        self._set_status(request, queryset, Sample.Status.REJECTED)

    @admin.action(
        description="Send the selected samples back to review (proposed)", permissions=["change"]
    )
    def mark_proposed(self, request: HttpRequest, queryset) -> None:
        self._set_status(request, queryset, Sample.Status.PROPOSED)

    def _set_status(self, request: HttpRequest, queryset, status: str) -> None:
        count = queryset.update(status=status, updated_at=timezone.now())
        self.message_user(
            request, f"{count} sample{'s' if count != 1 else ''} now {status}.", messages.SUCCESS
        )

    @admin.action(description="Relabel the selected samples…", permissions=["change"])
    def relabel(self, request: HttpRequest, queryset):
        form = RelabelForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            genres = list(form.cleaned_data["genres"])
            count = relabel_samples(
                queryset,
                genres,
                form.cleaned_data["approve"],
                request.user,
                add=form.cleaned_data["mode"] == RelabelForm.ADD,
            )
            names = ", ".join(g.name for g in genres)
            self.message_user(
                request,
                f"{count} sample{'s' if count != 1 else ''} relabelled {names}.",
                messages.SUCCESS,
            )
            return None
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "form": form,
            "samples": queryset,
            "title": "Relabel samples",
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/curation/sample/relabel.html", context)

    @admin.action(
        description="Relabel the selected samples with the model's verdict", permissions=["change"]
    )
    def accept_verdict(self, request: HttpRequest, queryset) -> None:
        genres = {g.name: g for g in Genre.objects.all()}
        count = 0
        for sample in queryset.exclude(verdict_genre="").prefetch_related("genres"):
            said = [genres[n] for n in verdict_genres(sample) if n in genres]
            if said and {g.name for g in said} != set(sample.genre_names()):
                count += relabel_samples(
                    Sample.objects.filter(pk=sample.pk), said, False, request.user
                )
        self.message_user(
            request,
            f"{count} sample{'s' if count != 1 else ''} relabelled with the model's verdict.",
            messages.SUCCESS,
        )

    @admin.action(
        description="Recompute the active model's verdicts (in a worker)", permissions=["change"]
    )
    def refresh_verdicts(self, request: HttpRequest, queryset) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        if queue_verdict_refresh(ids):
            self.message_user(request, f"Verdicts of {len(ids)} samples queued.")
        else:
            self.message_user(
                request, "The task queue cannot be reached; try again later.", messages.ERROR
            )

    # ---- extra views

    def import_view(self, request: HttpRequest):
        if not self.has_change_permission(request):
            raise PermissionDenied
        allow_folder = request.user.is_superuser
        form = ImportForm(request.POST or None, request.FILES or None, allow_folder=allow_folder)
        if request.method == "POST" and form.is_valid():
            try:
                result = run_import(form.cleaned_data)
            except CurationError as exc:
                form.add_error(None, str(exc))
            else:
                level = messages.WARNING if result.messages() else messages.SUCCESS
                self.message_user(request, f"Import: {result.summary()}.", level)
                shown = result.messages()
                for message in shown[:20]:
                    self.message_user(request, message, messages.WARNING)
                if len(shown) > 20:
                    self.message_user(
                        request,
                        f"... and {len(shown) - 20} more (manage.py import_samples lists all).",
                        messages.WARNING,
                    )
                return redirect("admin:curation_sample_changelist")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "form": form,
            "title": "Import a labelled folder",
            **_counts_context(),
        }
        return TemplateResponse(request, "admin/curation/sample/import.html", context)

    def audio_view(self, request: HttpRequest, pk: int) -> FileResponse:
        sample = get_object_or_404(Sample, pk=pk)
        if not self.has_view_permission(request, sample):
            raise PermissionDenied
        try:
            handle = sample.audio.open("rb")
        except FileNotFoundError:
            raise Http404("the sample's audio file is missing") from None
        return FileResponse(handle, filename=Path(sample.audio.name).name)


def run_import(data: dict):
    """Import what the form names and queue the new samples' verdicts."""
    if data.get("archive"):
        result = import_zip(data["archive"], data["archive"].name, status=data["status"])
    else:
        result = import_folder(Path(data["folder"]), status=data["status"])
    if data.get("analyse") and result.created:
        queue_verdict_refresh(result.created)
    return result


def verdict_genres(sample: Sample) -> list[str]:
    """The genres the stored verdict says: a multi-label head's genres at 0.5 or more (else its
    best), a softmax head's best."""
    if sample.verdict_multi_label:
        said = [g for g, p in sample.verdict_probabilities.items() if p >= 0.5]
        if said:
            return sorted(said)
    return [sample.verdict_genre]


def relabel_samples(
    queryset, genres: list[Genre], approve: bool, user, *, add: bool = False
) -> int:
    """Give the samples new genres (add: on top of theirs), noting who changed them from what."""
    count = 0
    stamp = timezone.now().strftime("%Y-%m-%d")
    for sample in queryset.prefetch_related("genres"):
        old = sample.genre_names()
        new = list({g.pk: g for g in [*(sample.genres.all() if add else []), *genres]}.values())
        sample.relabel(new)
        if approve:
            sample.status = Sample.Status.APPROVED
        new_names = sorted(g.name for g in new)
        if old != new_names:
            line = (
                f"{stamp}: relabelled {', '.join(old) or '-'} -> {', '.join(new_names)} by {user}"
            )
            sample.notes = f"{sample.notes}\n{line}".strip()
        sample.save(update_fields=["disagreement", "status", "notes", "updated_at"])
        count += 1
    return count


def _progress_bar(run: TrainingRun) -> str:
    return format_html(
        '<progress value="{}" max="1" style="width:120px"></progress> {}%',
        run.progress,
        round(100 * run.progress),
    )


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    form = TrainingRunForm
    list_display = (
        "__str__",
        "status",
        "progress_display",
        "accuracy",
        "active_accuracy",
        "model_version",
        "created_at",
        "created_by",
    )
    list_filter = ("status",)
    add_form_template = "admin/curation/trainingrun/add_form.html"

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path(
                "<int:pk>/progress.json",
                view(self.progress_view),
                name="curation_trainingrun_progress",
            ),
            path(
                "<int:pk>/confusion.png",
                view(self.confusion_view),
                name="curation_trainingrun_confusion",
            ),
            path(
                "<int:pk>/promote/",
                view(require_POST(self.promote_view)),
                name="curation_trainingrun_promote",
            ),
            *super().get_urls(),
        ]

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False if obj is not None else super().has_change_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        if obj is not None and obj.status == TrainingRun.Status.RUNNING:
            return False  # its worker would write the report into a deleted row
        return super().has_delete_permission(request, obj)

    @admin.display(description="progress")
    def progress_display(self, run: TrainingRun) -> str:
        return _progress_bar(run)

    @admin.display(description="accuracy")
    def accuracy(self, run: TrainingRun) -> str:
        value = (run.report.get("validation") or {}).get("accuracy")
        return "-" if value is None else f"{value:.1%}"

    @admin.display(description="active model, same samples")
    def active_accuracy(self, run: TrainingRun) -> str:
        value = (run.report.get("comparison") or {}).get("accuracy")
        return "-" if value is None else f"{value:.1%}"

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context=None):
        extra = {**_counts_context(), **(extra_context or {})}
        return super().add_view(request, form_url, extra)

    def save_model(self, request: HttpRequest, obj: TrainingRun, form, change: bool) -> None:
        obj.created_by = request.user
        super().save_model(request, obj, form, change)
        start_run(obj)

    def response_add(self, request: HttpRequest, obj: TrainingRun, post_url_continue=None):
        self.message_user(request, f"Training run {obj.pk} queued.", messages.SUCCESS)
        return redirect("admin:curation_trainingrun_change", obj.pk)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context=None
    ):
        run = get_object_or_404(
            TrainingRun.objects.select_related("model_version", "created_by"), pk=object_id
        )
        if not self.has_view_permission(request, run):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "run": run,
            "title": str(run).capitalize(),
            "report": report_rows(run),
            "active": active_version(),
            "can_promote": request.user.has_perm("curation.change_modelversion"),
            "progress_url": reverse("admin:curation_trainingrun_progress", args=[run.pk]),
        }
        return TemplateResponse(request, "admin/curation/trainingrun/report.html", context)

    def progress_view(self, request: HttpRequest, pk: int) -> JsonResponse:
        run = get_object_or_404(TrainingRun, pk=pk)
        if not self.has_view_permission(request, run):
            raise PermissionDenied
        return JsonResponse(
            {
                "status": run.status,
                "progress": run.progress,
                "message": run.message,
                "error": run.error,
                "finished": run.finished,
            }
        )

    def confusion_view(self, request: HttpRequest, pk: int) -> FileResponse:
        run = get_object_or_404(TrainingRun, pk=pk)
        if not self.has_view_permission(request, run) or not run.confusion_png:
            raise Http404
        return FileResponse(run.confusion_png.open("rb"), content_type="image/png")

    def promote_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not request.user.has_perm("curation.change_modelversion"):
            raise PermissionDenied
        run = get_object_or_404(TrainingRun, pk=pk)
        if run.model_version is None:
            self.message_user(request, "This run made no model version.", messages.ERROR)
        else:
            _promote(self, request, run.model_version)
        return redirect("admin:curation_trainingrun_change", run.pk)


def report_rows(run: TrainingRun) -> dict:
    """The run's report arranged for the template: one row per genre, new beside active."""
    report = run.report or {}
    validation = report.get("validation") or {}
    comparison = report.get("comparison") or {}
    split = report.get("split") or {}
    rows = []
    for genre in report.get("genres", []):
        new = (validation.get("per_genre") or {}).get(genre, {})
        old = (comparison.get("per_genre") or {}).get(genre, {})
        rows.append(
            {
                "genre": genre,
                "new": new,
                "old_f1": old.get("f1"),
                "train": (split.get("train") or {}).get(genre, 0),
                "validation": (split.get("validation") or {}).get(genre, 0),
                "test": (split.get("test") or {}).get(genre, 0),
            }
        )
    return {
        "rows": rows,
        "validation": validation,
        "comparison": comparison,
        "test": report.get("test"),
        "warnings": report.get("warnings", []),
        "skipped": report.get("skipped_samples", []),
        "artists_on_both_sides": report.get("artists_on_both_sides", []),
    }


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = (
        "version",
        "is_active",
        "accuracy_display",
        "genre_list",
        "created_at",
        "promoted_at",
        "promoted_by",
        "run_link",
    )
    readonly_fields = (
        "version",
        "model",
        "head",
        "genres",
        "tag_spelling",
        "accuracy",
        "is_active",
        "promoted_at",
        "promoted_by",
        "created_at",
    )
    actions = ["promote_selected"]
    change_list_template = "admin/curation/modelversion/change_list.html"

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path(
                "rollback/",
                view(require_POST(self.rollback_view)),
                name="curation_modelversion_rollback",
            ),
            path(
                "reanalyse/",
                view(require_POST(self.reanalyse_view)),
                name="curation_modelversion_reanalyse",
            ),
            *super().get_urls(),
        ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # versions are made by training runs

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        if obj is not None and obj.is_active:
            return False
        return super().has_delete_permission(request, obj)

    @admin.display(description="accuracy", ordering="accuracy")
    def accuracy_display(self, version: ModelVersion) -> str:
        return "-" if version.accuracy is None else f"{version.accuracy:.1%}"

    @admin.display(description="genres")
    def genre_list(self, version: ModelVersion) -> str:
        return ", ".join(version.genres)

    @admin.display(description="run")
    def run_link(self, version: ModelVersion) -> str:
        run = version.runs.order_by("pk").first()
        if run is None:
            return "-"
        return format_html(
            '<a href="{}">run {}</a>',
            reverse("admin:curation_trainingrun_change", args=[run.pk]),
            run.pk,
        )

    def changelist_view(self, request: HttpRequest, extra_context=None):
        from classifier.curation.services.versions import active_model_string

        context = {
            "active": active_version(),
            "active_model": active_model_string(),
            "older_tracks": _older_track_count(),
            **(extra_context or {}),
        }
        return super().changelist_view(request, extra_context=context)

    @admin.action(description="Promote the selected version to active", permissions=["change"])
    def promote_selected(self, request: HttpRequest, queryset) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version to promote.", messages.ERROR)
            return
        _promote(self, request, queryset.get())

    def rollback_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_change_permission(request):
            raise PermissionDenied
        try:
            version = roll_back(request.user)
        except CurationError as exc:
            self.message_user(request, f"Not rolled back: {exc}", messages.ERROR)
        else:
            refresh_verdicts_after_promotion()
            name = version.model if version else "the bundled head"
            self.message_user(
                request, f"Rolled back: {name} is now the active model.", messages.SUCCESS
            )
        return redirect("admin:curation_modelversion_changelist")

    def reanalyse_view(self, request: HttpRequest) -> HttpResponse:
        from classifier.curation.services.versions import reanalyse_older_tracks

        if not self.has_change_permission(request):
            raise PermissionDenied
        queued = reanalyse_older_tracks(None)  # every user's
        queue_analyses(queued)
        self.message_user(
            request, f"{len(queued)} tracks queued for re-analysis.", messages.SUCCESS
        )
        return redirect("admin:curation_modelversion_changelist")


def _promote(model_admin: admin.ModelAdmin, request: HttpRequest, version: ModelVersion) -> None:
    try:
        promote(version, request.user)
    except CurationError as exc:
        model_admin.message_user(request, f"Not promoted: {exc}", messages.ERROR)
    else:
        refresh_verdicts_after_promotion()
        model_admin.message_user(
            request, f"{version.model} is now the active model.", messages.SUCCESS
        )


def _older_track_count() -> int | None:
    from classifier.curation.services.versions import tracks_from_older_versions

    try:
        return tracks_from_older_versions(None).count()
    except (ImportError, LookupError):
        return None  # the web app's Track model is not there


@admin.register(Promotion)
class PromotionAdmin(admin.ModelAdmin):
    """Who changed the active model when: read only."""

    list_display = ("at", "__str__", "by")
    list_filter = ("rollback",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
