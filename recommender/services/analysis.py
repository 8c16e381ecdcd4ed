"""Step 2 of a catalog track: the engine's verdict and embedding of its sample (sampled ->
analysed), then the track joins the nearest-neighbour index once that is committed."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from classifier.engine.analysis import Analysis
from classifier.engine.errors import AudioError
from classifier.engine.runner import analyse
from classifier.services.active_model import engine_config
from classifier.services.stored import analysis_fields
from recommender.models import CatalogTrack, Status
from recommender.services.claims import claim, claimed, fail, release
from recommender.services.indexing import index_track


def analyse_track(track_id: int) -> str:
    """Run the engine on the sample, store verdict and embedding, add it to the index."""
    token = claim(track_id, Status.SAMPLED)
    if token is None:
        return "skipped"
    track = CatalogTrack.objects.get(pk=track_id)
    try:
        with local_sample(track) as path:
            analysis = run_engine(path)
    except AudioError as exc:
        fail(track_id, token, f"the engine could not read the sample: {exc}")
        return "failed"
    except FileNotFoundError:
        fail(track_id, token, "the sample file is missing; re-fetch the track")
        return "failed"
    except Exception as exc:
        release(track_id, token, f"{type(exc).__name__}: {exc}")
        raise
    fields = analysis_fields(analysis)
    with transaction.atomic():
        stored = (
            claimed(track_id, token)
            .filter(status=Status.SAMPLED)
            .update(
                status=Status.ANALYSED,
                analysed_at=timezone.now(),
                failure_reason="",
                claim_token=None,
                claimed_at=None,
                attempts=0,
                **fields,
            )
        )
        if stored and fields["primary_genre"] and fields["embedding"]:
            transaction.on_commit(
                lambda: index_track(track_id, fields["primary_genre"], fields["embedding"])
            )
    return "analysed" if stored else "lost"


def run_engine(path: Path) -> Analysis:
    return analyse(path, engine_config(), min_confidence=settings.GENREWEB_MIN_CONFIDENCE)


@contextmanager
def local_sample(track: CatalogTrack) -> Iterator[Path]:
    """The sample as a local file, copied out of a remote storage where needed."""
    if not track.sample:
        raise FileNotFoundError("no sample")
    try:
        local = Path(track.sample.path)
    except NotImplementedError:  # a storage without local paths
        local = None
    if local is not None:
        yield local
        return
    with tempfile.TemporaryDirectory(prefix="catalog-analyse-") as folder:
        path = Path(folder) / Path(track.sample.name).name
        with track.sample.open("rb") as src, open(path, "wb") as dst:
            dst.write(src.read())
        yield path
